//! The `aegis` binary: parse flags, dispatch to a command, map the outcome to an exit code.
//!
//! Exit codes (every command): 0 nothing at or above `--fail-on`, 1 findings at or above it, 2 the tool
//! failed. Errors print as a chain (`error: …` then `caused by: …`). A closed stdout pipe ends the run
//! quietly with the exit code the findings call for.

#![forbid(unsafe_code)]

mod args;
mod args_gateway;
mod args_inventory;
mod args_llm;
mod commands;
mod output;
mod progress;
mod prompt;
mod scope;

use std::process::ExitCode;

/// mimalloc returns freed pages to the system within moments; glibc kept about 130 MiB of arena after an HTTP/2
/// zero-window attack had been closed (docs/BENCHMARKS.md, issue 25).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut command = scope::command();
    let matches = command.get_matches_mut();
    if let Err(message) = scope::check(&matches) {
        command
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    let cli = match <args::Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.format(&mut command).exit(),
    };
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if output::is_broken_pipe(&err) {
                return ExitCode::from(output::EXIT_ERROR);
            }
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("caused by: {cause}");
            }
            ExitCode::from(output::EXIT_ERROR)
        }
    }
}
