//! A user's deployed model reached over HTTP, as a black-box [`Model`].
//!
//! Many models Aegis assesses are only reachable as a service: a TF-Serving / KServe V1 style JSON endpoint or a
//! KServe V2 (Open Inference Protocol, also Triton) endpoint. [`HttpModel`] turns such an endpoint into a
//! [`Model`], so the gradient-free attacks, audits and explanations run against it unchanged. It is never
//! [`Differentiable`](crate::Differentiable): gradients of a remote model are not available.
//!
//! What it assumes and guarantees:
//! - Plain `http://` only (the `ureq` 3 client is built without TLS). Redirects are not followed.
//! - Rows are sent in batches of [`HttpModelConfig::batch_size`]; each request is retried on connection errors,
//!   HTTP 429 and 5xx with exponential backoff (100 ms · 2^i), never on other 4xx.
//! - Every response is validated: row count, row length, finite numbers. A row of `k` values that lie in
//!   `[0, 1]` and sum to 1 (within 1e-3) is taken as probabilities (renormalised); any other finite row is taken
//!   as logits / scores and passed through a softmax. A row holding a single class index (or a class name from
//!   [`HttpModelConfig::class_names`]) becomes a one-hot vector and marks the endpoint as
//!   [labels only](HttpModel::labels_only). When a response has one number per row and any of them is not an
//!   integer, each is instead the probability of class 1 of a binary model (a sigmoid is applied when it lies
//!   outside `[0, 1]`).
//! - Proxies named by the usual environment variables (`HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) are honoured.
//! - Response bodies are read up to [`HttpModelConfig::max_response_bytes`] (64 MiB by default), never more.
//! - Header values (API keys, `Authorization`) and the query part of the URL never appear in errors,
//!   [`Model::describe`] or `Debug` output: they are redacted, and text echoed by the server is scrubbed.
//!   Credentials in the URL (`http://user:pass@host`) are refused: pass them as a header.
//! - [`HttpModel::queries`] counts rows sent and [`HttpModel::requests`] HTTP requests sent, retries included:
//!   what the endpoint was charged with, e.g. for an extraction-attack query budget.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use ureq::http::{HeaderName, HeaderValue};

use crate::error::check_shape;
use crate::{Error, Model};

/// Rows per request unless configured otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 64;
/// Retries after the first attempt unless configured otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Time allowed for one whole request (connect, send, receive) unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read unless configured otherwise: 64 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 << 20;
/// Name of the input tensor in KServe V2 requests unless configured otherwise.
pub const DEFAULT_INPUT_NAME: &str = "input";

/// First retry waits this long; each further retry waits twice as long as the one before.
const RETRY_BASE: Duration = Duration::from_millis(100);
/// No single wait between retries is longer than this.
const RETRY_MAX_WAIT: Duration = Duration::from_secs(30);
/// At most this much of an error response body is read and quoted.
const ERROR_BODY_BYTES: u64 = 4096;
/// At most this many characters of an error response body are quoted.
const ERROR_SNIPPET_CHARS: usize = 300;
/// A row of values in `[0, 1]` whose sum is within this of 1 is a probability vector.
const SUM_TOLERANCE: f64 = 1e-3;
/// Header values and URL parts shorter than this are not scrubbed from echoed text (they would mangle it and
/// are not meaningful secrets); they are still never printed by us.
const MIN_SCRUB_LEN: usize = 4;
/// Whitespace-separated parts of a header value are scrubbed on their own from this length on.
const MIN_SCRUB_PART_LEN: usize = 8;

/// The wire protocol an endpoint speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// POST `{"instances": [[f32, ...], ...]}` to the URL as given. The response is `{"predictions": ...}`,
    /// `{"probabilities": ...}`, `{"outputs": ...}` or a bare array, one entry per row: a probability (or
    /// score) vector, a class index, or a class name.
    Json,
    /// KServe V2 / Open Inference Protocol: POST to `{url}/v2/models/{model}/infer` with one `FP32` input
    /// tensor of shape `[n, n_features]`; the first output tensor (`[n, k]` scores or `[n]` labels) is read.
    KServeV2 {
        /// The model name in the path (letters, digits, `.`, `_`, `-`).
        model: String,
    },
}

/// How to reach an HTTP model and what it computes.
///
/// `Debug` never shows header values, nor the user-info or query of the URL.
#[derive(Clone)]
pub struct HttpModelConfig {
    /// `http://host:port/path`: the full endpoint for [`Protocol::Json`], the server base for
    /// [`Protocol::KServeV2`].
    pub url: String,
    /// The wire protocol.
    pub protocol: Protocol,
    /// Input features per row.
    pub n_features: usize,
    /// Number of classes; `None` to learn it from the first response (which must then carry score vectors,
    /// or [`class_names`](Self::class_names) must be given).
    pub n_classes: Option<usize>,
    /// Rows per request (default 64).
    pub batch_size: usize,
    /// Retries after the first attempt on connection errors, 429 and 5xx (default 3).
    pub max_retries: u32,
    /// Time allowed for one whole request, per attempt (default 30 s).
    pub timeout: Duration,
    /// Extra request headers, e.g. `("Authorization", "Bearer …")`. Values are treated as secrets.
    pub headers: Vec<(String, String)>,
    /// Input tensor name for [`Protocol::KServeV2`] (default `input`); unused by [`Protocol::Json`].
    pub input_name: String,
    /// Class names in class-index order, for endpoints that answer with a label string per row. Empty when
    /// the endpoint answers with numbers. When given, its length is the number of classes.
    pub class_names: Vec<String>,
    /// Largest response body read (default 64 MiB); a larger body is an error.
    pub max_response_bytes: u64,
}

impl HttpModelConfig {
    /// A configuration with the defaults: classes learnt from the first response, batches of 64, 3 retries,
    /// 30 s timeout, no extra headers, input name `input`, 64 MiB response bound.
    pub fn new(url: impl Into<String>, protocol: Protocol, n_features: usize) -> Self {
        HttpModelConfig {
            url: url.into(),
            protocol,
            n_features,
            n_classes: None,
            batch_size: DEFAULT_BATCH_SIZE,
            max_retries: DEFAULT_MAX_RETRIES,
            timeout: DEFAULT_TIMEOUT,
            headers: Vec::new(),
            input_name: DEFAULT_INPUT_NAME.to_string(),
            class_names: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// The same configuration with one more request header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl fmt::Debug for HttpModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpModelConfig")
            .field("url", &redact_url(&self.url))
            .field("protocol", &self.protocol)
            .field("n_features", &self.n_features)
            .field("n_classes", &self.n_classes)
            .field("batch_size", &self.batch_size)
            .field("max_retries", &self.max_retries)
            .field("timeout", &self.timeout)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("input_name", &self.input_name)
            .field("class_names", &self.class_names)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// Header names with their values hidden, for `Debug`.
struct RedactedHeaders<'a>(&'a [(String, String)]);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| (name.as_str(), "<redacted>")))
            .finish()
    }
}

/// A model served over HTTP: a black box with a query counter.
pub struct HttpModel {
    config: HttpModelConfig,
    /// The URL requests are POSTed to.
    post_url: String,
    /// `post_url` with user-info and query redacted: the only form ever printed.
    shown: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Whether the user set `Content-Type` themselves.
    has_content_type: bool,
    /// Strings scrubbed from any text we report (header values, URL secrets).
    secrets: Vec<String>,
    agent: ureq::Agent,
    /// 0 while unknown.
    n_classes: AtomicUsize,
    labels_only: AtomicBool,
    queries: AtomicU64,
    requests: AtomicU64,
}

impl fmt::Debug for HttpModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpModel")
            .field("endpoint", &self.shown)
            .field("config", &self.config)
            .field("n_classes", &self.n_classes.load(Ordering::Relaxed))
            .field("labels_only", &self.labels_only())
            .field("queries", &self.queries())
            .field("requests", &self.requests())
            .finish()
    }
}

/// One failed attempt.
struct Failure {
    message: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn fatal(message: String) -> Self {
        Failure {
            message,
            retryable: false,
            retry_after: None,
        }
    }
}

/// One value the endpoint gave for a whole row.
enum Cell {
    Num(f64),
    Text(String),
}

/// The rows of a response, before they are checked against the model.
enum Rows {
    /// One score or probability vector per row.
    Vectors(Vec<Vec<f64>>),
    /// One class index, class name or binary score per row.
    Scalars(Vec<Cell>),
}

impl HttpModel {
    /// Check `config` and build the client; sends nothing. Bad configuration is [`Error::Load`] naming the
    /// (redacted) URL.
    pub fn new(config: HttpModelConfig) -> Result<Self, Error> {
        let shown_url = redact_url(&config.url);
        let bad = |reason: String| Error::Load {
            path: PathBuf::from(&shown_url),
            reason,
        };
        let url = config.url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad("the URL must start with http://".into()));
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err(bad(
                "https endpoints are not supported by this build (plain http only)".into(),
            ));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(bad(format!(
                "unsupported URL scheme `{scheme}`: the URL must start with http://"
            )));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if rest[..authority_end].contains('@') {
            return Err(bad(
                "credentials in the URL are not sent: pass them as a header (e.g. Authorization)"
                    .into(),
            ));
        }
        if rest.contains('#') {
            return Err(bad("the URL must not have a #fragment".into()));
        }
        let endpoint = match &config.protocol {
            Protocol::Json => url.to_string(),
            Protocol::KServeV2 { model } => {
                if model.is_empty()
                    || !model
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                {
                    return Err(bad(format!(
                        "KServe V2 model name {model:?} must be non-empty letters, digits, `.`, `_` or `-`"
                    )));
                }
                let (base, query) = match url.split_once('?') {
                    Some((b, q)) => (b, Some(q)),
                    None => (url, None),
                };
                let mut endpoint =
                    format!("{}/v2/models/{model}/infer", base.trim_end_matches('/'));
                if let Some(q) = query {
                    endpoint.push('?');
                    endpoint.push_str(q);
                }
                endpoint
            }
        };
        let shown = redact_url(&endpoint);
        let bad = |reason: String| Error::Load {
            path: PathBuf::from(&shown),
            reason,
        };
        match ureq::http::Uri::try_from(endpoint.as_str()) {
            Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => {}
            _ => return Err(bad("not a valid http:// URL with a host".into())),
        }
        if config.n_features == 0 {
            return Err(bad("n_features must be at least 1".into()));
        }
        if config.batch_size == 0 {
            return Err(bad("batch_size must be at least 1".into()));
        }
        if config.timeout.is_zero() {
            return Err(bad("timeout must be positive".into()));
        }
        if config.max_response_bytes == 0 {
            return Err(bad("max_response_bytes must be positive".into()));
        }
        if matches!(config.protocol, Protocol::KServeV2 { .. }) && config.input_name.is_empty() {
            return Err(bad("input_name must not be empty".into()));
        }
        let mut n_classes = config.n_classes.unwrap_or(0);
        if config.n_classes.is_some_and(|k| k < 2) {
            return Err(bad("n_classes must be at least 2".into()));
        }
        if !config.class_names.is_empty() {
            if n_classes == 0 {
                n_classes = config.class_names.len();
            }
            if config.class_names.len() != n_classes || n_classes < 2 {
                return Err(bad(format!(
                    "{} class names given for {n_classes} classes (need one name per class, at least 2)",
                    config.class_names.len()
                )));
            }
        }

        let mut headers = Vec::with_capacity(config.headers.len());
        let mut secrets = Vec::new();
        let mut has_content_type = false;
        for (name, value) in &config.headers {
            let name = name.trim();
            let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
                // Only the leading token is shown: a whole `Name: value` line may have been passed as the name.
                let start: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .take(40)
                    .collect();
                return Err(bad(format!("invalid header name starting {start:?}")));
            };
            if matches!(
                header_name.as_str(),
                "content-length" | "transfer-encoding" | "host" | "connection"
            ) {
                return Err(bad(format!(
                    "header `{name}` is managed by the client and cannot be set"
                )));
            }
            // The value is never echoed: only the header name is named.
            let Ok(mut header_value) = HeaderValue::from_str(value) else {
                return Err(bad(format!(
                    "the value of header `{name}` is not a valid header value"
                )));
            };
            header_value.set_sensitive(true);
            has_content_type |= header_name == ureq::http::header::CONTENT_TYPE;
            push_secret(&mut secrets, value, MIN_SCRUB_LEN);
            // The token of `Bearer <token>` may be echoed alone; a short word like `Bearer` is not scrubbed.
            for part in value.split_whitespace() {
                push_secret(&mut secrets, part, MIN_SCRUB_PART_LEN);
            }
            headers.push((header_name, header_value));
        }
        for secret in url_secrets(&config.url) {
            push_secret(&mut secrets, &secret, MIN_SCRUB_LEN);
        }
        // Longest first, so a value is scrubbed whole before any of its parts.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));

        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(config.timeout))
            .user_agent(concat!("aegis/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(HttpModel {
            n_classes: AtomicUsize::new(n_classes),
            config,
            post_url: endpoint,
            shown,
            headers,
            has_content_type,
            secrets,
            agent,
            labels_only: AtomicBool::new(false),
            queries: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// Rows sent to the endpoint so far, retries included.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Whether the endpoint has answered with class labels instead of scores: its probabilities are one-hot
    /// and carry no confidence, so only decision-based (label-only) methods apply.
    pub fn labels_only(&self) -> bool {
        self.labels_only.load(Ordering::Relaxed)
    }

    /// The number of classes, once configured or learnt from a response.
    pub fn known_n_classes(&self) -> Option<usize> {
        match self.n_classes.load(Ordering::Relaxed) {
            0 => None,
            k => Some(k),
        }
    }

    /// The URL requests go to, with user-info and query redacted: safe to print.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// The configuration this model was built from.
    pub fn config(&self) -> &HttpModelConfig {
        &self.config
    }

    /// Send one row (`n_features` values) and return the number of classes, learning it if it was not
    /// configured. Costs one query.
    pub fn probe(&self, row: &[f32]) -> Result<usize, Error> {
        self.predict_proba(row, 1)?;
        self.known_n_classes().ok_or_else(|| {
            self.eval_err("the endpoint did not reveal the number of classes".into())
        })
    }

    fn eval_err(&self, message: String) -> Error {
        Error::Eval(format!("POST {}: {}", self.shown, self.scrub(&message)))
    }

    /// Remove every secret from text that may quote the server or the URL.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }

    fn encode(&self, chunk: &[f32], rows: usize) -> Result<Vec<u8>, Error> {
        encode_body(
            &self.config.protocol,
            &self.config.input_name,
            chunk,
            rows,
            self.config.n_features,
        )
        .map_err(|e| self.eval_err(format!("cannot encode the request: {e}")))
    }

    /// POST `body` (carrying `rows` rows), retrying as configured; the response body on success.
    fn post(&self, body: &[u8], rows: usize) -> Result<Vec<u8>, Error> {
        let attempts = self.config.max_retries.saturating_add(1);
        let mut last = String::new();
        for attempt in 0..attempts {
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.queries.fetch_add(rows as u64, Ordering::Relaxed);
            match self.send_once(body) {
                Ok(bytes) => return Ok(bytes),
                Err(f) if f.retryable && attempt + 1 < attempts => {
                    let backoff = RETRY_BASE
                        .saturating_mul(1u32 << attempt.min(16))
                        .min(RETRY_MAX_WAIT);
                    let wait = f
                        .retry_after
                        .map_or(backoff, |ra| ra.min(self.config.timeout).max(backoff));
                    std::thread::sleep(wait);
                    last = f.message;
                }
                Err(f) if f.retryable => {
                    last = f.message;
                }
                Err(f) => return Err(self.eval_err(f.message)),
            }
        }
        let tries = if attempts == 1 {
            "1 attempt".to_string()
        } else {
            format!("{attempts} attempts")
        };
        Err(self.eval_err(format!("{last} (gave up after {tries})")))
    }

    fn send_once(&self, body: &[u8]) -> Result<Vec<u8>, Failure> {
        let mut request = self.agent.post(&self.post_url);
        for (name, value) in &self.headers {
            request = request.header(name.clone(), value.clone());
        }
        if !self.has_content_type {
            request = request.header(ureq::http::header::CONTENT_TYPE, "application/json");
        }
        request = request.header(ureq::http::header::ACCEPT, "application/json");
        let mut response = match request.send(body) {
            Ok(r) => r,
            Err(e) => {
                return Err(Failure {
                    retryable: retryable_error(&e),
                    message: describe_error(&e),
                    retry_after: None,
                })
            }
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return match response
                .body_mut()
                .with_config()
                .limit(self.config.max_response_bytes)
                .read_to_vec()
            {
                Ok(bytes) => Ok(bytes),
                Err(ureq::Error::BodyExceedsLimit(limit)) => Err(Failure::fatal(format!(
                    "response body is larger than the {limit}-byte limit"
                ))),
                Err(e) => Err(Failure {
                    retryable: retryable_error(&e),
                    message: format!("reading the response: {}", describe_error(&e)),
                    retry_after: None,
                }),
            };
        }
        let retry_after = response
            .headers()
            .get(ureq::http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut quoted = Vec::new();
        // Best effort: the status alone is the error if the body cannot be read.
        let _ = response
            .body_mut()
            .as_reader()
            .take(ERROR_BODY_BYTES)
            .read_to_end(&mut quoted);
        let snippet = snippet(&quoted);
        let mut message = format!("HTTP {status}");
        if let Some(reason) = response.status().canonical_reason() {
            message.push(' ');
            message.push_str(reason);
        }
        if (300..400).contains(&status) {
            message.push_str(" (redirects are not followed: configure the final URL)");
        }
        if !snippet.is_empty() {
            message.push_str(": ");
            message.push_str(&snippet);
        }
        Err(Failure {
            message,
            retryable: status == 429 || status >= 500,
            retry_after,
        })
    }

    /// Check and convert one response for `n` rows into `n * n_classes` probabilities.
    fn decode(&self, bytes: &[u8], n: usize) -> Result<Vec<f32>, String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("response is not JSON: {e}"))?;
        let rows = match &self.config.protocol {
            Protocol::Json => json_rows(&value, n)?,
            Protocol::KServeV2 { .. } => kserve_rows(&value, n)?,
        };
        match rows {
            Rows::Vectors(rows) => self.finish_vectors(&rows),
            Rows::Scalars(cells) => self.finish_scalars(&cells),
        }
    }

    /// Record `k` classes if unknown, or check it against what is known.
    fn settle_classes(&self, k: usize, what: &str) -> Result<usize, String> {
        match self
            .n_classes
            .compare_exchange(0, k, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => Ok(k),
            Err(known) if known == k => Ok(k),
            Err(known) => Err(format!("{what} {k} classes, but the model has {known}")),
        }
    }

    fn finish_vectors(&self, rows: &[Vec<f64>]) -> Result<Vec<f32>, String> {
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let k = first.len();
        if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != k) {
            return Err(format!(
                "row {i} has {} values but row 0 has {k}",
                row.len()
            ));
        }
        if k < 2 {
            return Err(format!(
                "rows have {k} values; expected one score per class (at least 2)"
            ));
        }
        let k = self.settle_classes(k, "rows have values for")?;
        let mut out = Vec::with_capacity(rows.len() * k);
        for (i, row) in rows.iter().enumerate() {
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(format!("row {i} value {j} is not a finite number"));
            }
            out.extend(to_probabilities(row).into_iter().map(|p| p as f32));
        }
        Ok(out)
    }

    fn finish_scalars(&self, cells: &[Cell]) -> Result<Vec<f32>, String> {
        let mut values = Vec::with_capacity(cells.len());
        for (i, cell) in cells.iter().enumerate() {
            let v = match cell {
                Cell::Num(v) => *v,
                Cell::Text(s) => match self.config.class_names.iter().position(|c| c == s) {
                    Some(c) => c as f64,
                    None => s.trim().parse::<f64>().map_err(|_| {
                        let shown: String = s.chars().take(64).collect();
                        format!(
                            "row {i} is the label {shown:?}, which is neither a class index nor one of the \
                             configured class_names"
                        )
                    })?,
                },
            };
            if !v.is_finite() {
                return Err(format!("row {i} is not a finite number"));
            }
            values.push(v);
        }
        if values.iter().all(|v| v.fract() == 0.0) {
            // Class indices: the endpoint reveals labels only.
            let k = self.known_n_classes().ok_or_else(|| {
                "the endpoint answers with class labels only; set n_classes (or class_names) in the configuration"
                    .to_string()
            })?;
            let mut out = vec![0.0f32; values.len() * k];
            for (i, &v) in values.iter().enumerate() {
                if v < 0.0 || v >= k as f64 {
                    return Err(format!("row {i} is class {v}, outside 0..{k}"));
                }
                out[i * k + v as usize] = 1.0;
            }
            self.labels_only.store(true, Ordering::Relaxed);
            return Ok(out);
        }
        // One score per row: the probability (or logit) of class 1 of a binary model.
        self.settle_classes(2, "rows have one score each, i.e.")?;
        let mut out = Vec::with_capacity(values.len() * 2);
        for v in values {
            let p = if (0.0..=1.0).contains(&v) {
                v
            } else {
                sigmoid(v)
            };
            out.push((1.0 - p) as f32);
            out.push(p as f32);
        }
        Ok(out)
    }
}

impl Model for HttpModel {
    fn n_features(&self) -> usize {
        self.config.n_features
    }

    /// The configured or learnt number of classes; 0 until the first response when it was not configured
    /// (see [`HttpModel::probe`]).
    fn n_classes(&self) -> usize {
        self.n_classes.load(Ordering::Relaxed)
    }

    fn predict_proba(&self, x: &[f32], n: usize) -> Result<Vec<f32>, Error> {
        let d = self.config.n_features;
        check_shape(x, n, d)?;
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(self.eval_err(format!(
                "input row {} feature {} is not finite; JSON cannot carry NaN or infinity",
                i / d,
                i % d
            )));
        }
        let batch = self.config.batch_size.max(1);
        let mut out = Vec::with_capacity(n * self.n_classes());
        for start in (0..n).step_by(batch) {
            let m = batch.min(n - start);
            let body = self.encode(&x[start * d..(start + m) * d], m)?;
            let bytes = self.post(&body, m)?;
            let probs = self
                .decode(&bytes, m)
                .map_err(|msg| self.eval_err(format!("invalid response: {msg}")))?;
            out.extend(probs);
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        match self.config.protocol {
            Protocol::Json => format!("http-json {}", self.shown),
            Protocol::KServeV2 { .. } => format!("http-kserve-v2 {}", self.shown),
        }
    }
}

/// The request body for `rows` rows of `d` features (all finite).
fn encode_body(
    protocol: &Protocol,
    input_name: &str,
    chunk: &[f32],
    rows: usize,
    d: usize,
) -> serde_json::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(chunk.len() * 12 + 64);
    match protocol {
        Protocol::Json => {
            let rows: Vec<&[f32]> = chunk.chunks(d.max(1)).collect();
            body.extend_from_slice(b"{\"instances\":");
            serde_json::to_writer(&mut body, &rows)?;
            body.push(b'}');
        }
        Protocol::KServeV2 { .. } => {
            body.extend_from_slice(b"{\"inputs\":[{\"name\":");
            serde_json::to_writer(&mut body, input_name)?;
            body.extend_from_slice(
                format!(",\"shape\":[{rows},{d}],\"datatype\":\"FP32\",\"data\":").as_bytes(),
            );
            serde_json::to_writer(&mut body, chunk)?;
            body.extend_from_slice(b"}]}");
        }
    }
    Ok(body)
}

/// The rows of a JSON-protocol response: the first of `predictions`, `probabilities`, `outputs`, or a bare
/// array.
fn json_rows(value: &Value, n: usize) -> Result<Rows, String> {
    let rows = match value {
        Value::Array(rows) => rows,
        Value::Object(map) => {
            let found = ["predictions", "probabilities", "outputs"]
                .iter()
                .find_map(|key| map.get(*key));
            match found {
                Some(Value::Array(rows)) => rows,
                Some(_) => return Err("the predictions are not an array".into()),
                None => {
                    let keys: Vec<&str> = map.keys().take(10).map(|k| k.as_str()).collect();
                    return Err(format!(
                        "expected `predictions`, `probabilities` or `outputs`, found keys {keys:?}"
                    ));
                }
            }
        }
        _ => return Err("expected a JSON object or array".into()),
    };
    if rows.len() != n {
        return Err(format!("response has {} rows, expected {n}", rows.len()));
    }
    let mut vectors = Vec::new();
    let mut cells = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match row {
            Value::Array(items) if items.len() == 1 => cells.push(cell(&items[0], i)?),
            Value::Array(items) => {
                let mut v = Vec::with_capacity(items.len());
                for (j, item) in items.iter().enumerate() {
                    v.push(
                        item.as_f64()
                            .ok_or_else(|| format!("row {i} value {j} is not a number"))?,
                    );
                }
                vectors.push(v);
            }
            other => cells.push(cell(other, i)?),
        }
    }
    match (vectors.is_empty(), cells.is_empty()) {
        (_, true) => Ok(Rows::Vectors(vectors)),
        (true, false) => Ok(Rows::Scalars(cells)),
        (false, false) => Err("rows mix score vectors and single labels".into()),
    }
}

/// The rows of a KServe V2 response: its first output tensor, `[n, k]` scores or `[n]` / `[n, 1]` labels.
fn kserve_rows(value: &Value, n: usize) -> Result<Rows, String> {
    let output = value
        .get("outputs")
        .and_then(Value::as_array)
        .and_then(|o| o.first())
        .ok_or("expected a non-empty `outputs` array")?;
    let raw = output
        .get("data")
        .and_then(Value::as_array)
        .ok_or("outputs[0] has no `data` array")?;
    let mut data = Vec::with_capacity(raw.len());
    flatten(raw, &mut data);
    let shape: Vec<usize> = match output.get("shape") {
        Some(Value::Array(dims)) => dims
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or("outputs[0].shape is not a list of sizes")?,
        Some(_) => return Err("outputs[0].shape is not a list of sizes".into()),
        None if n > 0 && data.len() % n == 0 => vec![n, data.len() / n],
        None => {
            return Err(format!(
                "outputs[0] has {} values and no shape, for {n} rows",
                data.len()
            ))
        }
    };
    let rows = shape.first().copied().unwrap_or(0);
    if rows != n {
        return Err(format!(
            "response has {rows} rows (outputs[0].shape {shape:?}), expected {n}"
        ));
    }
    let k = match shape.as_slice() {
        [_] => 1,
        [_, k] if *k > 0 => *k,
        _ => {
            return Err(format!(
                "outputs[0].shape {shape:?} is not [n] or [n, k] with k > 0"
            ))
        }
    };
    if n.checked_mul(k) != Some(data.len()) {
        return Err(format!(
            "outputs[0] has {} values but its shape {shape:?} needs {}",
            data.len(),
            n * k
        ));
    }
    if k == 1 {
        return data
            .iter()
            .enumerate()
            .map(|(i, v)| cell(v, i))
            .collect::<Result<_, _>>()
            .map(Rows::Scalars);
    }
    let mut vectors = Vec::with_capacity(n);
    for (i, row) in data.chunks(k).enumerate() {
        let mut v = Vec::with_capacity(k);
        for (j, item) in row.iter().enumerate() {
            v.push(
                item.as_f64()
                    .ok_or_else(|| format!("row {i} value {j} is not a number"))?,
            );
        }
        vectors.push(v);
    }
    Ok(Rows::Vectors(vectors))
}

/// Nested `data` arrays (allowed by some servers) flattened in row-major order.
fn flatten<'a>(values: &'a [Value], out: &mut Vec<&'a Value>) {
    for v in values {
        match v {
            Value::Array(inner) => flatten(inner, out),
            other => out.push(other),
        }
    }
}

fn cell(value: &Value, row: usize) -> Result<Cell, String> {
    match value {
        Value::Number(num) => num
            .as_f64()
            .map(Cell::Num)
            .ok_or_else(|| format!("row {row} is not a finite number")),
        Value::String(s) => Ok(Cell::Text(s.clone())),
        _ => Err(format!(
            "row {row} is neither a score vector nor a class label"
        )),
    }
}

/// A finite row as probabilities: kept (renormalised) when it already is a distribution, else softmax.
fn to_probabilities(row: &[f64]) -> Vec<f64> {
    let sum: f64 = row.iter().sum();
    if row.iter().all(|v| (0.0..=1.0).contains(v)) && (sum - 1.0).abs() <= SUM_TOLERANCE {
        return row.iter().map(|v| v / sum).collect();
    }
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / total).collect()
}

fn sigmoid(v: f64) -> f64 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

fn retryable_error(e: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    use ureq::Timeout;
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Timeout(t) => matches!(t, Timeout::Resolve | Timeout::Connect),
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::NotConnected
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::NetworkDown
                | ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

fn describe_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    }
}

/// Printable start of an error body: control characters blanked, cut to a few hundred characters.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .trim()
        .chars()
        .take(ERROR_SNIPPET_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().count() > ERROR_SNIPPET_CHARS {
        out.push('…');
    }
    out
}

fn push_secret(secrets: &mut Vec<String>, s: &str, min_len: usize) {
    let s = s.trim();
    if s.len() >= min_len && !secrets.iter().any(|t| t == s) {
        secrets.push(s.to_string());
    }
}

/// The parts of a URL that may hold credentials: the user-info (and its password) and the query.
fn url_secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if let Some((userinfo, _)) = rest[..authority_end].rsplit_once('@') {
        out.push(userinfo.to_string());
        if let Some((_, password)) = userinfo.split_once(':') {
            out.push(password.to_string());
        }
    }
    if let Some((_, query)) = rest.split_once('?') {
        let query = query.split('#').next().unwrap_or_default();
        out.push(query.to_string());
        for pair in query.split('&') {
            out.push(pair.split_once('=').map_or(pair, |(_, v)| v).to_string());
        }
    }
    out
}

/// `url` with its user-info and query replaced by `<redacted>` (and any fragment dropped): safe to print.
fn redact_url(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("<redacted>@{host}"),
        None => authority.to_string(),
    };
    let tail = tail.split('#').next().unwrap_or_default();
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?<redacted>"),
        None => tail.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{host}{tail}"),
        None => format!("{host}{tail}"),
    }
}
