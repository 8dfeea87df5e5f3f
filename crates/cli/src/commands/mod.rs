//! One module per subcommand; each returns the exit code.

mod assess;
mod harden;
mod inputs;
mod rules;
mod scan;

use std::process::ExitCode;

use crate::args::{AssessCommand, Cli, Command};

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Scan(args) => scan::run(&cli.global, args),
        Command::Rules(args) => rules::run(&cli.global, args),
        Command::Assess(AssessCommand::Robustness(args)) => assess::run(&cli.global, args),
        Command::Harden(args) => harden::run(&cli.global, args),
    }
}
