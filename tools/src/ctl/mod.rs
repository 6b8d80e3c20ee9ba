//! vxctl: the admin CLI. [`cli`] defines the command line, [`render`] turns the protocol's
//! structures into tables (with [`table`]), [`commands`] talks to vxswitchd.

pub mod cli;
pub mod commands;
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
}

/// Runs vxctl: usage errors exit 2 (clap), failures print `vxctl: <message>` and exit 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = io::stdout().lock();
    match commands::run(&cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        // `vxctl show | head`: the reader is gone, nothing more to say.
        Err(Error::Output(e)) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vxctl: {e}");
            ExitCode::FAILURE
        }
    }
}
