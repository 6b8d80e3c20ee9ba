//! vxctl: the admin CLI. [`cli`] defines the command line, [`render`] turns the protocol's
//! structures into tables (with [`table`]), [`flows`] prints and compares flow tables,
//! [`decode`] and [`pcap`] serve `vxctl capture`, [`commands`] talks to vxswitchd.

pub mod cli;
pub mod commands;
pub mod decode;
pub mod flows;
pub mod pcap;
pub mod render;
pub mod table;

use std::io::{self, ErrorKind};
use std::process::ExitCode;

use clap::Parser;

pub use cli::Cli;

/// Everything that can make a vxctl command fail after its arguments parsed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Control(#[from] controlplane::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
    /// A bad line in a file: `FILE:LINE: column C: reason`, the line, a caret.
    #[error("{0}")]
    Syntax(String),
}

/// Runs vxctl: usage errors exit 2 (clap: unknown commands and flags, arguments that do not
/// parse, flows and filters on the command line included), failures print `vxctl: <message>`
/// and exit 1 (as do differences found by diff-flows, silently).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = io::stdout().lock();
    match commands::run(&cli, &mut out) {
        Ok(commands::Status::Done) => ExitCode::SUCCESS,
        Ok(commands::Status::Different) => ExitCode::FAILURE,
        // `vxctl show | head`: the reader is gone, nothing more to say.
        Err(Error::Output(e)) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vxctl: {e}");
            ExitCode::FAILURE
        }
    }
}
