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
    /// Output format of the report (report commands; listings take human or json; see each command's help).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Write the report to FILE instead of standard output (a summary still goes to the terminal); for
    /// `vault keygen` the key file, for `vault encrypt|decrypt` the output file or directory.
    #[arg(long, short = 'o', global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with code 1 when a finding is at or above this severity (report commands).
    #[arg(long, global = true, value_name = "SEVERITY", default_value = "high", value_parser = parse_severity)]
    pub fail_on: Severity,
    /// No progress bar, no summary on stderr; human output lists findings at or above --fail-on only.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Show evidence, remediation and references for every finding (report commands).
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
    /// A self-contained HTML page with charts (open it in a browser).
    Html,
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
    /// Assess a model: how robust is it against adversarial inputs.
    #[command(subcommand)]
    Assess(AssessCommand),
    /// Harden a model by adversarial training; writes a new ONNX model and a before/after report.
    #[command(after_help = HARDEN_EXAMPLES)]
    Harden(HardenArgs),
    /// Audit training data for poisoning: label issues, outliers, duplicates and conflicts, backdoor triggers.
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),
    /// Infer a dataset schema, or check a dataset against one.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Run the inference gateway: API keys, MFA, TLS, rate limits, budgets, audit log, metrics.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Manage the gateway's users (admin, operator, auditor, client).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the gateway's API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Register models (`model add`) and list the gateway's models with their scan verdict.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Register datasets (training, test, reference); their schema check and audit run by themselves.
    #[command(subcommand)]
    Dataset(crate::args_inventory::DatasetCommand),
    /// The inventory: models, datasets and their versions, owners, tags and links.
    #[command(subcommand, after_help = crate::args_inventory::ASSET_EXAMPLES)]
    Asset(crate::args_inventory::AssetCommand),
    /// Run checks on assets, see their runs, set their schedules.
    #[command(subcommand, after_help = crate::args_inventory::CHECK_EXAMPLES)]
    Check(crate::args_inventory::CheckCommand),
    /// Every finding of every check and live signal: list, show, triage.
    #[command(subcommand, after_help = crate::args_inventory::FINDINGS_EXAMPLES)]
    Findings(crate::args_inventory::FindingsCommand),
    /// Per asset, the latest result of each check and the open findings (human, json or html).
    Posture(crate::args_inventory::PostureArgs),
    /// Add reports made elsewhere (a CI pipeline's `--format json`) to an asset's history.
    #[command(subcommand)]
    Report(crate::args_inventory::ReportCommand),
    /// Who is told when something happens: signed webhooks and email.
    #[command(subcommand, after_help = crate::args_inventory::NOTIFY_EXAMPLES)]
    Notify(crate::args_inventory::NotifyCommand),
    /// Verify or read the gateway's hash-chained audit log.
    #[command(subcommand, name = "audit-log")]
    AuditLog(AuditLogCommand),
    /// Compare a current dataset with a reference: per-column drift tests, a dataset verdict, prediction drift.
    #[command(after_help = DRIFT_EXAMPLES)]
    Drift(DriftArgs),
    /// Encrypt models and datasets at rest (age format), sign and verify them (Ed25519 manifests).
    #[command(subcommand)]
    Vault(VaultCommand),
    /// LLM traffic tools: screen prompts for injection with the gateway's pipeline.
    #[command(subcommand)]
    Llm(crate::args_llm::LlmCommand),
}

const SERVE_EXAMPLES: &str = "Examples:
  aegis serve                                   TLS on 127.0.0.1:8443, ./aegis-data, bundled demo model
  aegis serve --config aegis.toml
  aegis serve --listen 0.0.0.0:8443 --data-dir /var/lib/aegis
  aegis serve --database postgres://aegis@db.internal/aegis   (replicas share keys, limits, audit log)
  aegis serve --plaintext --listen 127.0.0.1:8080             (behind a TLS-terminating proxy only)
  aegis serve --openapi > openapi.json

First start: a self-signed certificate is generated (its SHA-256 fingerprint is printed), and with an
empty database a one-time bootstrap code for the first admin is printed. With the demo model a client
key scoped to it is created and printed once. Then:
  curl --cacert aegis-data/tls/cert.pem -H 'Authorization: Bearer aeg_…' \\
       -d '{\"rows\":[{\"amount\":950,\"hour\":3,…}]}' https://127.0.0.1:8443/v1/models/demo-fraud/predict";

const GATEWAY_ADMIN_EXAMPLES: &str = "Examples:
  aegis user add alice --role admin              prompts for a password; prints the TOTP secret and recovery codes once
  printf '%s\\n' \"$PW\" | aegis user add bob --role operator --password-stdin
  aegis user list --format json
  aegis key create --name shop --owner acme --model demo-fraud --daily-budget 5000
  aegis key rotate k3F9x2LmQa
  aegis key revoke k3F9x2LmQa
  aegis audit-log verify

These commands work on the database directly (same --config/--data-dir/--database as `aegis serve`),
so run them on the gateway's host; changes are audited and apply at once to running gateways.";

pub use crate::args_gateway::GatewayArgs;

/// `aegis serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Address and port to listen on (default 127.0.0.1:8443).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Serve plain HTTP without TLS (only behind a TLS-terminating proxy).
    #[arg(long)]
    pub plaintext: bool,
    /// Write one JSON access-log line per request to stderr (ids, route, status, timings; never secrets or bodies).
    #[arg(long)]
    pub access_log: bool,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    pub openapi: bool,
    /// Start even when some configured models are refused (schema, scan or signature); by default the
    /// gateway does not start unless every configured model loads.
    #[arg(long)]
    pub allow_partial: bool,
}

/// `aegis user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; admins get a TOTP secret and recovery codes (shown once).
    #[command(after_help = GATEWAY_ADMIN_EXAMPLES)]
    Add(UserAddArgs),
    /// List users.
    #[command(after_help = GATEWAY_ADMIN_EXAMPLES)]
    List(GatewayArgs),
    /// Disable a user (their sessions end at once).
    Disable(UserNameArgs),
    /// Enable a disabled user.
    Enable(UserNameArgs),
    /// Clear a user's failed-login lock (after someone guessed at their password), so they can sign in now.
    #[command(after_help = "Example:\n  aegis user unlock alice --config aegis.toml")]
    Unlock(UserNameArgs),
}

/// `aegis user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// User name (letters, digits, '.', '_', '-').
    pub username: String,
    /// Role: admin, operator, auditor or client.
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

/// A user name.
#[derive(Debug, Args)]
pub struct UserNameArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// User name.
    pub username: String,
}

/// `aegis key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; the secret is printed once and stored only as a hash.
    #[command(after_help = GATEWAY_ADMIN_EXAMPLES)]
    Create(KeyCreateArgs),
    /// List keys with their scope, limits and today's use.
    List(GatewayArgs),
    /// Revoke a key; every gateway refuses it from the next request.
    Revoke(KeyIdArgs),
    /// Replace a key by a new one with the same scope and limits; the old one is revoked.
    Rotate(KeyIdArgs),
}

/// `aegis key create`.
#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// A name for the key (letters, digits, '.', '_', '-').
    #[arg(long)]
    pub name: String,
    /// Who holds it (a client, a team).
    #[arg(long)]
    pub owner: String,
    /// Model or upstream the key may use; repeatable; `*` for all.
    #[arg(long = "model", value_name = "MODEL", required = true)]
    pub models: Vec<String>,
    /// Route class the key may use: predict, infer, chat, completions, embeddings, proxy; repeatable; default all.
    #[arg(long = "route", value_name = "ROUTE")]
    pub routes: Vec<String>,
    /// Days until the key expires (0: never). Default from the configuration (90).
    #[arg(long, value_name = "DAYS")]
    pub expires_days: Option<i64>,
    /// Sustained requests per second.
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
    /// Requests allowed in a burst.
    #[arg(long, value_name = "N")]
    pub burst: Option<i64>,
    /// Requests per UTC day (0: unlimited).
    #[arg(long, value_name = "N")]
    pub daily_budget: Option<i64>,
    /// Requests per UTC month (0: unlimited).
    #[arg(long, value_name = "N")]
    pub monthly_budget: Option<i64>,
    /// Create the key even though it is beyond the configured ceilings ([key_ceilings]: rate, burst, lifetime;
    /// a key that never expires or is for every model); the audit record says so.
    #[arg(long)]
    pub unbounded: bool,
}

/// A key id.
#[derive(Debug, Args)]
pub struct KeyIdArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// The key id (`k…`, shown by `aegis key list`).
    pub id: String,
}

/// `aegis model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Register a model (with its training, test and reference data) or add a version; its checks run.
    Add(Box<crate::args_inventory::ModelAddArgs>),
    /// Load (and scan) the configured models as the gateway would, and list them.
    List(GatewayArgs),
}

/// `aegis audit-log` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditLogCommand {
    /// Check every record's hash and link; names the first edited, removed or reordered record (exit 1).
    Verify(GatewayArgs),
    /// Print the newest records first, with their time in UTC.
    #[command(
        after_help = "Examples:\n  aegis audit-log show                     the newest 100 records\n  \
aegis audit-log show --limit 20 --before 500   the 20 records before record 500\n  \
aegis audit-log show --after 1200 --format json   records after 1200 (newest first)"
    )]
    Show(AuditShowArgs),
}

/// `aegis audit-log show`.
#[derive(Debug, Args)]
pub struct AuditShowArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Only records after this sequence number.
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    pub after: i64,
    /// Only records before this sequence number (to page back from the newest).
    #[arg(long, value_name = "SEQ")]
    pub before: Option<i64>,
    /// At most this many records (the newest of those selected).
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

const AUDIT_EXAMPLES: &str = "Examples:
  aegis audit train.csv --label is_fraud
  aegis audit train.csv --label is_fraud --flags flags.csv --format json > audit.json
  aegis audit new.parquet --label y --reference trusted.parquet --schema schema.toml
  aegis audit train.csv --label y --checks outliers,backdoor --top 20
  aegis audit train.csv --label y --format html -o audit.html

Checks: labels (out-of-fold gradient-boosted trees + confident learning), outliers (isolation
forest + kNN distance over a mixed-type encoding), duplicates (exact, near, label-conflicting,
new versus --reference), backdoor (value and value-combination triggers that override what the
rest of the row says, plus spectral signatures), balance (class balance, label shift against
--reference). --flags writes `row,score,flagged,kinds` for every data row (row is 0-based).";

const SCHEMA_EXAMPLES: &str = "Examples:
  aegis schema infer train.csv --label y > schema.toml
  aegis schema check new.csv --schema schema.toml
  aegis schema check new.parquet --schema schema.toml --format sarif -o schema.sarif

The schema lists every column with its type (numeric, categorical, boolean, text, timestamp),
range, allowed categories, missing-rate bound and uniqueness, and the label's classes. Edit it
by hand to tighten it; `check` streams the file and reports each violated rule once per column
with the first offending rows.";

/// `aegis schema` subcommands.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Infer a schema from a dataset and print it as TOML.
    #[command(after_help = SCHEMA_EXAMPLES)]
    Infer(SchemaInferArgs),
    /// Check a dataset against a schema; violations are findings with row numbers.
    #[command(after_help = SCHEMA_EXAMPLES)]
    Check(SchemaCheckArgs),
}

/// How a dataset file is read (CSV or Parquet, detected from the bytes).
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// CSV field delimiter (default: sniffed from the header among , ; tab |).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<char>,
    /// The CSV has no header row (columns are named c0, c1, ...).
    #[arg(long)]
    pub no_header: bool,
    /// Cell values that mean "missing", comma-separated (default: empty, ?, NA, N/A, NaN, null, None).
    #[arg(long, value_name = "MARKERS", value_delimiter = ',')]
    pub missing: Option<Vec<String>>,
    /// Force a column's type: COLUMN=numeric|categorical|boolean|text|timestamp; repeatable.
    #[arg(long = "type", value_name = "COLUMN=TYPE")]
    pub types: Vec<String>,
    /// Columns to ignore (ids); repeatable or comma-separated.
    #[arg(long, value_name = "COLUMN", value_delimiter = ',')]
    pub drop: Vec<String>,
    /// Read at most N data rows.
    #[arg(long, value_name = "N")]
    pub max_rows: Option<usize>,
}

/// `aegis schema infer`.
#[derive(Debug, Args)]
pub struct SchemaInferArgs {
    /// CSV or Parquet file.
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// The label column (its classes become the schema's label set).
    #[arg(long, value_name = "COLUMN")]
    pub label: Option<String>,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `aegis schema check`.
#[derive(Debug, Args)]
pub struct SchemaCheckArgs {
    /// CSV or Parquet file.
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// The schema (from `aegis schema infer`).
    #[arg(long, value_name = "FILE")]
    pub schema: PathBuf,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `aegis audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Training data: CSV or Parquet.
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// The label column.
    #[arg(long, value_name = "COLUMN")]
    pub label: Option<String>,
    /// A trusted snapshot of the data (same columns): new rows and label shift are reported against it.
    #[arg(long, value_name = "TRUSTED")]
    pub reference: Option<PathBuf>,
    /// Write one line per data row, `row,score,flagged,kinds`, to this CSV file.
    #[arg(long, value_name = "FLAGS.csv")]
    pub flags: Option<PathBuf>,
    /// Also check the data against this schema (see `aegis schema`).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Checks to run, comma-separated: labels, outliers, duplicates, backdoor, balance, or all.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub checks: Vec<String>,
    /// Outliers: flag this fraction of rows (instead of the calibrated cut-off).
    #[arg(long, value_name = "RATE", conflicts_with = "top")]
    pub expected_rate: Option<f64>,
    /// Outliers: flag the K most outlying rows.
    #[arg(long, value_name = "K")]
    pub top: Option<usize>,
    /// Label check: folds for the out-of-fold predictions.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Label check: the model behind the out-of-fold predictions.
    #[arg(long, value_enum, default_value_t = LabelModelArg::Gbdt)]
    pub model: LabelModelArg,
    /// Seed for folds and sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `--model` of `aegis audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabelModelArg {
    /// Histogram gradient-boosted trees (default).
    Gbdt,
    /// k nearest neighbours (cheap).
    Knn,
}

/// `aegis assess` subcommands.
#[derive(Debug, Subcommand)]
pub enum AssessCommand {
    /// Robust accuracy under white- and black-box evasion attacks, constrained by a feature schema.
    #[command(after_help = ROBUSTNESS_EXAMPLES)]
    Robustness(RobustnessArgs),
    /// Membership inference: can a client tell whether a record was in the training set.
    #[command(after_help = PRIVACY_EXAMPLES)]
    Privacy(PrivacyArgs),
    /// Model extraction: how many queries copy the model, and would PRADA notice.
    #[command(after_help = EXTRACTION_EXAMPLES)]
    Extraction(ExtractionArgs),
    /// Red-team an OpenAI-compatible LLM endpoint: prompt injection, system-prompt leaks, jailbreaks, data leaks.
    #[command(after_help = crate::args_llm::ASSESS_LLM_EXAMPLES)]
    Llm(crate::args_llm::AssessLlmArgs),
}

const EXTRACTION_EXAMPLES: &str = "Examples:
  aegis assess extraction model.onnx --data pool.csv --label y
  aegis assess extraction model.onnx --data pool.csv --label y --budgets 100,500,2000 \\
      --strategies pool,jacobian --policies label,reverse-sigmoid:0.5:0.3 --format json

Plays the attacker: trains a surrogate from N queries (random inputs within the schema, rows of the
natural-data pool, Jacobian-augmented synthetic queries), reports its fidelity (agreement with the
model on held-out pool rows) for each query budget, with and without each output policy, and
whether PRADA would have raised an alarm and after how many queries (with its false-alarm rate on
benign streams of pool rows). AEG-EXT-001 model copyable, AEG-EXT-002 extraction undetected,
AEG-EXT-003 a policy that slows extraction.";

const PRIVACY_EXAMPLES: &str = "Examples:
  aegis assess privacy model.onnx --members train.csv --non-members holdout.csv --label y
  aegis assess privacy model.onnx --members train.csv --non-members holdout.csv --label y \\
      --policies label,top-k:1,round:2,reverse-sigmoid:1:0.1 --format json | jq '.metrics.privacy.policies'

Plays three attackers on the probabilities a client sees, first in full and then under each output
policy (the ones `aegis serve` can apply): a loss threshold (Yeom et al. 2018), a confidence
threshold, and a population attack with per-class thresholds calibrated on part of the non-members
(Ye et al. 2022). Reports ROC AUC, TPR at 1% and 0.1% FPR, the membership advantage and AUC per
class. AEG-PRIV-001 when the full output leaks membership (high: AUC >= 0.60 or TPR >= 1% at 0.1%
FPR), AEG-PRIV-002 for the policy that lowers the strongest attack most.";

const ROBUSTNESS_EXAMPLES: &str = "Examples:
  aegis assess robustness fraud.onnx --data test.csv --label is_fraud
  aegis assess robustness fraud.onnx --data test.csv --label is_fraud --schema schema.toml \\
      --eps 0.01,0.05,0.1 --eps-units range --attacks fgsm,pgd,autoattack,square
  aegis assess robustness http://127.0.0.1:8080/predict --data test.csv --label y \\
      --attacks square,hsj --queries 500 --header 'Authorization: Bearer $TOKEN'
  aegis assess robustness digits.onnx --data digits.csv --label target --format json | jq .metrics

MODEL is an ONNX file (evaluated with exact gradients: white- and black-box attacks) or an
http:// endpoint (black-box attacks only). The schema (see `aegis schema`) gives per-feature
bounds, immutable features, integer and one-hot columns and per-feature eps; without one it is
inferred from the data (bounds = observed min and max). A row counts as robust at eps when it is
classified correctly and no attack found a valid input within eps that the model gets wrong.
Without --attacks the strongest set that fits the model runs (PGD, the AutoAttack ensemble and
Square with gradients; Square and HopSkipJump for a black box): on tabular models it costs well
under a second, and a weaker set overstates robustness.";

const HARDEN_EXAMPLES: &str = "Examples:
  aegis harden --arch mlp:64,64 --data train.csv --label y --eps 0.1 --out hardened.onnx
  aegis harden model.onnx --data train.csv --label y --eps 0.05 --eps-units range --out model.hardened.onnx
  aegis harden --arch cnn:1x8x8:16:64 --data digits.csv --label target --eps 0.1 --method trades

With MODEL, an ONNX network is fine-tuned (its float weights are trained); with --arch a native
network is trained from scratch (logreg, mlp:W1,W2,..., cnn:CxHxW:FILTERS:HIDDEN). A validation
split is held out; each epoch shows clean and PGD robust validation accuracy, and the weights of
the epoch with the best robust accuracy are kept (early stopping after --patience epochs).";

/// Where the data comes from and what the model is.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// CSV or Parquet file with a header row; every column but the label (and --drop) is a model input,
    /// in order, and must be a number (or true/false) in every row.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// CSV field delimiter (default: sniffed from the header among , ; tab |).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<char>,
    /// The label column (class index or class name).
    #[arg(long, value_name = "COLUMN")]
    pub label: String,
    /// Columns to ignore (ids, timestamps); repeatable or comma-separated.
    #[arg(long, value_name = "COLUMN", value_delimiter = ',')]
    pub drop: Vec<String>,
    /// Feature schema (schema.toml); inferred from the data when absent.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// How eps is measured: `raw` feature units, or `range` = a fraction of each feature's max - min.
    #[arg(long, value_enum, default_value_t = EpsUnitsArg::Raw)]
    pub eps_units: EpsUnitsArg,
    /// Seed for sampling and attacks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `--eps-units`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EpsUnitsArg {
    /// eps in the feature's own units.
    Raw,
    /// eps as a fraction of the feature's range.
    Range,
}

/// `--norm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NormArg {
    /// Every feature moves at most eps.
    Linf,
    /// Euclidean distance at most eps.
    L2,
}

/// `aegis assess robustness`.
#[derive(Debug, Args)]
pub struct RobustnessArgs {
    /// ONNX file, or an http:// endpoint (JSON `{"instances": ...}` or KServe V2).
    #[arg(value_name = "MODEL")]
    pub model: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// Perturbation budgets, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.2")]
    pub eps: Vec<f32>,
    /// Norm of the perturbation ball.
    #[arg(long, value_enum, default_value_t = NormArg::Linf)]
    pub norm: NormArg,
    /// Attacks, comma-separated: fgsm, pgd, autoattack, square, hsj, or all. Default: the strongest
    /// set that fits the model (pgd, autoattack and square with gradients; square and hsj for a black box).
    #[arg(long, value_delimiter = ',')]
    pub attacks: Vec<String>,
    /// PGD steps.
    #[arg(long, default_value_t = 40)]
    pub steps: u32,
    /// PGD step size as a fraction of eps (default 2.5 / steps).
    #[arg(long)]
    pub step_size: Option<f32>,
    /// PGD random restarts.
    #[arg(long, default_value_t = 1)]
    pub restarts: u32,
    /// Query budget per row for each black-box attack.
    #[arg(long, default_value_t = 1000)]
    pub queries: u32,
    /// Attack at most N rows (a seeded random sample).
    #[arg(long, value_name = "N")]
    pub max_rows: Option<usize>,
    /// Adversarial examples to show.
    #[arg(long, default_value_t = 5)]
    pub examples: usize,
    /// Endpoint protocol for an http:// MODEL: `json` or `kserve:MODEL_NAME`.
    #[arg(long, default_value = "json")]
    pub protocol: String,
    /// Extra HTTP header for the endpoint, `Name: value`; repeatable.
    #[arg(long, value_name = "HEADER")]
    pub header: Vec<String>,
}

/// `aegis assess extraction`.
#[derive(Debug, Args)]
pub struct ExtractionArgs {
    /// ONNX file, or an http:// endpoint (JSON `{"instances": ...}` or KServe V2).
    #[arg(value_name = "MODEL")]
    pub model: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// Query budgets, comma-separated (cumulative queries of one stream per strategy).
    #[arg(long, value_delimiter = ',', default_value = "100,250,500,1000,2000")]
    pub budgets: Vec<usize>,
    /// Attack strategies: random, pool, jacobian; comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "random,pool,jacobian")]
    pub strategies: Vec<String>,
    /// Output policies to evaluate besides the full output; comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "label,round:1,reverse-sigmoid:0.5:0.3"
    )]
    pub policies: Vec<String>,
    /// PRADA alarm threshold on the Shapiro-Wilk W (the paper's delta).
    #[arg(long, default_value_t = 0.9)]
    pub delta: f64,
    /// Where PRADA measures distances, fitted on the pool as the gateway fits it on its reference data:
    /// `robust` (median/IQR, soft tails; the gateway's default), `normal-scores` (fewest false alarms on
    /// heavy-tailed features, weakest on fixed-step attacks) or `std` (features divided by standard deviations).
    #[arg(long, default_value = "robust")]
    pub prada_distance: aegis_monitor::prada::DistanceSpace,
    /// Endpoint protocol for an http:// MODEL: `json` or `kserve:MODEL_NAME`.
    #[arg(long, default_value = "json")]
    pub protocol: String,
    /// Extra HTTP header for the endpoint, `Name: value`; repeatable.
    #[arg(long, value_name = "HEADER")]
    pub header: Vec<String>,
}

/// `aegis assess privacy`.
#[derive(Debug, Args)]
pub struct PrivacyArgs {
    /// ONNX file, or an http:// endpoint (JSON `{"instances": ...}` or KServe V2).
    #[arg(value_name = "MODEL")]
    pub model: String,
    /// CSV of rows the model was trained on (with the label column).
    #[arg(long, value_name = "CSV")]
    pub members: PathBuf,
    /// CSV of rows from the same population that the model never saw (same columns).
    #[arg(long, value_name = "CSV")]
    pub non_members: PathBuf,
    /// CSV field delimiter of both files (default: sniffed from each header among , ; tab |).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<char>,
    /// The label column (class index or class name).
    #[arg(long, value_name = "COLUMN")]
    pub label: String,
    /// Columns to ignore (ids, timestamps); repeatable or comma-separated.
    #[arg(long, value_name = "COLUMN", value_delimiter = ',')]
    pub drop: Vec<String>,
    /// Output policies to evaluate besides the full output: label, top-k:K, round:D,
    /// reverse-sigmoid[:BETA:GAMMA]; comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "label,top-k:1,round:1,reverse-sigmoid"
    )]
    pub policies: Vec<String>,
    /// Share of the non-members held out to calibrate the population attack.
    #[arg(long, default_value_t = 0.5)]
    pub population_fraction: f64,
    /// Seed for the balancing sample and the population split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Endpoint protocol for an http:// MODEL: `json` or `kserve:MODEL_NAME`.
    #[arg(long, default_value = "json")]
    pub protocol: String,
    /// Extra HTTP header for the endpoint, `Name: value`; repeatable.
    #[arg(long, value_name = "HEADER")]
    pub header: Vec<String>,
}

/// `aegis harden`.
#[derive(Debug, Args)]
pub struct HardenArgs {
    /// ONNX model to fine-tune (omit with --arch).
    #[arg(
        value_name = "MODEL",
        required_unless_present = "arch",
        conflicts_with = "arch"
    )]
    pub model: Option<PathBuf>,
    /// Train a native network from scratch: logreg, mlp:64,64, cnn:1x8x8:16:64.
    #[arg(long)]
    pub arch: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Perturbation budget to train against.
    #[arg(long)]
    pub eps: f32,
    /// Adversarial training method.
    #[arg(long, value_enum, default_value_t = MethodArg::Pgd)]
    pub method: MethodArg,
    /// TRADES robustness weight.
    #[arg(long, default_value_t = 6.0)]
    pub beta: f32,
    /// Maximum epochs. Default: about 3,000 optimiser steps (30 to 2,000 epochs), so small tables train long
    /// enough to reach their plateau.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// PGD steps per training batch.
    #[arg(long, default_value_t = 10)]
    pub steps: u32,
    /// PGD steps for robust validation accuracy.
    #[arg(long, default_value_t = 20)]
    pub eval_steps: u32,
    /// Fraction of rows held out for validation.
    #[arg(long, default_value_t = 0.2)]
    pub val_split: f64,
    /// Stop after this many epochs without better robust validation accuracy. Default: about 600
    /// optimiser steps (at least 5 epochs).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Where to write the hardened ONNX model.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// With --arch: skip training the same network without adversarial examples for the "before" scores.
    #[arg(long)]
    pub no_baseline: bool,
}

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Madry PGD adversarial training.
    Pgd,
    /// TRADES.
    Trades,
}

const SCAN_EXAMPLES: &str = "Examples:
  aegis scan model.pt                         scan one file
  aegis scan ./models --format sarif -o aegis.sarif
  aegis scan hub-cache/ --fail-on medium      fail on anything suspicious
  aegis scan ckpt.pt --allow mylab.models.FraudNet
  aegis scan . --policy aegis.toml --format json | jq '.findings[].rule'
  aegis scan ./project --exclude '*.csv' --exclude 'tests/'   leave paths out of the walk

The format is detected from the bytes, never from the file name. Pickle globals are judged by an
allow-list (PyTorch weights_only set, numpy, scikit-learn estimators, collections, harmless builtins);
extend it with --allow or an aegis.toml policy file:

  [scan]
  allow = [\"mylab.models.FraudNet\", \"lightning.fabric.*\"]
  exclude = [\".venv/\", \"*.csv\"]
  [limits]
  max_depth = 8

Directory walks also obey ./.aegisignore in the working directory (gitignore syntax). An .aegisignore inside
the scanned tree is not obeyed (a repository must not hide its own files) and is reported (AEG-SCAN-004). A
run with nothing to scan (an empty directory, everything excluded) is an error (exit 2), not a pass.";

const RULES_EXAMPLES: &str = "Examples:
  aegis rules                      list every rule
  aegis rules AEG-SCAN-101         what, why, how to fix, references
  aegis rules --markdown > docs/rules.md
  aegis rules --format json";

/// `aegis scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories (scanned recursively; symbolic links are followed, and a link leaving the tree is
    /// reported).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Allow one more pickle global (`module.qualname` or `prefix.*`); repeatable.
    #[arg(long, value_name = "GLOBAL")]
    pub allow: Vec<String>,
    /// Policy file (allow-list and limits). Default: ./aegis.toml when it exists.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Leave paths matching GLOB out of directory walks (gitignore syntax: `*.csv`, `tests/`, `/data/raw`);
    /// repeatable, added to `[scan] exclude` and ./.aegisignore. Files named as PATH are always scanned.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Maximum nesting of archives and embedded payloads.
    #[arg(long, value_name = "N")]
    pub max_depth: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Require a signature on each PATH by this Ed25519 public key (PEM; repeatable): an unsigned PATH, a bad
    /// signature or files that differ from the signed manifest become findings (AEG-VAULT-001..003).
    #[arg(long, value_name = "FILE")]
    pub trusted_key: Vec<PathBuf>,
    /// Trust policy file (`trusted_keys = ["release.pub"]`), the same check as --trusted-key.
    #[arg(long, value_name = "FILE")]
    pub trust_policy: Option<PathBuf>,
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

const DRIFT_EXAMPLES: &str = "Examples:
  aegis drift train.csv live.csv
  aegis drift train.csv live.csv --schema schema.toml --format json
  aegis drift train.csv live.csv --model model.onnx --label fraud
  aegis drift train.csv live.csv --min-effect 0 --correction holm --share 0.3

Numeric columns: Kolmogorov-Smirnov, PSI and Jensen-Shannon on 10 reference-decile bins, Wasserstein over the
reference standard deviation. Categorical columns: chi-square, PSI and Jensen-Shannon. A column drifts when its
corrected p-value is below --alpha and PSI, W/sd (numeric) or JS (categorical) reaches --min-effect.
Findings: AEG-DRIFT-001 column (medium), AEG-DRIFT-002 dataset (high), AEG-DRIFT-003 predictions (high).";

/// `aegis drift`.
#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Reference CSV (the data the model was trained or validated on).
    #[arg(value_name = "REFERENCE")]
    pub reference: PathBuf,
    /// Current CSV to compare with the reference (same columns).
    #[arg(value_name = "CURRENT")]
    pub current: PathBuf,
    /// Dataset schema from `aegis schema infer` giving each column's kind (default: inferred from the
    /// reference's first rows: numeric when every present cell is a number, categorical otherwise).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Significance level after the multiple-testing correction.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Multiple-testing correction across columns.
    #[arg(long, value_enum, default_value_t = CorrectionArg::Bh)]
    pub correction: CorrectionArg,
    /// Effect-size floor (PSI, Wasserstein/sd or Jensen-Shannon) a rejected test must also reach; 0 turns it off.
    #[arg(long, default_value_t = 0.1)]
    pub min_effect: f64,
    /// Dataset drift when at least this share of tested columns drifted (default: any one column).
    #[arg(long, value_name = "SHARE")]
    pub share: Option<f64>,
    /// Numeric values kept exactly per column; beyond, the column switches to a KLL sketch.
    #[arg(long, value_name = "N", default_value_t = 5_000_000)]
    pub exact_limit: usize,
    /// Distinct values counted per categorical column; beyond, it is treated as text and skipped.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_categories: usize,
    /// Columns to leave out (ids); repeatable or comma-separated.
    #[arg(long, value_name = "COLUMN", value_delimiter = ',')]
    pub drop: Vec<String>,
    /// The label column: not compared, and not a model input.
    #[arg(long, value_name = "COLUMN")]
    pub label: Option<String>,
    /// ONNX model: also compare its predicted-class distribution on both files.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// CSV field delimiter (default: sniffed from each header among , ; tab |).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<char>,
    /// Cell values that mean "missing", comma-separated (default: empty, ?, NA, N/A, NaN, nan, null, NULL, None).
    #[arg(long, value_name = "MARKERS", value_delimiter = ',')]
    pub missing: Option<Vec<String>>,
}

/// Multiple-testing corrections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CorrectionArg {
    /// No correction.
    None,
    /// Bonferroni.
    Bonferroni,
    /// Holm's step-down.
    Holm,
    /// Benjamini-Hochberg (false discovery rate).
    Bh,
}

const VAULT_EXAMPLES: &str = "Examples:
  aegis vault keygen -o team.agekey                       age identity (owner-only file); prints its recipient
  aegis vault encrypt -r age1... -o model.onnx.age model.onnx
  aegis vault encrypt -R recipients.txt -a -o data.csv.age data.csv      several recipients, ASCII armor
  aegis vault encrypt -p -o model.onnx.age model.onnx     passphrase (scrypt), asked on the terminal
  aegis vault encrypt -r age1... -o models.enc/ models/   a directory: every file to models.enc/<path>.age
  aegis vault decrypt -i team.agekey -o model.onnx model.onnx.age
  aegis vault rotate -i old.agekey -r age1new... -r age1other... models.enc/*.age
  aegis vault keygen --sign -o release.key                Ed25519 key pair: release.key and release.key.pub
  aegis vault sign models/fraud/ --key release.key        writes models/fraud/model.sig
  aegis vault verify models/fraud/ --key release.key.pub  names every modified, missing or extra file

Flags follow the age command line (-r, -R, -i, -p, -a, -o), and files are interoperable with age and rage.
Output files appear only once complete: a wrong key, a tampered or truncated input leaves nothing behind.
Signatures use the OpenSSF model-signing layout (model.sig: DSSE envelope, in-toto statement, SHA-256 per file).";

/// `aegis vault` subcommands.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Generate an age identity (X25519) into -o FILE (owner-only), or with --sign an Ed25519 signing key pair.
    #[command(after_help = VAULT_EXAMPLES)]
    Keygen(VaultKeygenArgs),
    /// Encrypt a file, a directory tree or standard input to recipients or a passphrase (age format).
    #[command(after_help = VAULT_EXAMPLES)]
    Encrypt(VaultEncryptArgs),
    /// Decrypt a file, a directory tree of .age files or standard input.
    #[command(after_help = VAULT_EXAMPLES)]
    Decrypt(VaultDecryptArgs),
    /// Re-encrypt .age files in place to a new recipient set (key rotation); plaintext never touches the disk.
    #[command(after_help = VAULT_EXAMPLES)]
    Rotate(VaultRotateArgs),
    /// Sign a model directory, a dataset or a single file: a manifest of every file's SHA-256, signed with Ed25519.
    #[command(after_help = VAULT_EXAMPLES)]
    Sign(VaultSignArgs),
    /// Verify a signature and every file against its manifest; exit 1 and name each difference when it fails.
    #[command(after_help = VAULT_EXAMPLES)]
    Verify(VaultVerifyArgs),
}

/// `aegis vault keygen`.
#[derive(Debug, Args)]
pub struct VaultKeygenArgs {
    /// Generate an Ed25519 signing key pair (PKCS#8 PEM, FILE and FILE.pub) instead of an age identity.
    #[arg(long)]
    pub sign: bool,
}

/// Where age encryption goes: recipients or a passphrase.
#[derive(Debug, Args)]
pub struct RecipientArgs {
    /// Encrypt to this age recipient (age1...); repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// Encrypt to the recipients listed in FILE (one per line, # comments); repeatable.
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
    /// Encrypt with a passphrase (scrypt), asked twice on the terminal.
    #[arg(
        short = 'p',
        long,
        conflicts_with_all = ["recipients", "recipients_files", "passphrase_file"]
    )]
    pub passphrase: bool,
    /// Read the passphrase from the first line of FILE (owner-only permissions), for automation.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["recipients", "recipients_files"])]
    pub passphrase_file: Option<PathBuf>,
    /// Write ASCII-armored output (PEM-like text) instead of binary.
    #[arg(short = 'a', long)]
    pub armor: bool,
}

/// How age decryption is keyed: identities or a passphrase.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// Decrypt with the identities in FILE (age-keygen format; owner-only permissions); repeatable.
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// Read the passphrase from the first line of FILE (owner-only permissions); without -i and this, a
    /// passphrase is asked on the terminal.
    #[arg(
        long = "decrypt-passphrase-file",
        value_name = "FILE",
        conflicts_with = "identities"
    )]
    pub decrypt_passphrase_file: Option<PathBuf>,
}

/// `aegis vault encrypt`.
#[derive(Debug, Args)]
pub struct VaultEncryptArgs {
    #[command(flatten)]
    pub to: RecipientArgs,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// File or directory to encrypt (standard input when absent or -); the output is -o (standard output when
    /// absent, with -a or when it is not a terminal).
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
}

/// `aegis vault decrypt`.
#[derive(Debug, Args)]
pub struct VaultDecryptArgs {
    #[command(flatten)]
    pub with: IdentityArgs,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Encrypted file, or a directory of .age files (standard input when absent or -).
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
}

/// `aegis vault rotate`.
#[derive(Debug, Args)]
pub struct VaultRotateArgs {
    #[command(flatten)]
    pub with: IdentityArgs,
    #[command(flatten)]
    pub to: RecipientArgs,
    /// The .age files to re-encrypt in place.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// `aegis vault sign`.
#[derive(Debug, Args)]
pub struct VaultSignArgs {
    /// Model directory, dataset or single file to sign.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Ed25519 private key (from `aegis vault keygen --sign`; owner-only permissions).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Where to write the signature (default: PATH/model.sig for a directory, PATH.sig for a file).
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// Relative paths to leave out of the manifest (a directory leaves out all below it); repeatable.
    #[arg(long, value_name = "PATH")]
    pub ignore: Vec<String>,
    /// Hash the targets of symbolic links instead of refusing them.
    #[arg(long)]
    pub allow_symlinks: bool,
}

/// `aegis vault verify`.
#[derive(Debug, Args)]
pub struct VaultVerifyArgs {
    /// Model directory, dataset or single file to verify.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Trusted Ed25519 public key (PEM); repeatable: any one of them may have signed.
    #[arg(long, value_name = "FILE", required_unless_present = "trust_policy")]
    pub key: Vec<PathBuf>,
    /// Trust policy file (`trusted_keys = [\"release.pub\"]`) instead of --key.
    #[arg(long, value_name = "FILE")]
    pub trust_policy: Option<PathBuf>,
    /// The signature (default: PATH/model.sig for a directory, PATH.sig for a file).
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks on every subcommand (duplicate ids, bad defaults, conflicting flags), which
    /// otherwise only fire when that subcommand is first parsed.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
        // And the parser the binary uses, with its per-command copies of the shared flags.
        crate::scope::command().debug_assert();
    }
}
