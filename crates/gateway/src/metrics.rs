//! The gateway's Prometheus metrics: a small registry of counters, gauges and histograms rendered in the text
//! exposition format 0.0.4 on `/metrics`.
//!
//! Our own rather than a metrics crate because the gateway needs few families and wants two properties a generic
//! registry does not give by default: updates are lock-free atomics after a short map lookup, and label values
//! (which come from routes and key ids, so partly from clients) are bounded: at most [`MAX_SERIES`] label sets
//! per family, each value cut to [`MAX_LABEL_BYTES`]; further label sets are counted under the value `other`, so a
//! client cycling through paths or keys cannot grow memory without bound.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
pub(crate) const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Most distinct label sets per family; more are folded into one set whose values are all `other`.
pub(crate) const MAX_SERIES: usize = 10_000;
/// Longest label value kept, in bytes (longer ones are cut on a character boundary).
pub(crate) const MAX_LABEL_BYTES: usize = 256;
/// Most families created through [`Metrics::set_gauge`].
pub(crate) const MAX_GAUGE_FAMILIES: usize = 256;
/// The label value that collects label sets beyond the cap.
pub(crate) const OTHER: &str = "other";

const REQUESTS: &str = "aegis_requests_total";
const DURATION: &str = "aegis_request_duration_seconds";
const OVERHEAD: &str = "aegis_gateway_overhead_seconds";
const DENIALS: &str = "aegis_denials_total";
const BUDGET_USED: &str = "aegis_budget_used";
const BUDGET_LIMIT: &str = "aegis_budget_limit";
const AUDIT_QUEUE: &str = "aegis_audit_queue_depth";
const BUILT_IN: [&str; 7] = [
    REQUESTS,
    DURATION,
    OVERHEAD,
    DENIALS,
    BUDGET_USED,
    BUDGET_LIMIT,
    AUDIT_QUEUE,
];

/// Label sets of one family, each with its value cell, capped at [`MAX_SERIES`].
#[derive(Debug)]
struct Family<T> {
    series: RwLock<HashMap<Vec<String>, Arc<T>>>,
}

impl<T: Default> Family<T> {
    fn new() -> Family<T> {
        Family {
            series: RwLock::new(HashMap::new()),
        }
    }

    /// The cell for `key`; when the family is full and `key` is new, the cell for `overflow()` instead.
    fn cell(&self, key: Vec<String>, overflow: impl FnOnce() -> Vec<String>) -> Arc<T> {
        if let Some(cell) = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Arc::clone(cell);
        }
        let mut map = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(cell) = map.get(&key) {
            return Arc::clone(cell);
        }
        let key = if map.len() >= MAX_SERIES {
            overflow()
        } else {
            key
        };
        Arc::clone(map.entry(key).or_default())
    }

    /// Every label set and its cell, sorted by label values (stable output).
    fn snapshot(&self) -> Vec<(Vec<String>, Arc<T>)> {
        let mut all: Vec<_> = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// Bucket counts (not cumulative; the last slot is above the largest bound) and the sum in nanoseconds.
#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// The two latency histograms of one route.
#[derive(Debug, Default)]
struct RouteLatency {
    total: Histogram,
    overhead: Histogram,
}

/// A key's budget use and limit for one period.
#[derive(Debug, Default)]
struct Budget {
    used: AtomicI64,
    limit: AtomicI64,
}

/// An `f64` gauge stored as its bits.
#[derive(Debug, Default)]
struct Gauge(AtomicU64);

/// A family made through [`Metrics::set_gauge`]; keys are label names and values, alternating, sorted by name.
#[derive(Debug)]
struct GaugeFamily {
    help: String,
    /// `gauge` or `counter`.
    kind: &'static str,
    series: Family<Gauge>,
}

/// The registry. Share it behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<AtomicU64>,
    latency: Family<RouteLatency>,
    denials: Family<AtomicU64>,
    budgets: Family<Budget>,
    audit_queue: AtomicI64,
    gauges: RwLock<BTreeMap<String, Arc<GaugeFamily>>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// `v` cut to [`MAX_LABEL_BYTES`] on a character boundary.
fn clip(v: &str) -> String {
    if v.len() <= MAX_LABEL_BYTES {
        return v.to_string();
    }
    let mut cut = MAX_LABEL_BYTES;
    while !v.is_char_boundary(cut) {
        cut -= 1;
    }
    v[..cut].to_string()
}

/// The `i`-th label value of a key (always present by construction; empty otherwise rather than a panic).
fn at(key: &[String], i: usize) -> &str {
    key.get(i).map_or("", String::as_str)
}

fn others(n: usize) -> Vec<String> {
    vec![OTHER.to_string(); n]
}

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not the reserved `__` prefix).
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a gauge named `name` would clash with a built-in family or one of its sample names.
fn reserved(name: &str) -> bool {
    BUILT_IN.iter().any(|b| {
        name == *b
            || name
                .strip_prefix(b)
                .is_some_and(|rest| matches!(rest, "_bucket" | "_sum" | "_count"))
    })
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        Metrics {
            requests: Family::new(),
            latency: Family::new(),
            denials: Family::new(),
            budgets: Family::new(),
            audit_queue: AtomicI64::new(0),
            gauges: RwLock::new(BTreeMap::new()),
        }
    }

    /// Count one answered request and its latency: `total` from first byte in to response out, `overhead` the
    /// part spent in the gateway itself (total minus time waiting for the model or upstream).
    pub fn observe_request(&self, route: &str, status: u16, total: Duration, overhead: Duration) {
        self.requests
            .cell(vec![clip(route), status.to_string()], || others(2))
            .fetch_add(1, Ordering::Relaxed);
        let latency = self.latency.cell(vec![clip(route)], || others(1));
        latency.total.observe(total);
        latency.overhead.observe(overhead);
    }

    /// Count one refused request by reason (`no_key`, `bad_key`, `revoked`, `rate_limit`, `budget` …).
    pub fn denial(&self, reason: &str) {
        self.denials
            .cell(vec![clip(reason)], || others(1))
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Record a key's budget use and limit for a period (`day`, `month`).
    pub fn budget_use(&self, key_id: &str, period: &str, used: i64, limit: i64) {
        let cell = self
            .budgets
            .cell(vec![clip(key_id), clip(period)], || others(2));
        cell.used.store(used, Ordering::Relaxed);
        cell.limit.store(limit, Ordering::Relaxed);
    }

    /// Set a gauge of a family other modules define (drift scores, audit chain length…). The first call's `help`
    /// names the family. Calls with an invalid metric or label name, a repeated label name, or a name that
    /// clashes with a built-in family are ignored, as are new families beyond [`MAX_GAUGE_FAMILIES`].
    pub fn set_gauge(&self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        if let Some(cell) = self.custom_cell(name, help, "gauge", labels) {
            cell.0.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    /// Add `delta` to a counter of a family other modules define (alarms, drift windows…); same rules as
    /// [`Metrics::set_gauge`] (a name already used by a gauge family keeps that family's type).
    pub fn add_counter(&self, name: &str, help: &str, labels: &[(&str, &str)], delta: f64) {
        if let Some(cell) = self.custom_cell(name, help, "counter", labels) {
            let _ = cell
                .0
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                    Some((f64::from_bits(bits) + delta).to_bits())
                });
        }
    }

    /// The cell of one label set of a custom family, creating the family (of type `kind`) on first use.
    fn custom_cell(
        &self,
        name: &str,
        help: &str,
        kind: &'static str,
        labels: &[(&str, &str)],
    ) -> Option<Arc<Gauge>> {
        if !valid_metric_name(name) || reserved(name) {
            return None;
        }
        let mut sorted: Vec<(&str, &str)> = labels.to_vec();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        if sorted.iter().any(|(n, _)| !valid_label_name(n))
            || sorted.windows(2).any(|w| w[0].0 == w[1].0)
        {
            return None;
        }
        let family = {
            let existing = self
                .gauges
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(name)
                .cloned();
            match existing {
                Some(f) => f,
                None => {
                    let mut map = self.gauges.write().unwrap_or_else(PoisonError::into_inner);
                    if !map.contains_key(name) && map.len() >= MAX_GAUGE_FAMILIES {
                        return None;
                    }
                    Arc::clone(map.entry(name.to_string()).or_insert_with(|| {
                        Arc::new(GaugeFamily {
                            help: help.to_string(),
                            kind,
                            series: Family::new(),
                        })
                    }))
                }
            }
        };
        let key: Vec<String> = sorted
            .iter()
            .flat_map(|(n, v)| [n.to_string(), clip(v)])
            .collect();
        let overflow = || {
            sorted
                .iter()
                .flat_map(|(n, _)| [n.to_string(), OTHER.to_string()])
                .collect()
        };
        Some(family.series.cell(key, overflow))
    }

    /// Set the number of audit events waiting to be written.
    pub fn audit_queue(&self, depth: i64) {
        self.audit_queue.store(depth, Ordering::Relaxed);
    }

    /// Every family in the Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);

        header(
            &mut out,
            REQUESTS,
            "Requests answered, by route and status.",
            "counter",
        );
        for (key, cell) in self.requests.snapshot() {
            sample(
                &mut out,
                REQUESTS,
                &[("route", at(&key, 0)), ("status", at(&key, 1))],
                &cell.load(Ordering::Relaxed).to_string(),
            );
        }

        let latency = self.latency.snapshot();
        header(
            &mut out,
            DURATION,
            "Time from request to response, by route, in seconds.",
            "histogram",
        );
        for (key, cell) in &latency {
            histogram(&mut out, DURATION, at(key, 0), &cell.total);
        }
        header(
            &mut out,
            OVERHEAD,
            "Time spent in the gateway itself (excluding the model or upstream), by route, in seconds.",
            "histogram",
        );
        for (key, cell) in &latency {
            histogram(&mut out, OVERHEAD, at(key, 0), &cell.overhead);
        }

        header(&mut out, DENIALS, "Requests refused, by reason.", "counter");
        for (key, cell) in self.denials.snapshot() {
            sample(
                &mut out,
                DENIALS,
                &[("reason", at(&key, 0))],
                &cell.load(Ordering::Relaxed).to_string(),
            );
        }

        let budgets = self.budgets.snapshot();
        header(
            &mut out,
            BUDGET_USED,
            "Queries counted against a key's budget in the current period.",
            "gauge",
        );
        for (key, cell) in &budgets {
            sample(
                &mut out,
                BUDGET_USED,
                &[("key", at(key, 0)), ("period", at(key, 1))],
                &cell.used.load(Ordering::Relaxed).to_string(),
            );
        }
        header(
            &mut out,
            BUDGET_LIMIT,
            "A key's query budget for the period (0: unlimited).",
            "gauge",
        );
        for (key, cell) in &budgets {
            sample(
                &mut out,
                BUDGET_LIMIT,
                &[("key", at(key, 0)), ("period", at(key, 1))],
                &cell.limit.load(Ordering::Relaxed).to_string(),
            );
        }

        header(
            &mut out,
            AUDIT_QUEUE,
            "Audit events queued and not yet written.",
            "gauge",
        );
        sample(
            &mut out,
            AUDIT_QUEUE,
            &[],
            &self.audit_queue.load(Ordering::Relaxed).to_string(),
        );

        let gauges: Vec<(String, Arc<GaugeFamily>)> = self
            .gauges
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        for (name, family) in gauges {
            header(&mut out, &name, &family.help, family.kind);
            for (key, cell) in family.series.snapshot() {
                let labels: Vec<(&str, &str)> = key
                    .chunks(2)
                    .filter_map(|pair| match pair {
                        [n, v] => Some((n.as_str(), v.as_str())),
                        _ => None,
                    })
                    .collect();
                let value = f64::from_bits(cell.0.load(Ordering::Relaxed));
                sample(&mut out, &name, &labels, &number(value));
            }
        }
        out
    }
}

/// `# HELP` (backslashes and newlines escaped) and `# TYPE` lines.
fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line; label values escaped (`\\`, `\"`, `\n`).
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (n, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(n);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// A float as Prometheus writes it (`NaN`, `+Inf`, `-Inf`, otherwise plain decimal).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

/// `_bucket` lines (cumulative, ending with `+Inf`), `_sum` and `_count` of one route's histogram. The count is
/// the `+Inf` bucket, so the two always agree even while other tasks observe.
fn histogram(out: &mut String, name: &str, route: &str, h: &Histogram) {
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0u64;
    for (i, bound) in BUCKETS.iter().enumerate() {
        cumulative += h.counts[i].load(Ordering::Relaxed);
        sample(
            out,
            &bucket,
            &[("route", route), ("le", &bound.to_string())],
            &cumulative.to_string(),
        );
    }
    cumulative += h.counts[BUCKETS.len()].load(Ordering::Relaxed);
    sample(
        out,
        &bucket,
        &[("route", route), ("le", "+Inf")],
        &cumulative.to_string(),
    );
    let sum = h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
    sample(
        out,
        &format!("{name}_sum"),
        &[("route", route)],
        &number(sum),
    );
    sample(
        out,
        &format!("{name}_count"),
        &[("route", route)],
        &cumulative.to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// One parsed sample line.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    impl Sample {
        fn label(&self, name: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// A strict little parser of the text format: HELP/TYPE at most once per family, TYPE before its samples,
    /// each family's lines contiguous, label values unescaped (only `\\`, `\"`, `\n` allowed).
    fn parse(text: &str) -> (BTreeMap<String, (String, String)>, Vec<Sample>) {
        let mut help: BTreeMap<String, String> = BTreeMap::new();
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut samples = Vec::new();
        let mut finished: HashSet<String> = HashSet::new();
        let mut current: Option<String> = None;
        let mut enter = |family: &str, current: &mut Option<String>| {
            if current.as_deref() != Some(family) {
                if let Some(prev) = current.take() {
                    finished.insert(prev);
                }
                assert!(
                    !finished.contains(family),
                    "family {family} is not contiguous"
                );
                *current = Some(family.to_string());
            }
        };
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, h) = rest.split_once(' ').unwrap();
                enter(name, &mut current);
                assert!(
                    help.insert(name.into(), h.into()).is_none(),
                    "HELP twice: {name}"
                );
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, t) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&t), "{line}");
                enter(name, &mut current);
                assert!(
                    types.insert(name.into(), t.into()).is_none(),
                    "TYPE twice: {name}"
                );
            } else {
                assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
                let s = parse_sample(line);
                let family = if types.contains_key(&s.name) {
                    s.name.clone()
                } else {
                    let base = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|suffix| s.name.strip_suffix(suffix))
                        .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
                    assert_eq!(
                        types.get(base).map(String::as_str),
                        Some("histogram"),
                        "{line}"
                    );
                    base.to_string()
                };
                enter(&family, &mut current);
                samples.push(s);
            }
        }
        let families = types
            .into_iter()
            .map(|(name, t)| {
                let h = help.get(&name).cloned().unwrap_or_default();
                (name, (h, t))
            })
            .collect();
        (families, samples)
    }

    fn parse_sample(line: &str) -> Sample {
        let name_end = line.find(['{', ' ']).unwrap();
        let name = line[..name_end].to_string();
        assert!(valid_metric_name(&name), "{line}");
        let mut labels = Vec::new();
        let mut rest = &line[name_end..];
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices();
            loop {
                let mut label = String::new();
                let mut end = None;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    if c == '}' && label.is_empty() {
                        end = Some(i);
                        break;
                    }
                    label.push(c);
                }
                if let Some(i) = end {
                    rest = &after[i + 1..];
                    break;
                }
                assert!(valid_label_name(&label), "{line}");
                assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    match chars.next().unwrap().1 {
                        '"' => break,
                        '\\' => match chars.next().unwrap().1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other} in {line}"),
                        },
                        '\n' => panic!("raw newline"),
                        c => value.push(c),
                    }
                }
                labels.push((label, value));
                match chars.next().unwrap() {
                    (_, ',') => continue,
                    (i, '}') => {
                        rest = &after[i + 1..];
                        break;
                    }
                    (_, c) => panic!("unexpected {c} in {line}"),
                }
            }
        }
        let value = rest.strip_prefix(' ').unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().unwrap_or_else(|_| panic!("bad value {v}")),
        };
        let names: HashSet<_> = labels.iter().map(|l| l.0.clone()).collect();
        assert_eq!(names.len(), labels.len(), "repeated label in {line}");
        Sample {
            name,
            labels,
            value,
        }
    }

    fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
        samples
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(n, v)| s.label(n) == Some(*v)))
    }

    #[test]
    fn render_declares_each_family_once_and_counts_requests() {
        let m = Metrics::new();
        let ms = Duration::from_millis;
        for route in ["/v1/models/a/predict", "/v1/chat/completions"] {
            m.observe_request(route, 200, ms(3), Duration::from_micros(200));
            m.observe_request(route, 200, ms(4), Duration::from_micros(300));
            m.observe_request(route, 429, ms(1), Duration::from_micros(100));
        }
        m.denial("rate_limit");
        m.denial("rate_limit");
        m.denial("no_key");
        m.budget_use("k1", "day", 7, 100);
        m.audit_queue(12);
        m.set_gauge(
            "aegis_audit_chain_length",
            "Records in the audit chain.",
            &[],
            42.0,
        );
        let (families, samples) = parse(&m.render());
        for name in BUILT_IN {
            assert!(families.contains_key(name), "{name} missing");
        }
        assert_eq!(families[DURATION].1, "histogram");
        assert_eq!(families[REQUESTS].1, "counter");
        assert_eq!(families[BUDGET_USED].1, "gauge");
        let ok = find(
            &samples,
            REQUESTS,
            &[("route", "/v1/chat/completions"), ("status", "200")],
        );
        assert_eq!(ok.unwrap().value, 2.0);
        let limited = find(
            &samples,
            REQUESTS,
            &[("route", "/v1/chat/completions"), ("status", "429")],
        );
        assert_eq!(limited.unwrap().value, 1.0);
        assert!(find(&samples, REQUESTS, &[("status", "500")]).is_none());
        assert_eq!(
            find(&samples, DENIALS, &[("reason", "rate_limit")])
                .unwrap()
                .value,
            2.0
        );
        assert_eq!(
            find(&samples, DENIALS, &[("reason", "no_key")])
                .unwrap()
                .value,
            1.0
        );
        assert_eq!(
            find(&samples, BUDGET_USED, &[("key", "k1"), ("period", "day")])
                .unwrap()
                .value,
            7.0
        );
        assert_eq!(
            find(&samples, BUDGET_LIMIT, &[("key", "k1")])
                .unwrap()
                .value,
            100.0
        );
        assert_eq!(find(&samples, AUDIT_QUEUE, &[]).unwrap().value, 12.0);
        assert_eq!(
            find(&samples, "aegis_audit_chain_length", &[])
                .unwrap()
                .value,
            42.0
        );
        let count = format!("{DURATION}_count");
        assert_eq!(
            find(&samples, &count, &[("route", "/v1/models/a/predict")])
                .unwrap()
                .value,
            3.0
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let m = Metrics::new();
        let r = "/r";
        m.observe_request(r, 200, Duration::from_micros(50), Duration::from_micros(50));
        m.observe_request(r, 200, Duration::from_millis(3), Duration::from_micros(100));
        m.observe_request(r, 200, Duration::from_millis(5), Duration::from_micros(100));
        m.observe_request(r, 200, Duration::from_secs(20), Duration::from_micros(101));
        let (_, samples) = parse(&m.render());
        for family in [DURATION, OVERHEAD] {
            let buckets: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
                .collect();
            assert_eq!(buckets.len(), BUCKETS.len() + 1);
            let mut last = (f64::NEG_INFINITY, 0.0);
            for b in &buckets {
                let le = match b.label("le").unwrap() {
                    "+Inf" => f64::INFINITY,
                    v => v.parse::<f64>().unwrap(),
                };
                assert!(le > last.0, "bounds increase");
                assert!(b.value >= last.1, "counts never decrease");
                last = (le, b.value);
            }
            assert_eq!(last.0, f64::INFINITY);
            let count = find(&samples, &format!("{family}_count"), &[("route", r)]).unwrap();
            assert_eq!(count.value, 4.0);
            assert_eq!(last.1, count.value);
        }
        let le = |family: &str, bound: &str| {
            find(&samples, &format!("{family}_bucket"), &[("le", bound)])
                .unwrap()
                .value
        };
        assert_eq!(le(DURATION, "0.0001"), 1.0);
        assert_eq!(le(DURATION, "0.0025"), 1.0);
        assert_eq!(
            le(DURATION, "0.005"),
            3.0,
            "3 ms and exactly 5 ms fall in le=0.005"
        );
        assert_eq!(le(DURATION, "10"), 3.0, "20 s is only in +Inf");
        assert_eq!(le(OVERHEAD, "0.0001"), 3.0);
        assert_eq!(le(OVERHEAD, "0.00025"), 4.0);
        let sum = find(&samples, &format!("{DURATION}_sum"), &[])
            .unwrap()
            .value;
        assert!((sum - 20.00805).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn label_values_are_escaped_and_round_trip() {
        let m = Metrics::new();
        let nasty = "/a\\b\"c\nd} e=\"f\",g";
        m.observe_request(nasty, 200, Duration::ZERO, Duration::ZERO);
        m.set_gauge(
            "x_drift",
            "Help with \\ and\nnewline.",
            &[("model", nasty)],
            0.5,
        );
        let text = m.render();
        assert!(text.contains(r#"route="/a\\b\"c\nd} e=\"f\",g""#), "{text}");
        assert!(text.contains("# HELP x_drift Help with \\\\ and\\nnewline.\n"));
        let (_, samples) = parse(&text);
        assert_eq!(
            find(&samples, REQUESTS, &[("route", nasty)]).unwrap().value,
            1.0
        );
        assert_eq!(
            find(&samples, "x_drift", &[("model", nasty)])
                .unwrap()
                .value,
            0.5
        );
        // A plain value is written as is.
        assert!(!text.contains("\\\"/plain"));
    }

    #[test]
    fn distinct_label_sets_are_capped_into_other() {
        let m = Metrics::new();
        for i in 0..MAX_SERIES + 50 {
            m.denial(&format!("reason{i}"));
        }
        m.denial("reason0"); // an existing set still counts on its own
        let (_, samples) = parse(&m.render());
        let denials: Vec<&Sample> = samples.iter().filter(|s| s.name == DENIALS).collect();
        assert_eq!(denials.len(), MAX_SERIES + 1);
        assert_eq!(
            find(&samples, DENIALS, &[("reason", OTHER)]).unwrap().value,
            50.0
        );
        assert_eq!(
            find(&samples, DENIALS, &[("reason", "reason0")])
                .unwrap()
                .value,
            2.0
        );

        // Below the cap nothing is folded; a long value is cut, not refused.
        let m = Metrics::new();
        for i in 0..100 {
            m.observe_request(&format!("/r{i}"), 200, Duration::ZERO, Duration::ZERO);
        }
        m.budget_use(&"k".repeat(10_000), "day", 1, 2);
        let (_, samples) = parse(&m.render());
        assert!(find(&samples, REQUESTS, &[("route", OTHER)]).is_none());
        assert_eq!(samples.iter().filter(|s| s.name == REQUESTS).count(), 100);
        let budget = samples.iter().find(|s| s.name == BUDGET_USED).unwrap();
        assert_eq!(budget.label("key").unwrap().len(), MAX_LABEL_BYTES);
        assert_eq!(
            clip(&"é".repeat(200)).len(),
            MAX_LABEL_BYTES,
            "cut on a char boundary"
        );
    }

    #[test]
    fn generic_gauges_validate_names_and_render_special_values() {
        let m = Metrics::new();
        m.set_gauge("bad name", "h", &[], 1.0);
        m.set_gauge("1bad", "h", &[], 1.0);
        m.set_gauge(REQUESTS, "clash", &[], 1.0);
        m.set_gauge("aegis_request_duration_seconds_bucket", "clash", &[], 1.0);
        m.set_gauge("g_labels", "h", &[("bad-label", "v")], 1.0);
        m.set_gauge("g_labels", "h", &[("__name__", "v")], 1.0);
        m.set_gauge("g_labels", "h", &[("a", "1"), ("a", "2")], 1.0);
        m.set_gauge("g_ok", "first help", &[("b", "2"), ("a", "1")], 1.0);
        m.set_gauge(
            "g_ok",
            "second help ignored",
            &[("a", "1"), ("b", "2")],
            2.0,
        );
        m.set_gauge("g_ok", "h", &[("a", "x")], f64::NAN);
        m.set_gauge("g_inf", "h", &[], f64::INFINITY);
        let text = m.render();
        let (families, samples) = parse(&text);
        assert!(!families.contains_key("g_labels"));
        assert!(!text.contains("bad name") && !text.contains("1bad") && !text.contains("clash"));
        assert_eq!(families["g_ok"].0, "first help");
        let ok: Vec<&Sample> = samples.iter().filter(|s| s.name == "g_ok").collect();
        assert_eq!(ok.len(), 2, "label order does not make a new series");
        assert_eq!(
            find(&samples, "g_ok", &[("a", "1"), ("b", "2")])
                .unwrap()
                .value,
            2.0
        );
        assert!(find(&samples, "g_ok", &[("a", "x")])
            .unwrap()
            .value
            .is_nan());
        assert_eq!(find(&samples, "g_inf", &[]).unwrap().value, f64::INFINITY);

        for i in 0..MAX_GAUGE_FAMILIES + 5 {
            m.set_gauge(&format!("fam_{i}"), "h", &[], 1.0);
        }
        let (families, _) = parse(&m.render());
        assert_eq!(families.len(), BUILT_IN.len() + MAX_GAUGE_FAMILIES);
    }

    #[test]
    fn concurrent_updates_are_all_counted() {
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        m.observe_request(
                            &format!("/r{}", i % 3),
                            200,
                            Duration::ZERO,
                            Duration::ZERO,
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (_, samples) = parse(&m.render());
        let total: f64 = samples
            .iter()
            .filter(|s| s.name == REQUESTS)
            .map(|s| s.value)
            .sum();
        assert_eq!(total, 8000.0);
        let counts: f64 = samples
            .iter()
            .filter(|s| s.name == format!("{DURATION}_count"))
            .map(|s| s.value)
            .sum();
        assert_eq!(counts, 8000.0);
    }

    #[test]
    fn custom_counters_add_up_and_are_typed_counter() {
        let m = Metrics::new();
        m.add_counter("x_alarms_total", "Alarms.", &[("model", "a")], 1.0);
        m.add_counter("x_alarms_total", "Alarms.", &[("model", "a")], 1.0);
        m.add_counter("x_alarms_total", "Alarms.", &[("model", "b")], 0.0);
        m.set_gauge("x_level", "Level.", &[], 3.5);
        let text = m.render();
        assert!(text.contains("# TYPE x_alarms_total counter"), "{text}");
        assert!(text.contains("x_alarms_total{model=\"a\"} 2\n"), "{text}");
        assert!(text.contains("x_alarms_total{model=\"b\"} 0\n"), "{text}");
        assert!(text.contains("# TYPE x_level gauge"), "{text}");
        // Built-in names stay refused.
        m.add_counter("aegis_requests_total", "no", &[], 1.0);
        assert_eq!(text.matches("# TYPE aegis_requests_total").count(), 1);
        assert_eq!(m.render().matches("# TYPE aegis_requests_total").count(), 1);
    }
}
