//! SIGHUP, SIGTERM and SIGINT as messages on a channel, so the run loop can wait for "the next
//! tick or a signal" with one `recv_timeout`. The handlers are tokio's (a current-thread
//! runtime on its own thread), which keeps this crate free of unsafe code.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a signal asks the agent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGHUP: read the file again now.
    Reload,
    /// SIGTERM or SIGINT: exit cleanly.
    Stop,
}

/// Installs the handlers and returns the channel they report on. The handlers are in place
/// when this returns.
pub fn listen() -> io::Result<Receiver<Event>> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    thread::Builder::new()
        .name("vxagent-signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let install = || -> io::Result<[Signal; 3]> {
                    Ok([
                        signal(SignalKind::hangup())?,
                        signal(SignalKind::terminate())?,
                        signal(SignalKind::interrupt())?,
                    ])
                };
                match install() {
                    Ok(sigs) => {
                        let _ = ready_tx.send(Ok(()));
                        forward(sigs, tx).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
    ready_rx
        .recv()
        .map_err(|_| io::Error::other("the signal thread exited early"))??;
    Ok(rx)
}

async fn forward([mut hup, mut term, mut int]: [Signal; 3], tx: Sender<Event>) {
    loop {
        let ev = tokio::select! {
            _ = hup.recv() => Event::Reload,
            _ = term.recv() => Event::Stop,
            _ = int.recv() => Event::Stop,
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}
