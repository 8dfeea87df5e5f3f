//! Command-line flags (clap derive). Global flags apply to every subcommand.

use std::path::PathBuf;

use aegis_core::Severity;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Aegis: security for AI applications, offline and self-hosted.
#[derive(Debug, Parser)]
#[command(name = "aegis", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it, 2 error.\n\
Run `aegis <command> --help` for examples."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by all commands.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format of the report.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Write the report to FILE instead of standard output (a summary still goes to the terminal).
    #[arg(long, short = 'o', global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with code 1 when a finding is at or above this severity.
    #[arg(long, global = true, value_name = "SEVERITY", default_value = "high", value_parser = parse_severity)]
    pub fail_on: Severity,
    /// No progress bar, no summary on stderr; human output lists findings at or above --fail-on only.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Show evidence, remediation and references for every finding.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// Colour in human output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
        .map_err(|e: aegis_core::ParseSeverityError| e.to_string())
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Text for people.
    Human,
    /// The report as one JSON document.
    Json,
    /// One JSON object per finding, then a summary line.
    Jsonl,
    /// SARIF 2.1.0 (GitHub code scanning and other platforms).
    Sarif,
}

/// When to colour human output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When writing to a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan model files for code-execution payloads and unsafe structure.
    #[command(after_help = SCAN_EXAMPLES)]
    Scan(ScanArgs),
    /// Print the documentation of every rule, or of one rule.
    #[command(after_help = RULES_EXAMPLES)]
    Rules(RulesArgs),
}

const SCAN_EXAMPLES: &str = "Examples:
  aegis scan model.pt                         scan one file
  aegis scan ./models --format sarif -o aegis.sarif
  aegis scan hub-cache/ --fail-on medium      fail on anything suspicious
  aegis scan ckpt.pt --allow mylab.models.FraudNet
  aegis scan . --policy aegis.toml --format json | jq '.findings[].rule'

The format is detected from the bytes, never from the file name. Pickle globals are judged by an
allow-list (PyTorch weights_only set, numpy, scikit-learn estimators, collections, harmless builtins);
extend it with --allow or an aegis.toml policy file:

  [scan]
  allow = [\"mylab.models.FraudNet\", \"lightning.fabric.*\"]
  [limits]
  max_depth = 8";

const RULES_EXAMPLES: &str = "Examples:
  aegis rules                      list every rule
  aegis rules AEG-SCAN-101         what, why, how to fix, references
  aegis rules --markdown > docs/rules.md
  aegis rules --format json";

/// `aegis scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories (scanned recursively; symbolic links inside directories are not followed).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Allow one more pickle global (`module.qualname` or `prefix.*`); repeatable.
    #[arg(long, value_name = "GLOBAL")]
    pub allow: Vec<String>,
    /// Policy file (allow-list and limits). Default: ./aegis.toml when it exists.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Maximum nesting of archives and embedded payloads.
    #[arg(long, value_name = "N")]
    pub max_depth: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
}

/// `aegis rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// A rule id (`AEG-SCAN-101`) or name (`pickle-known-gadget`).
    pub rule: Option<String>,
    /// Print the whole catalogue as Markdown (the source of docs/rules.md).
    #[arg(long, conflicts_with = "rule")]
    pub markdown: bool,
}
