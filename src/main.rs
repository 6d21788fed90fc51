//! The `geofailover` binary: parse the command line, start logging, run,
//! and turn the outcome into an exit code (0 ok, 1 failure, 2 bad usage or
//! configuration).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = geofailover::cli::Cli::parse();
    geofailover::cli::init_logging();
    match geofailover::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
