//! `aegis.toml`: what the gateway serves and how. Every field has a safe default, so `aegis serve` with no
//! file at all starts with TLS on, the embedded database and the bundled demo model.
//!
//! Paths in the file are relative to the file's directory. Unknown keys are refused (a typo in a security
//! setting must not silently fall back to the default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aegis_ml::output_policy::OutputPolicy;
use aegis_monitor::prada::{DistanceSpace, PradaConfig};
use aegis_monitor::window::WindowConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener, storage, TLS and request limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Limits given to new API keys unless the key says otherwise.
    #[serde(default)]
    pub defaults: KeyDefaults,
    /// What an operator may grant a key at most.
    #[serde(default)]
    pub key_ceilings: KeyCeilings,
    /// Local ONNX models.
    #[serde(default, rename = "model")]
    pub models: Vec<ModelConfig>,
    /// Upstream model servers.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    /// The checks the server runs by itself on registered assets (`[checks]`).
    #[serde(default)]
    pub checks: ChecksConfig,
    /// `aegis scan`'s allow-list section: the same `aegis.toml` may hold both (read by the scanner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<toml::Table>,
    /// `aegis scan`'s safety bounds section (read by the scanner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<toml::Table>,
}

fn default_warn_findings() -> Option<aegis_core::Severity> {
    Some(aegis_core::Severity::High)
}

/// How the server checks the assets registered in it (`[checks]` in `aegis.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksConfig {
    /// Run checks on this node (replicas sharing a database may leave it to some of them).
    pub worker: bool,
    /// Checks running at once on this node; heavy ones (assessments, audits) run one at a time regardless.
    pub concurrency: usize,
    /// Public keys (PEM) model signatures must verify with; without them an unsigned model is a medium finding.
    pub trusted_keys: Vec<PathBuf>,
    /// Most rows a robustness or privacy check attacks.
    pub max_rows: usize,
    /// Largest model or dataset accepted by upload or registration, in MiB.
    pub max_upload_mib: u64,
    /// Store model and dataset files encrypted (age) in the data directory.
    pub encrypt_objects: bool,
    /// The age identity file objects are encrypted to (created owner-only when absent); default
    /// `objects.agekey` in the data directory. An identity made with `aegis vault keygen` works.
    pub objects_key: Option<PathBuf>,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        ChecksConfig {
            worker: true,
            concurrency: 2,
            trusted_keys: Vec::new(),
            max_rows: 200,
            max_upload_mib: 16 * 1024,
            encrypt_objects: false,
            objects_key: None,
        }
    }
}

impl ChecksConfig {
    /// The settings the store's checks share.
    pub fn settings(&self) -> aegis_store::checks::CheckSettings {
        aegis_store::checks::CheckSettings {
            trusted_keys: self.trusted_keys.clone(),
            max_rows: Some(self.max_rows.max(10)),
        }
    }

    /// The objects key file when objects are encrypted at rest.
    pub fn objects_key(&self, data_dir: &Path) -> Option<PathBuf> {
        self.encrypt_objects.then(|| {
            self.objects_key
                .clone()
                .unwrap_or_else(|| data_dir.join("objects.agekey"))
        })
    }

    /// The upload bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_upload_mib.max(1).saturating_mul(1 << 20)
    }
}

/// `[server] console_path`: empty, or `/` followed by path segments of letters, digits, `-`, `_` and `.`,
/// without a trailing `/`.
fn check_console_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Ok(());
    }
    let ok = path.starts_with('/')
        && !path.ends_with('/')
        && path[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        && !matches!(
            path,
            "/admin" | "/v1" | "/v2" | "/upstream" | "/metrics" | "/healthz"
        );
    if ok {
        Ok(())
    } else {
        Err(format!(
            "[server] console_path {path:?} must be empty or look like \"/aegis\" (a leading /, no trailing /, \
             letters, digits, -, _ and .; not a route of the API)"
        ))
    }
}

/// Listener, storage, TLS and request limits (Debug shows the database URL without its password).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the embedded database, the generated certificate and unpacked models.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: `aegis.db` in `data_dir`.
    pub database: Option<String>,
    /// Serve plain HTTP (no TLS). Only for a loopback listener behind a TLS terminator.
    pub plaintext: bool,
    /// The secrets key file (session MAC key, sealed TOTP secrets); default `secrets.key` in `data_dir`. Keep it
    /// apart from database backups; replicas sharing a database must share it.
    pub secrets_file: Option<PathBuf>,
    /// PEM certificate chain; with `tls_key`. Without both, a self-signed certificate is generated.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Time allowed to receive the request headers, in milliseconds.
    pub header_timeout_ms: u64,
    /// Time allowed to receive the request body, in milliseconds.
    pub body_timeout_ms: u64,
    /// Time a session token stays valid, in seconds.
    pub session_ttl_secs: i64,
    /// Serve the bundled demo model when no `[[model]]` is configured.
    pub demo_model: bool,
    /// Start even when some configured models are refused (schema, scan, signature); by default the gateway
    /// does not start unless every configured model loads.
    pub allow_partial: bool,
    /// Serve `/metrics` without a session (for a Prometheus scraper on a trusted network).
    pub metrics_public: bool,
    /// Write one JSON access-log line per request to stderr.
    pub access_log: bool,
    /// Addresses of reverse proxies in front of the gateway whose `X-Forwarded-For` and `Forwarded` headers
    /// are trusted (the client address they report is passed on). From anyone else these headers are
    /// dropped, and the gateway sends upstream only what it saw itself.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Refusals without a valid key or session are recorded once per source address per this many seconds,
    /// the rest counted in one summary record (see `aegis audit-log show`).
    pub refusal_summary_secs: u64,
    /// Most rows one inference request may carry (local models); each row costs one unit of the key's rate limit
    /// and budgets.
    pub max_rows_per_request: usize,
    /// Most connections open at once; at the cap the idlest connection is closed to make room.
    pub max_connections: usize,
    /// Most connections open at once from one client address (`trusted_proxies` excepted); answers that its
    /// connections have kept waiting on the client for 2 s count as connections too.
    pub max_connections_per_address: usize,
    /// MiB of answers all connections together may hold (built and not yet taken by the clients); above it the
    /// connections holding the most are closed.
    pub max_buffered_mib: u64,
    /// A connection with no request in flight is closed after this many seconds.
    pub idle_timeout_secs: u64,
    /// A client that does not read what it is sent (answers, HTTP/2 window updates) is disconnected after
    /// this many seconds; clients that read, however slowly, keep streaming.
    pub write_timeout_secs: u64,
    /// Where the console is mounted: `""` (at `/`) or a path such as `/aegis` when a reverse proxy forwards
    /// that prefix unchanged.
    pub console_path: String,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database",
                &self.database.as_deref().map(crate::db::redact_url),
            )
            .field("plaintext", &self.plaintext)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: PathBuf::from("aegis-data"),
            database: None,
            secrets_file: None,
            plaintext: false,
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 1 << 20,
            header_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            session_ttl_secs: 8 * 3600,
            demo_model: true,
            allow_partial: false,
            metrics_public: false,
            access_log: false,
            trusted_proxies: Vec::new(),
            refusal_summary_secs: 60,
            max_rows_per_request: 1000,
            max_connections: 4096,
            max_connections_per_address: 256,
            max_buffered_mib: 256,
            idle_timeout_secs: 60,
            write_timeout_secs: 30,
            console_path: String::new(),
        }
    }
}

/// Limits given to new API keys. Limits and budgets count cost units: one per row of a local model's batch, one
/// per request on other routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyDefaults {
    /// Sustained units (rows) per second.
    pub rate_per_sec: f64,
    /// Units allowed in a burst above the sustained rate (also the largest batch a key may send at once).
    pub burst: i64,
    /// Units per UTC day (0: unlimited).
    pub daily_budget: i64,
    /// Units per UTC month (0: unlimited).
    pub monthly_budget: i64,
    /// Days until a new key expires (0: never).
    pub expires_days: i64,
}

impl Default for KeyDefaults {
    fn default() -> Self {
        KeyDefaults {
            rate_per_sec: 100.0,
            burst: 200,
            daily_budget: 100_000,
            monthly_budget: 0,
            expires_days: 90,
        }
    }
}

/// The most an operator may grant a key. Beyond any of them (or a key for every model, or one that never
/// expires) only an admin may create it, by asking for it explicitly (`unbounded`), and the audit record says so.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyCeilings {
    /// Highest sustained requests per second.
    pub max_rate_per_sec: f64,
    /// Largest burst.
    pub max_burst: i64,
    /// Longest lifetime, in days (a key that never expires is beyond it).
    pub max_expires_days: i64,
}

impl Default for KeyCeilings {
    fn default() -> Self {
        KeyCeilings {
            max_rate_per_sec: 1000.0,
            max_burst: 2000,
            max_expires_days: 365,
        }
    }
}

/// A local ONNX model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Name in routes (`/v1/models/{name}/predict`).
    pub name: String,
    /// Version string reported to clients.
    #[serde(default = "default_version")]
    pub version: String,
    /// The ONNX file.
    pub path: PathBuf,
    /// Input schema (`[[feature]]` TOML, as `aegis assess` uses): names, order, kinds and ranges.
    pub schema: PathBuf,
    /// Class names, in output order (default `0`, `1`, …).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Serve even when `aegis scan` finds something at or above `high` (the override is audited).
    #[serde(default)]
    pub allow_scan_findings: bool,
    /// Add an `x-aegis-findings` header to answers while the model's asset has open findings at or above this
    /// severity (default `high`; accepted risks and dismissed findings do not count).
    #[serde(default = "default_warn_findings")]
    pub warn_findings: Option<aegis_core::Severity>,
    /// Withhold the model (503) while its asset has open findings at or above this severity (default: never).
    #[serde(default)]
    pub refuse_findings: Option<aegis_core::Severity>,
    /// Output hardening applied to every answer of this model (`{ policy = "top-k", k = 1 }`; default `full`).
    #[serde(default)]
    pub output: OutputPolicy,
    /// Keyed watermarking of a small fraction of answers (DAWN-style); off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<WatermarkConfig>,
    /// Model-extraction detection per API key (PRADA); on by default with action `alert`.
    #[serde(default)]
    pub extraction: ExtractionConfig,
    /// Reference data (CSV with the model's feature columns by name): enables live drift monitoring and the
    /// detector's out-of-distribution signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<PathBuf>,
    /// Live drift windows (needs `reference`; defaults apply when `reference` is set and this is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<WindowConfig>,
    /// age identity file (owner-only) that decrypts `path`, an age-encrypted model, in memory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// Trusted Ed25519 public keys (PEM): the model is served only with a valid signature by one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_keys: Vec<PathBuf>,
    /// The model's signature (`aegis vault sign` of the plaintext model file; default: the model path without
    /// `.age`, plus `.sig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<PathBuf>,
    /// Serve even when the signature is missing or fails (the override and its reason are audited).
    #[serde(default)]
    pub allow_unverified: bool,
    /// The SHA-256 (hex) the model's plaintext must have, checked after decryption and before the signature:
    /// pins one release, so an older file signed under the same name (a rollback) is refused. No override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl ModelConfig {
    /// A model with every optional setting at its default.
    pub fn new(name: &str, path: PathBuf, schema: PathBuf) -> ModelConfig {
        ModelConfig {
            name: name.to_string(),
            version: default_version(),
            path,
            schema,
            classes: Vec::new(),
            allow_scan_findings: false,
            warn_findings: default_warn_findings(),
            refuse_findings: None,
            output: OutputPolicy::Full,
            watermark: None,
            extraction: ExtractionConfig::default(),
            reference: None,
            drift: None,
            identity: None,
            trusted_keys: Vec::new(),
            signature: None,
            allow_unverified: false,
            sha256: None,
        }
    }

    /// Checks of the theft and drift settings; the error names the model and the field.
    fn check_guards(&self) -> std::result::Result<(), String> {
        let bad = |field: &str, what: String| Err(format!("model {:?}: {field} {what}", self.name));
        if self.signature.is_some() && self.trusted_keys.is_empty() {
            return bad(
                "signature",
                "needs trusted_keys: a signature checked against no key proves nothing".into(),
            );
        }
        if let Some(pin) = &self.sha256 {
            if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad(
                    "sha256",
                    format!("{pin:?} is not a SHA-256 digest (64 hexadecimal digits, as `sha256sum` prints)"),
                );
            }
        }
        if self.allow_unverified && self.trusted_keys.is_empty() {
            return bad(
                "allow_unverified",
                "only makes sense with trusted_keys (without them nothing is verified)".into(),
            );
        }
        match &self.output {
            OutputPolicy::TopK { k } if *k == 0 => {
                return bad("output.k", "must be at least 1".into())
            }
            OutputPolicy::Round { decimals }
                if *decimals > aegis_ml::output_policy::MAX_ROUND_DECIMALS =>
            {
                return bad(
                    "output.decimals",
                    format!(
                        "must be at most {} (got {decimals})",
                        aegis_ml::output_policy::MAX_ROUND_DECIMALS
                    ),
                )
            }
            OutputPolicy::ReverseSigmoid { beta, gamma } => {
                if !(beta.is_finite() && *beta > 0.0) {
                    return bad(
                        "output.beta",
                        format!("must be a finite number > 0 (got {beta})"),
                    );
                }
                if !(gamma.is_finite() && *gamma > 0.0) {
                    return bad(
                        "output.gamma",
                        format!("must be a finite number > 0 (got {gamma})"),
                    );
                }
            }
            _ => {}
        }
        if let Some(w) = &self.watermark {
            if !(w.fraction.is_finite() && w.fraction > 0.0 && w.fraction <= 0.5) {
                return bad(
                    "watermark.fraction",
                    format!("must be in (0, 0.5] (got {})", w.fraction),
                );
            }
        }
        let e = &self.extraction;
        if e.throttle_secs == 0 || e.throttle_secs > 86_400 {
            return bad(
                "extraction.throttle_secs",
                format!("must be 1–86400 seconds (got {})", e.throttle_secs),
            );
        }
        if let Some(d) = e.delta {
            if !(d.is_finite() && d > 0.0 && d < 1.0) {
                return bad("extraction.delta", format!("must be in (0, 1) (got {d})"));
            }
        }
        if let Some(w) = e.window {
            if !(3..=5000).contains(&w) {
                return bad(
                    "extraction.window",
                    format!("must be 3–5000 (Shapiro–Wilk's range) (got {w})"),
                );
            }
        }
        if let Some(m) = e.min_distances {
            if m < 3 || m > e.window.unwrap_or(5000) {
                return bad(
                    "extraction.min_distances",
                    format!("must be at least 3 and at most the window (got {m})"),
                );
            }
        }
        if let Some(r) = e.max_representatives {
            if !(1..=100_000).contains(&r) {
                return bad(
                    "extraction.max_representatives",
                    format!("must be 1–100000 (got {r})"),
                );
            }
        }
        if let Some(m) = e.low_margin {
            if !(m.is_finite() && (0.0..=1.0).contains(&m)) {
                return bad(
                    "extraction.low_margin",
                    format!("must be in [0, 1] (got {m})"),
                );
            }
        }
        if let Some(scale) = &e.scale {
            if scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return bad("extraction.scale", "values must be finite and > 0".into());
            }
        }
        if let Err(err) = e.prada().validate() {
            return bad("extraction", err.to_string());
        }
        if let Some(d) = &self.drift {
            if self.reference.is_none() {
                return bad(
                    "drift",
                    "needs `reference` (the data the live windows are compared with)".into(),
                );
            }
            if !(10..=1_000_000).contains(&d.size) {
                return bad(
                    "drift.size",
                    format!("must be 10–1000000 rows (got {})", d.size),
                );
            }
            if !(d.alpha.is_finite() && d.alpha > 0.0 && d.alpha < 1.0) {
                return bad(
                    "drift.alpha",
                    format!("must be in (0, 1) (got {})", d.alpha),
                );
            }
            if !(d.psi_threshold.is_finite() && d.psi_threshold > 0.0) {
                return bad(
                    "drift.psi_threshold",
                    format!("must be a finite number > 0 (got {})", d.psi_threshold),
                );
            }
        }
        Ok(())
    }
}

/// `[model.watermark]`: which key marks answers, and how many.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    /// File holding the secret key (at least 16 bytes; owner-only permissions, or the gateway refuses it).
    pub key_file: PathBuf,
    /// Share of answers marked, in (0, 0.5] (DAWN uses a few percent).
    #[serde(default = "default_watermark_fraction")]
    pub fraction: f64,
}

fn default_watermark_fraction() -> f64 {
    0.02
}

/// What the gateway does once a key raised the extraction alarm on a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractionAction {
    /// Audit, count and log the alarm; keep answering.
    #[default]
    Alert,
    /// Answer the key at most once per `throttle_secs` on this model (429 with Retry-After otherwise).
    Throttle,
    /// Refuse the key on this model (403) until an admin clears it.
    Block,
}

impl ExtractionAction {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtractionAction::Alert => "alert",
            ExtractionAction::Throttle => "throttle",
            ExtractionAction::Block => "block",
        }
    }
}

/// `[model.extraction]`: the PRADA detector's settings (unset fields take `PradaConfig`'s defaults) and the
/// action on alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractionConfig {
    /// Run the detector for this model (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `alert` (default), `throttle` or `block`.
    #[serde(default)]
    pub action: ExtractionAction,
    /// With `throttle`: one answer per this many seconds.
    #[serde(default = "default_throttle_secs")]
    pub throttle_secs: u64,
    /// PRADA's δ: alarm when the Shapiro–Wilk W falls below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// Distances needed before the first test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_distances: Option<usize>,
    /// Most recent distances tested (≤ 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Representative queries kept per class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_representatives: Option<usize>,
    /// Top-two margin below which a query counts as near the decision boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_margin: Option<f64>,
    /// With reference data: `normal-scores` (default) or `std`; see [`DistanceSpace`].
    #[serde(default)]
    pub distance: DistanceSpace,
    /// Explicit per-feature divisors before distances (overrides `distance`; without reference data and
    /// without `scale`, the schema's ranges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Vec<f64>>,
    /// Run the test once every this many new distances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_every: Option<usize>,
    /// Most predicted classes tracked per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_classes: Option<usize>,
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        ExtractionConfig {
            enabled: true,
            action: ExtractionAction::Alert,
            throttle_secs: default_throttle_secs(),
            delta: None,
            min_distances: None,
            window: None,
            max_representatives: None,
            low_margin: None,
            distance: DistanceSpace::default(),
            scale: None,
            test_every: None,
            max_classes: None,
        }
    }
}

impl ExtractionConfig {
    /// The detector settings: `PradaConfig`'s defaults with the configured fields over them.
    // The struct update keeps the defaults of fields PradaConfig may gain later.
    #[allow(clippy::needless_update)]
    pub fn prada(&self) -> PradaConfig {
        let d = PradaConfig::default();
        PradaConfig {
            delta: self.delta.unwrap_or(d.delta),
            min_distances: self.min_distances.unwrap_or(d.min_distances),
            window: self.window.unwrap_or(d.window),
            max_representatives: self.max_representatives.unwrap_or(d.max_representatives),
            low_margin: self.low_margin.unwrap_or(d.low_margin),
            scale: self.scale.clone().unwrap_or_default(),
            test_every: self.test_every.unwrap_or(d.test_every),
            max_classes: self.max_classes.unwrap_or(d.max_classes),
            ..d
        }
    }
}

fn yes() -> bool {
    true
}

fn default_throttle_secs() -> u64 {
    10
}

fn default_version() -> String {
    "1".into()
}

/// The protocol an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Any JSON `predict` API: requests are forwarded to `url` + the path after `/upstream/{name}`.
    Predict,
    /// KServe / Triton V2 inference protocol (`/v2/models/{model}/infer`).
    V2,
    /// An OpenAI-compatible LLM server (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`).
    Openai,
}

/// An upstream model server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Name in routes and key scopes.
    pub name: String,
    /// Base URL (`http://host:port`).
    pub url: String,
    /// What it speaks.
    pub protocol: Protocol,
    /// Model names it serves (V2 model names, OpenAI `model` values). Empty for `predict`: the upstream's
    /// name is the model name in key scopes.
    #[serde(default)]
    pub models: Vec<String>,
    /// Requests in flight to this upstream at most; more wait for a slot (then time out).
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Time allowed for the upstream's response headers, in milliseconds (streams may then run longer).
    #[serde(default = "default_upstream_timeout")]
    pub timeout_ms: u64,
    /// The LLM guard (`openai` upstreams only; on by default for them, see [`crate::llm_guard`]).
    #[serde(default)]
    pub llm_guard: Option<crate::llm_policy::LlmGuardConfig>,
}

fn default_concurrency() -> usize {
    64
}

fn default_upstream_timeout() -> u64 {
    60_000
}

impl Config {
    /// Read and check `path`; relative paths inside become relative to its directory.
    pub fn load(path: &Path) -> Result<Config> {
        let bad = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(Error::io("read", path))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(bad(format!("larger than {MAX_CONFIG_BYTES} bytes")));
        }
        let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
        let mut config: Config = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.check().map_err(bad)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for m in &mut self.models {
            fix(&mut m.path);
            fix(&mut m.schema);
            if let Some(r) = &mut m.reference {
                fix(r);
            }
            if let Some(w) = &mut m.watermark {
                fix(&mut w.key_file);
            }
            for p in m
                .identity
                .iter_mut()
                .chain(m.signature.iter_mut())
                .chain(m.trusted_keys.iter_mut())
            {
                fix(p);
            }
        }
        for u in &mut self.upstreams {
            if let Some(g) = &mut u.llm_guard {
                for p in g.model_dir.iter_mut().chain(g.head.iter_mut()) {
                    fix(p);
                }
            }
        }
        for p in self
            .checks
            .trusted_keys
            .iter_mut()
            .chain(self.checks.objects_key.iter_mut())
        {
            fix(p);
        }
        fix(&mut self.server.data_dir);
        if let Some(p) = &mut self.server.secrets_file {
            fix(p);
        }
        if let Some(url) = &mut self.server.database {
            *url = sqlite_url_against(url, base);
        }
        if let Some(p) = &mut self.server.tls_cert {
            fix(p);
        }
        if let Some(p) = &mut self.server.tls_key {
            fix(p);
        }
    }

    /// Consistency checks that serde cannot express.
    pub fn check(&self) -> std::result::Result<(), String> {
        check_console_path(&self.server.console_path)?;
        let mut names = std::collections::HashSet::new();
        for m in &self.models {
            check_name(&m.name)?;
            if !names.insert(m.name.clone()) {
                return Err(format!("model name {:?} is used twice", m.name));
            }
            m.check_guards()?;
        }
        for u in &self.upstreams {
            check_name(&u.name)?;
            if !names.insert(u.name.clone()) {
                return Err(format!(
                    "upstream name {:?} clashes with another model or upstream",
                    u.name
                ));
            }
            if !u.url.starts_with("http://") {
                return Err(format!(
                    "upstream {:?}: url must start with http:// (TLS to upstreams is not supported yet)",
                    u.name
                ));
            }
            match (&u.llm_guard, u.protocol) {
                (Some(g), Protocol::Openai) => g.check(&u.name)?,
                (Some(_), _) => {
                    return Err(format!(
                        "upstream {:?}: llm_guard applies only to protocol = \"openai\"; remove it",
                        u.name
                    ))
                }
                (None, _) => {}
            }
            if u.max_concurrency == 0 {
                return Err(format!(
                    "upstream {:?}: max_concurrency must be at least 1",
                    u.name
                ));
            }
        }
        // A key scoped to a name must mean one thing: an upstream's name may not also be a model it or another
        // upstream serves, nor a local model's name.
        for u in &self.upstreams {
            for other in &self.upstreams {
                if other.models.iter().any(|m| m == &u.name) {
                    return Err(format!(
                        "upstream name {:?} is also a model served by upstream {:?}; rename one",
                        u.name, other.name
                    ));
                }
            }
        }
        for m in &self.models {
            if self
                .upstreams
                .iter()
                .any(|u| u.models.iter().any(|x| x == &m.name))
            {
                return Err(format!(
                    "model name {:?} is also served by an upstream; rename one",
                    m.name
                ));
            }
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err("tls_cert and tls_key go together".into());
        }
        if self.server.max_body_bytes == 0 {
            return Err("max_body_bytes must be positive".into());
        }
        let rate = self.defaults.rate_per_sec;
        if !rate.is_finite() || rate <= 0.0 || self.defaults.burst < 1 {
            return Err("defaults: rate_per_sec must be > 0 and burst ≥ 1".into());
        }
        Ok(())
    }

    /// The secrets key file: `server.secrets_file`, or `secrets.key` in the data directory.
    pub fn secrets_path(&self) -> PathBuf {
        self.server
            .secrets_file
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join(crate::secrets::DEFAULT_FILE))
    }

    /// The database URL: the configured one, or the embedded file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.server.database {
            Some(url) => url.clone(),
            None => crate::db::sqlite_url(&self.server.data_dir.join("aegis.db")),
        }
    }
}

/// A `sqlite:` URL whose file path is relative, made relative to `base` (the config file's directory); any
/// other URL unchanged.
fn sqlite_url_against(url: &str, base: &Path) -> String {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_owned();
    };
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.is_empty() || path == ":memory:" || Path::new(path).is_absolute() {
        return url.to_owned();
    }
    let joined = base.join(path);
    match query {
        Some(q) => format!("sqlite://{}?{q}", joined.display()),
        None => format!("sqlite://{}", joined.display()),
    }
}

/// Model, upstream and key names: 1–64 characters of `[A-Za-z0-9._-]`.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be 1–64 characters of letters, digits, '.', '_' or '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("aegis.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn an_empty_file_gives_safe_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&write(dir.path(), "")).unwrap();
        assert!(!c.server.plaintext);
        assert_eq!(c.server.listen.ip().to_string(), "127.0.0.1");
        assert!(c.models.is_empty());
    }

    #[test]
    fn relative_paths_follow_the_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&write(
            dir.path(),
            "[[model]]\nname = \"fraud\"\npath = \"m.onnx\"\nschema = \"s.toml\"\n",
        ))
        .unwrap();
        assert_eq!(c.models[0].path, dir.path().join("m.onnx"));
        // The data directory and a SQLite database follow the file too, so `aegis key create --config
        // etc/aegis.toml` run from anywhere opens the database the running gateway uses.
        assert_eq!(c.server.data_dir, dir.path().join("aegis-data"));
        let c = Config::load(&write(
            dir.path(),
            "[server]\ndata_dir = \"state\"\ndatabase = \"sqlite://db/aegis.db?mode=rwc\"\n",
        ))
        .unwrap();
        assert_eq!(c.server.data_dir, dir.path().join("state"));
        assert_eq!(
            c.database_url(),
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("db/aegis.db").display()
            )
        );
        let base = Path::new("/etc/aegis");
        assert_eq!(
            sqlite_url_against("sqlite:a.db", base),
            "sqlite:///etc/aegis/a.db"
        );
        for kept in [
            "sqlite:///var/lib/aegis.db",
            "sqlite::memory:",
            "postgres://u:p@db/aegis",
        ] {
            assert_eq!(sqlite_url_against(kept, base), kept);
        }
        let err = Config::load(&write(dir.path(), "[server]\nplaintex = true\n")).unwrap_err();
        assert!(err.to_string().contains("plaintex"), "{err}");
        assert!(err.to_string().contains("aegis.toml"), "{err}");
    }

    #[test]
    fn clashing_names_and_https_upstreams_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let twice = "[[model]]\nname = \"a\"\npath = \"m\"\nschema = \"s\"\n[[upstream]]\nname = \"a\"\nurl = \"http://x\"\nprotocol = \"predict\"\n";
        assert!(Config::load(&write(dir.path(), twice)).is_err());
        let tls = "[[upstream]]\nname = \"b\"\nurl = \"https://x\"\nprotocol = \"openai\"\n";
        assert!(Config::load(&write(dir.path(), tls))
            .unwrap_err()
            .to_string()
            .contains("http://"));
        // An upstream name that is also a served model would make one key scope mean two things.
        let shadow = "[[upstream]]\nname = \"llama\"\nurl = \"http://x\"\nprotocol = \"predict\"\n[[upstream]]\nname = \"llm\"\nurl = \"http://y\"\nprotocol = \"openai\"\nmodels = [\"llama\"]\n";
        assert!(Config::load(&write(dir.path(), shadow))
            .unwrap_err()
            .to_string()
            .contains("also a model"));
        let distinct = shadow.replace("models = [\"llama\"]", "models = [\"llama-70b\"]");
        assert!(Config::load(&write(dir.path(), &distinct)).is_ok());
        assert!(check_name("fraud-v2.1").is_ok());
        assert!(check_name("../etc").is_err());
    }
}
