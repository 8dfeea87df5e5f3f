//! One module per subcommand; each returns the exit code.

mod assess;
mod audit;
mod drift;
mod extraction;
mod frames;
mod gateway;
mod harden;
mod inputs;
mod inventory;
mod llm;
mod privacy;
mod rules;
mod scan;
mod schema;
mod vault;

use std::process::ExitCode;

use crate::args::{AssessCommand, Cli, Command, SchemaCommand};

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if matches!(cli.command, Command::Assess(_) | Command::Harden(_)) {
        single_threaded_numerics();
    }
    check_outputs(&cli)?;
    match cli.command {
        Command::Scan(args) => scan::run(&cli.global, args),
        Command::Rules(args) => rules::run(&cli.global, args),
        Command::Assess(AssessCommand::Robustness(args)) => assess::run(&cli.global, args),
        Command::Assess(AssessCommand::Privacy(args)) => privacy::run(&cli.global, args),
        Command::Assess(AssessCommand::Extraction(args)) => extraction::run(&cli.global, args),
        Command::Assess(AssessCommand::Llm(args)) => llm::assess(&cli.global, args),
        Command::Llm(crate::args_llm::LlmCommand::Screen(args)) => llm::screen(&cli.global, args),
        Command::Llm(crate::args_llm::LlmCommand::TrainHead(args)) => {
            llm::train_head(&cli.global, args)
        }
        Command::Harden(args) => harden::run(&cli.global, args),
        Command::Audit(args) => audit::run(&cli.global, args),
        Command::Schema(SchemaCommand::Infer(args)) => schema::infer(&cli.global, args),
        Command::Schema(SchemaCommand::Check(args)) => schema::check(&cli.global, args),
        Command::Serve(args) => gateway::serve(&cli.global, args),
        Command::User(command) => gateway::user(&cli.global, command),
        Command::Key(command) => gateway::key(&cli.global, command),
        Command::Model(command) => gateway::model(&cli.global, command),
        Command::AuditLog(command) => gateway::audit_log(&cli.global, command),
        Command::Drift(args) => drift::run(&cli.global, args),
        Command::Vault(command) => vault::run(&cli.global, command),
        Command::Dataset(command) => inventory::dataset(&cli.global, command),
        Command::Asset(command) => inventory::asset(&cli.global, command),
        Command::Check(command) => inventory::check(&cli.global, command),
        Command::Findings(command) => inventory::findings(&cli.global, command),
        Command::Posture(args) => inventory::posture(&cli.global, args),
        Command::Report(command) => inventory::report(&cli.global, command),
        Command::Notify(command) => inventory::notify(&cli.global, command),
    }
}

/// Every file the command will write, checked before any work: a typo in a directory name must not cost the
/// minutes of an assessment.
fn check_outputs(cli: &Cli) -> anyhow::Result<()> {
    // `aegis vault` checks its own outputs (a directory tree for `decrypt`, owner-only key files).
    if let (Some(out), false) = (&cli.global.output, matches!(cli.command, Command::Vault(_))) {
        crate::output::check_writable(out, "the output")?;
    }
    match &cli.command {
        Command::Harden(args) => {
            crate::output::check_writable(&args.out, "the hardened model (--out)")
        }
        Command::Audit(args) => match &args.flags {
            Some(flags) => crate::output::check_writable(flags, "the per-row flags (--flags)"),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Tabular models are small: candle's multi-threaded kernels spend more time synchronising than computing
/// (PGD-40 on 450 digits rows: 2 threads 1.6 ms per step, 1 thread 0.9 ms), and without the variable candle
/// re-reads the CPU count on every op. Honour RAYON_NUM_THREADS when the user set it.
fn single_threaded_numerics() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Called first thing in the command, before any thread exists (edition 2021: set_var is safe).
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
}
