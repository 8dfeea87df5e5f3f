//! Flags of the inventory commands: `asset`, `model add`, `dataset add`, `check`, `findings`, `posture`,
//! `report import`, `notify`. They work on the gateway's database (as `aegis key` does), so a running
//! `aegis serve` sees every change at once.

use std::path::PathBuf;

use aegis_core::Severity;
use clap::{Args, Subcommand, ValueEnum};

use crate::args_gateway::GatewayArgs;

pub const ASSET_EXAMPLES: &str = "Examples:
  aegis model add fraud models/fraud.onnx --train train.csv --test test.csv --label is_fraud
  aegis dataset add fraud-train data/train.csv --role training --label is_fraud
  aegis asset add fraud models/fraud-v2.onnx         a new version: its checks run, old findings resolve
  aegis asset list
  aegis asset show fraud --format json
  aegis asset update fraud --owner risk-team --tag prod
  aegis asset link fraud --evaluated-on fraud-test
  aegis asset remove old-model                         history (runs, findings) is kept";

pub const CHECK_EXAMPLES: &str = "Examples:
  aegis check run fraud                      every check of the latest version, here and now
  aegis check run fraud --check scan,signature --no-wait   queue them for the server's worker
  aegis check list fraud                     the runs, newest first
  aegis check show run_1f2e… --report        one run with its full report (JSON)
  aegis check schedule fraud scan --every 12h
  aegis check schedule fraud robustness --cron '30 2 * * 1'   Mondays 02:30 UTC
  aegis check schedule fraud scan --off";

pub const FINDINGS_EXAMPLES: &str = "Examples:
  aegis findings list                                  open findings (not accepted), worst first
  aegis findings list --asset fraud --severity high --state all --format json
  aegis findings show fp_3a9c…
  aegis findings triage fp_3a9c… --accept-days 30 --comment 'isolated loader until v2 ships'
  aegis findings triage fp_3a9c… --state false_positive --comment 'test fixture, never deployed'
  aegis findings triage fp_3a9c… --state not_affected --justification code_not_reachable --comment '…'
  aegis findings triage fp_3a9c… --owner alice";

pub const NOTIFY_EXAMPLES: &str = "Examples:
  printf '%s' \"$SECRET\" | aegis notify add security --webhook https://hooks.example.com/aegis --secret-stdin
  aegis notify add oncall --email-server smtp.example.com:587 --from aegis@example.com \\
        --to oncall@example.com --smtp-user aegis --password-stdin --min-severity critical
  aegis notify add prod-digest --webhook https://… --secret-stdin --tag prod --digest 15m
  aegis notify test security                 sends a test message now and says whether it arrived
  aegis notify list
  aegis notify deliveries --state failed     what could not be delivered, and why";

/// `aegis asset` subcommands.
#[derive(Debug, Subcommand)]
pub enum AssetCommand {
    /// Register an asset, or add a version to an existing one (its checks run; old findings resolve).
    Add(AssetAddArgs),
    /// List the assets with their latest version and open findings.
    List(AssetListArgs),
    /// One asset: versions, links, schedules, latest runs, posture.
    Show(AssetNameArgs),
    /// Change an asset's owner, tags, label column or dropped columns.
    Update(AssetUpdateArgs),
    /// Link a model to the datasets it was trained on, is evaluated on, or is compared with for drift.
    Link(AssetLinkArgs),
    /// Remove an asset from the inventory (its history stays).
    Remove(AssetNameArgs),
}

/// What the checks need to know about a dataset.
#[derive(Debug, Args, Clone, Default)]
pub struct DataSettingsArgs {
    /// The label column of the dataset(s).
    #[arg(long, value_name = "COLUMN")]
    pub label: Option<String>,
    /// Columns that are not model inputs (ids, timestamps), comma-separated.
    #[arg(long, value_name = "COL,…", value_delimiter = ',')]
    pub drop: Vec<String>,
}

/// What registering an asset or a version says about it, and whether to wait for its checks.
#[derive(Debug, Args, Clone, Default)]
pub struct RegisterArgs {
    /// Who answers for it.
    #[arg(long)]
    pub owner: Option<String>,
    /// Tags (for alert routing and filters); repeat the flag for several.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub data: DataSettingsArgs,
    /// Queue the checks for the server's worker and return at once (default: run them here and wait).
    #[arg(long)]
    pub no_wait: bool,
}

/// `aegis asset add`.
#[derive(Debug, Args)]
pub struct AssetAddArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Asset name (letters, digits, '-', '_', '.').
    pub name: String,
    /// The model file or directory, or the dataset file.
    pub path: PathBuf,
    /// What it is (default: a table file is a dataset, anything else a model).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// A dataset's role.
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    #[command(flatten)]
    pub register: RegisterArgs,
}

/// `aegis model add`.
#[derive(Debug, Args)]
#[command(after_help = ASSET_EXAMPLES)]
pub struct ModelAddArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Model name.
    pub name: String,
    /// The model file or directory.
    pub path: PathBuf,
    /// Training data (registered as NAME-train): membership inference needs it.
    #[arg(long, value_name = "FILE")]
    pub train: Option<PathBuf>,
    /// Held-out test data (registered as NAME-test): robustness and privacy checks need it.
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// Reference data for drift (registered as NAME-reference).
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    #[command(flatten)]
    pub register: RegisterArgs,
}

/// `aegis dataset` subcommands.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Register a dataset, or add a version to an existing one (schema check and audit run).
    #[command(after_help = ASSET_EXAMPLES)]
    Add(DatasetAddArgs),
}

/// `aegis dataset add`.
#[derive(Debug, Args)]
pub struct DatasetAddArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Dataset name.
    pub name: String,
    /// The CSV or Parquet file.
    pub path: PathBuf,
    /// Its role.
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    #[command(flatten)]
    pub register: RegisterArgs,
}

/// Asset kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A model file or directory.
    Model,
    /// A table.
    Dataset,
}

/// Dataset roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// What a model learned from.
    Training,
    /// Held out, for evaluation.
    Test,
    /// The distribution live traffic is compared with.
    Reference,
}

impl RoleArg {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleArg::Training => "training",
            RoleArg::Test => "test",
            RoleArg::Reference => "reference",
        }
    }
}

/// `aegis asset list`.
#[derive(Debug, Args)]
pub struct AssetListArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Only this kind.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
}

/// One asset by name.
#[derive(Debug, Args)]
pub struct AssetNameArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Asset name.
    pub name: String,
}

/// `aegis asset update`.
#[derive(Debug, Args)]
pub struct AssetUpdateArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Asset name.
    pub name: String,
    /// New owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Replace the tags (repeat the flag); `--tag ''` clears them.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Option<Vec<String>>,
    #[command(flatten)]
    pub data: DataSettingsArgs,
}

/// `aegis asset link`.
#[derive(Debug, Args)]
pub struct AssetLinkArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// The model.
    pub model: String,
    /// A dataset the model was trained on.
    #[arg(long, value_name = "DATASET")]
    pub trained_on: Option<String>,
    /// A dataset the model is evaluated on.
    #[arg(long, value_name = "DATASET")]
    pub evaluated_on: Option<String>,
    /// The model's drift reference.
    #[arg(long, value_name = "DATASET")]
    pub reference: Option<String>,
}

/// `aegis check` subcommands.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Run checks of an asset's latest version now.
    #[command(after_help = CHECK_EXAMPLES)]
    Run(CheckRunArgs),
    /// The runs of an asset, newest first.
    List(AssetNameArgs),
    /// One run (with --report, its full report as JSON).
    Show(RunShowArgs),
    /// When a check of an asset runs by itself.
    #[command(after_help = CHECK_EXAMPLES)]
    Schedule(ScheduleArgs),
}

/// `aegis check run`.
#[derive(Debug, Args)]
pub struct CheckRunArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Asset name.
    pub name: String,
    /// Which checks (scan, signature, schema, audit, robustness, privacy); default every one that applies.
    #[arg(long = "check", value_name = "CHECK,…", value_delimiter = ',')]
    pub checks: Vec<String>,
    /// Queue them for the server's worker and return at once.
    #[arg(long)]
    pub no_wait: bool,
}

/// `aegis check show`.
#[derive(Debug, Args)]
pub struct RunShowArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// The run id (`run_…`).
    pub id: String,
    /// Print the run's full report (the JSON the CLI command would write).
    #[arg(long)]
    pub report: bool,
}

/// `aegis check schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Asset name.
    pub name: String,
    /// The check.
    pub check: String,
    /// Run every DURATION (`30m`, `12h`, `7d`).
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["cron", "off"])]
    pub every: Option<String>,
    /// Run by a cron expression (5 fields, UTC).
    #[arg(long, value_name = "EXPR", conflicts_with = "off")]
    pub cron: Option<String>,
    /// Only on new versions and on demand.
    #[arg(long)]
    pub off: bool,
}

/// `aegis findings` subcommands.
#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// Findings, worst first (default: open ones, accepted risks excluded).
    #[command(after_help = FINDINGS_EXAMPLES)]
    List(FindingsListArgs),
    /// One finding with its evidence, fix and history.
    Show(FindingShowArgs),
    /// Change a finding's state, owner or risk acceptance (recorded in the audit log).
    #[command(after_help = FINDINGS_EXAMPLES)]
    Triage(TriageArgs),
}

/// `aegis findings list`.
#[derive(Debug, Args)]
pub struct FindingsListArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Only this asset.
    #[arg(long)]
    pub asset: Option<String>,
    /// Only this check or signal: scan, signature, schema, audit, drift, robustness, privacy, extraction, or a
    /// live signal: extraction_alarm, gateway (sign-in lockouts), audit_chain.
    #[arg(long, value_name = "SOURCE")]
    pub pillar: Option<String>,
    /// At least this severity.
    #[arg(long, value_parser = parse_severity)]
    pub severity: Option<Severity>,
    /// open (default), accepted, all, or a state: in_triage, exploitable, false_positive, not_affected, resolved.
    #[arg(long)]
    pub state: Option<String>,
    /// Only this owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Page size (default 50).
    #[arg(long)]
    pub limit: Option<i64>,
    /// Continue after the page that printed this cursor.
    #[arg(long)]
    pub cursor: Option<String>,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
        .map_err(|e: aegis_core::ParseSeverityError| e.to_string())
}

/// `aegis findings show`.
#[derive(Debug, Args)]
pub struct FindingShowArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// The finding's fingerprint (`fp_…`).
    pub fingerprint: String,
}

/// `aegis findings triage`.
#[derive(Debug, Args)]
pub struct TriageArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// The finding's fingerprint (`fp_…`).
    pub fingerprint: String,
    /// New state: in_triage, exploitable, false_positive, not_affected, resolved.
    #[arg(long)]
    pub state: Option<String>,
    /// For not_affected: code_not_present, code_not_reachable, requires_configuration, requires_dependency,
    /// requires_environment, protected_by_compiler, protected_at_runtime, protected_at_perimeter,
    /// protected_by_mitigating_control.
    #[arg(long)]
    pub justification: Option<String>,
    /// Why (required to dismiss or accept a risk).
    #[arg(long, default_value = "")]
    pub comment: String,
    /// Who deals with it.
    #[arg(long)]
    pub owner: Option<String>,
    /// Accept the risk for this many days (1 to 365); the finding reopens afterwards.
    #[arg(long, value_name = "DAYS")]
    pub accept_days: Option<i64>,
}

/// `aegis posture`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  aegis posture                            every asset: latest result of each check, open findings
  aegis posture fraud --format json
  aegis posture --format html -o posture.html     one self-contained page")]
pub struct PostureArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// One asset (default: all).
    pub name: Option<String>,
}

/// `aegis report` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Add a report a CLI command wrote (`--format json`) to an asset's history, as a run with its findings.
    #[command(after_help = "Examples:
  aegis scan models/fraud.onnx --format json -o scan.json; aegis report import scan.json --asset fraud
  aegis audit train.csv --label y --format json -o audit.json && aegis report import audit.json --asset fraud-train")]
    Import(ReportImportArgs),
}

/// `aegis report import`.
#[derive(Debug, Args)]
pub struct ReportImportArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// The JSON report.
    pub file: PathBuf,
    /// The asset it is about.
    #[arg(long)]
    pub asset: String,
}

/// `aegis notify` subcommands.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Add (or replace) a channel: a signed webhook or email over SMTP.
    #[command(after_help = NOTIFY_EXAMPLES)]
    Add(Box<NotifyAddArgs>),
    /// The channels (secrets hidden).
    List(GatewayArgs),
    /// Remove a channel.
    Remove(ChannelNameArgs),
    /// Send a test message now.
    Test(ChannelNameArgs),
    /// Messages sent, waiting or failed, newest first.
    Deliveries(DeliveriesArgs),
}

/// `aegis notify add`.
#[derive(Debug, Args)]
pub struct NotifyAddArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Channel name.
    pub name: String,
    /// Webhook URL (signed JSON POST).
    #[arg(long, value_name = "URL", conflicts_with = "email_server")]
    pub webhook: Option<String>,
    /// Read the webhook's HMAC secret (at least 16 characters) from standard input.
    #[arg(long)]
    pub secret_stdin: bool,
    /// SMTP server host:port (587: STARTTLS submission).
    #[arg(long, value_name = "HOST:PORT")]
    pub email_server: Option<String>,
    /// Sender address.
    #[arg(long)]
    pub from: Option<String>,
    /// Recipient; repeat for several.
    #[arg(long = "to", value_name = "ADDRESS")]
    pub to: Vec<String>,
    /// SMTP user (the password is read from standard input with --password-stdin).
    #[arg(long)]
    pub smtp_user: Option<String>,
    /// Read the SMTP password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// `starttls` (default) or `none` (only for a relay on this host).
    #[arg(long, default_value = "starttls")]
    pub smtp_security: String,
    /// Extra CA certificates (PEM) for a receiver with a private certificate.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Lowest severity sent.
    #[arg(long, value_parser = parse_severity, default_value = "high")]
    pub min_severity: Severity,
    /// Only assets with this tag; repeat for several.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Gather events for this long into one message (`15m`, `1h`).
    #[arg(long, value_name = "DURATION")]
    pub digest: Option<String>,
}

/// A channel by name.
#[derive(Debug, Args)]
pub struct ChannelNameArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Channel name.
    pub name: String,
}

/// `aegis notify deliveries`.
#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Only this state: gathering, pending, sent, failed.
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many (default 50).
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}
