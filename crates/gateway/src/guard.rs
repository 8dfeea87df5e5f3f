//! Model theft and drift at the gateway, per local model: output hardening (an [`OutputPolicy`] and an optional
//! keyed [`Watermark`]), the settings of the extraction detector (run per API key by [`crate::extraction`]), and
//! live drift monitoring against the model's reference data.
//!
//! Everything here is built once at start-up from `aegis.toml` ([`Guards::build`]) and only for local models:
//! proxied routes never reach this module, so their hot path is unchanged. A configuration that cannot be
//! honoured (an unreadable reference file, a watermark key readable by others) stops the start: a security
//! setting must not silently fall back to "off".
//!
//! Order on each answer: the detector and the drift window see the model's full probabilities; the client sees
//! them after the watermark (which swaps the top label of a keyed fraction of rows) and then the output policy
//! (which keeps the top label).
//!
//! The reference file is a CSV with a header naming the model's features (in any order; other columns, such as
//! a label, are ignored), read with bounds: at most [`MAX_REFERENCE_ROWS`] rows and [`MAX_REFERENCE_BYTES`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use aegis_ml::output_policy::{OutputPolicy, Watermark};
use aegis_monitor::prada::PradaConfig;
use aegis_monitor::window::{DriftWindow, ReferenceProfile, WindowReport};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::audit_log::AuditEvent;
use crate::config::{ExtractionAction, ModelConfig, WatermarkConfig};
use crate::error::{Error, Result};
use crate::models::{LocalModel, LocalModels};
use crate::sinks::Sinks;

/// Most rows read from a reference file.
pub(crate) const MAX_REFERENCE_ROWS: usize = 100_000;
/// Largest reference file read, in bytes.
pub(crate) const MAX_REFERENCE_BYTES: u64 = 64 << 20;
/// Largest watermark key file read, in bytes.
const MAX_KEY_BYTES: u64 = 4096;

/// The extraction detector's settings for one model.
#[derive(Debug, Clone)]
pub struct ExtractionSettings {
    /// PRADA's parameters (distance space fitted on the reference data, else the schema's ranges as scale).
    pub prada: PradaConfig,
    /// What happens once a key raised the alarm.
    pub action: ExtractionAction,
    /// With `throttle`: one answer per this many seconds.
    pub throttle_secs: u64,
}

/// Hardening, detection settings and the drift window of one local model.
#[derive(Debug)]
pub struct ModelGuard {
    /// The model's name.
    pub model: String,
    /// What the client sees of the probabilities.
    pub output: OutputPolicy,
    watermark: Option<Watermark>,
    /// The detector, when enabled.
    pub extraction: Option<ExtractionSettings>,
    profile: Option<ReferenceProfile>,
    drift: Option<Mutex<DriftWindow>>,
}

impl ModelGuard {
    /// Build the guard of `model` from its configuration (reads the reference file and the watermark key, and
    /// runs the model on the reference rows).
    pub async fn build(config: &ModelConfig, model: &LocalModel) -> Result<ModelGuard> {
        let bad = |field: &str, reason: String| {
            Error::Invalid(format!("model {:?}: {field}: {reason}", config.name))
        };
        let nf = model.n_features();
        let k = model.n_classes();
        let watermark = match &config.watermark {
            Some(w) => Some(read_watermark(w).map_err(|r| bad("watermark.key_file", r))?),
            None => None,
        };
        let features: Vec<String> = model
            .schema
            .features
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let mut profile = None;
        let mut reference = None;
        if let Some(path) = &config.reference {
            let (rows, n) = read_reference(path, &features).map_err(|r| bad("reference", r))?;
            let x: Vec<f32> = rows.iter().map(|v| *v as f32).collect();
            let proba = model.predict(x, n).await?;
            let predictions = aegis_ml::argmax_rows(&proba, k.max(1));
            let built = ReferenceProfile::build(features.clone(), &rows, n, &predictions, k)
                .map_err(|e| bad("reference", e.to_string()))?;
            reference = Some(rows);
            profile = Some(built);
        }
        let drift = match (&profile, &config.drift) {
            (Some(p), Some(c)) => Some(Mutex::new(DriftWindow::new(p, c.clone()))),
            (Some(p), None) => Some(Mutex::new(DriftWindow::new(p, Default::default()))),
            (None, _) => None,
        };
        let extraction = if config.extraction.enabled {
            let mut prada = config.extraction.prada();
            if prada.scale.is_empty() {
                match &reference {
                    Some(rows) => config
                        .extraction
                        .distance
                        .fit_into(&mut prada, rows, nf)
                        .map_err(|e| bad("reference", e.to_string()))?,
                    None => prada.scale = schema_ranges(model),
                }
            } else if prada.scale.len() != nf {
                return Err(bad(
                    "extraction.scale",
                    format!("has {} values for {nf} features", prada.scale.len()),
                ));
            }
            Some(ExtractionSettings {
                prada,
                action: config.extraction.action,
                throttle_secs: config.extraction.throttle_secs,
            })
        } else {
            None
        };
        Ok(ModelGuard {
            model: config.name.clone(),
            output: config.output.clone(),
            watermark,
            extraction,
            profile,
            drift,
        })
    }

    /// The probabilities the client sees: watermark first, then the output policy (both keep shapes).
    pub fn harden(
        &self,
        x: &[f32],
        n_features: usize,
        proba: &[f32],
        n_classes: usize,
    ) -> Vec<f32> {
        let mut out = proba.to_vec();
        if let Some(w) = &self.watermark {
            w.apply(x, n_features, &mut out, n_classes);
        }
        if self.output != OutputPolicy::Full {
            out = self.output.apply(&out, n_classes);
        }
        out
    }

    /// Whether a row lies outside the reference data (false without reference data).
    pub fn out_of_distribution(&self, row: &[f64]) -> bool {
        self.profile
            .as_ref()
            .is_some_and(|p| p.is_out_of_distribution(row))
    }

    /// Whether live drift monitoring runs for this model.
    pub fn drift_enabled(&self) -> bool {
        self.drift.is_some()
    }

    /// Feed rows and their predicted classes (from the full probabilities) to the drift window; returns the
    /// reports of the windows these rows closed.
    pub fn push_drift(
        &self,
        x: &[f32],
        n_features: usize,
        proba: &[f32],
        n_classes: usize,
    ) -> Vec<WindowReport> {
        let (Some(profile), Some(drift)) = (&self.profile, &self.drift) else {
            return Vec::new();
        };
        if n_features == 0 || n_classes == 0 {
            return Vec::new();
        }
        let labels = aegis_ml::argmax_rows(proba, n_classes);
        let mut reports = Vec::new();
        let mut window = drift.lock().unwrap_or_else(PoisonError::into_inner);
        let mut row64 = vec![0.0f64; n_features];
        for (row, label) in x.chunks_exact(n_features).zip(labels) {
            for (d, s) in row64.iter_mut().zip(row) {
                *d = f64::from(*s);
            }
            if let Some(report) = window.push(profile, &row64, label) {
                reports.push(report);
            }
        }
        reports
    }
}

/// The guards of every served local model.
#[derive(Debug, Default)]
pub struct Guards {
    by_model: HashMap<String, Arc<ModelGuard>>,
}

impl Guards {
    /// Build a guard for every served model: its `[[model]]` settings, or the defaults for a model without
    /// one (the bundled demo).
    pub async fn build(configs: &[ModelConfig], models: &LocalModels) -> Result<Guards> {
        let mut by_model = HashMap::new();
        for name in models.names() {
            let Some(model) = models.get(&name) else {
                continue;
            };
            let default;
            let config = match configs.iter().find(|c| c.name == name) {
                Some(c) => c,
                None => {
                    default = ModelConfig::new(&name, Default::default(), Default::default());
                    &default
                }
            };
            let guard = ModelGuard::build(config, &model).await?;
            by_model.insert(name, Arc::new(guard));
        }
        Ok(Guards { by_model })
    }

    /// The guard of a served model.
    pub fn get(&self, model: &str) -> Option<Arc<ModelGuard>> {
        self.by_model.get(model).cloned()
    }
}

/// Read the watermark key (owner-only permissions, 16–4096 bytes; surrounding whitespace trimmed). The key is
/// never logged; the buffer is zeroed when dropped.
fn read_watermark(config: &WatermarkConfig) -> std::result::Result<Watermark, String> {
    let path = &config.key_file;
    let meta = std::fs::metadata(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} is readable or writable by group or others (mode {mode:03o}); run chmod 600 on it",
                path.display()
            ));
        }
    }
    if meta.len() > MAX_KEY_BYTES {
        return Err(format!(
            "{} is larger than {MAX_KEY_BYTES} bytes",
            path.display()
        ));
    }
    let bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    Watermark::new(&bytes[start..end.max(start)], config.fraction)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Read a reference table (CSV or Parquet, through the one table reader and its dialect): the columns named
/// `features` (by header, any order), as `f64` row-major, and the row count. Bounded in bytes and rows; every
/// value must be a number (the reader's errors name the file, column and row).
pub(crate) fn read_reference(
    path: &Path,
    features: &[String],
) -> std::result::Result<(Vec<f64>, usize), String> {
    let shown = path.display();
    let opts = aegis_data::ReadOptions {
        max_bytes: MAX_REFERENCE_BYTES,
        max_rows: Some(MAX_REFERENCE_ROWS + 1),
        ..aegis_data::ReadOptions::default()
    };
    let frame = aegis_data::read_frame(path, &opts).map_err(|e| e.to_string())?;
    if frame.n_rows > MAX_REFERENCE_ROWS {
        return Err(format!(
            "{shown} has more than {MAX_REFERENCE_ROWS} rows; sample it down"
        ));
    }
    let mut columns = Vec::with_capacity(features.len());
    for f in features {
        match frame.column(f) {
            Some(c) => columns.push(c.clone()),
            None => {
                return Err(format!(
                    "{shown} has no column `{f}` (its header must name every model feature)"
                ))
            }
        }
    }
    let n = frame.n_rows;
    let inputs = aegis_core::Frame {
        columns,
        labels: None,
        ..frame
    };
    let table = aegis_data::table_from_frame(&inputs, path).map_err(|e| e.to_string())?;
    if n < 2 {
        return Err(format!("{shown} needs at least 2 data rows, has {n}"));
    }
    Ok((table.features.iter().map(|&v| f64::from(v)).collect(), n))
}

fn positive_or_one(s: f64) -> f64 {
    if s.is_finite() && s > 0.0 {
        s
    } else {
        1.0
    }
}

/// Per-feature divisors from the schema's ranges (1 where a range is empty or unbounded): the detector's
/// distance scale when the model has no reference data.
fn schema_ranges(model: &LocalModel) -> Vec<f64> {
    model
        .schema
        .features
        .iter()
        .map(|f| positive_or_one(f64::from(f.range())))
        .collect()
}

/// Publish closed drift windows: per-feature gauges and counters on `/metrics`, the last report in the
/// database (`GET /admin/drift`), and on alert an audit event and a log line.
pub(crate) async fn record_drift(sinks: Sinks<'_>, model: &str, reports: Vec<WindowReport>) {
    for report in reports {
        let m = sinks.metrics;
        for f in &report.features {
            m.set_gauge(
                "aegis_drift_psi",
                "Population stability index of the last closed drift window, by model and feature.",
                &[("model", model), ("feature", &f.name)],
                f.psi,
            );
            m.set_gauge(
                "aegis_drift_pvalue",
                "Corrected p-value of the last closed drift window's test, by model and feature.",
                &[("model", model), ("feature", &f.name)],
                f.pvalue,
            );
        }
        m.add_counter(
            "aegis_drift_windows_total",
            "Drift windows closed, by model.",
            &[("model", model)],
            1.0,
        );
        m.add_counter(
            "aegis_drift_alerts_total",
            "Drift windows that raised an alert, by model.",
            &[("model", model)],
            if report.alert { 1.0 } else { 0.0 },
        );
        let now = crate::util::now_secs();
        let text = serde_json::to_string(&report).unwrap_or_else(|_| "{}".into());
        let stored = {
            let _guard = sinks.db.write_guard().await;
            sqlx::query(
                "INSERT INTO drift_reports (model, ts, report, alert) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (model) DO UPDATE SET ts = excluded.ts, report = excluded.report,
                 alert = excluded.alert",
            )
            .bind(model)
            .bind(now)
            .bind(&text)
            .bind(i64::from(report.alert))
            .execute(sinks.db.pool())
            .await
        };
        crate::signals::drift_window(sinks, model, &report).await;
        if let Err(e) = stored {
            crate::log::emit(
                crate::log::Level::Error,
                "drift_report_not_stored",
                &[("model", model.into()), ("cause", e.to_string().into())],
            );
        }
        if report.alert {
            let drifted: Vec<&str> = report
                .features
                .iter()
                .filter(|f| f.drifted)
                .map(|f| f.name.as_str())
                .collect();
            let detail = format!(
                "drift in a window of {} rows: {}",
                report.rows,
                drifted.join(", ")
            );
            crate::log::emit(
                crate::log::Level::Warn,
                "drift_alert",
                &[
                    ("model", model.into()),
                    ("rows", report.rows.into()),
                    (
                        "features",
                        Value::from(drifted.iter().map(|s| Value::from(*s)).collect::<Vec<_>>()),
                    ),
                ],
            );
            sinks
                .audit
                .record(AuditEvent {
                    kind: "drift".into(),
                    actor: "aegis".into(),
                    model: model.to_string(),
                    route: "drift".into(),
                    decision: "alert".into(),
                    detail,
                    ..AuditEvent::default()
                })
                .await;
        }
    }
}

/// The stored last report of every model (`GET /admin/drift`).
pub(crate) async fn list_reports(db: &crate::Db) -> Result<Vec<Value>> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT model, ts, report, alert FROM drift_reports ORDER BY model LIMIT 10000",
    )
    .fetch_all(db.pool())
    .await
    .map_err(Error::db("read drift reports"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let model: String = row
            .try_get("model")
            .map_err(Error::db("read drift reports"))?;
        let ts: i64 = row.try_get("ts").map_err(Error::db("read drift reports"))?;
        let report: String = row
            .try_get("report")
            .map_err(Error::db("read drift reports"))?;
        let alert: i64 = row
            .try_get("alert")
            .map_err(Error::db("read drift reports"))?;
        let report: Value = serde_json::from_str(&report).unwrap_or(Value::Null);
        out.push(
            serde_json::json!({"model": model, "ts": ts, "alert": alert != 0, "report": report}),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_csv_is_read_by_header_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let features = vec!["a".to_string(), "b".to_string()];
        std::fs::write(&p, "label,b,a\n1,2,3\n0,5,6\n").unwrap();
        assert_eq!(
            read_reference(&p, &features).unwrap(),
            (vec![3.0, 2.0, 6.0, 5.0], 2)
        );
        std::fs::write(&p, "label,b\n1,2\n0,5\n").unwrap();
        assert!(read_reference(&p, &features)
            .unwrap_err()
            .contains("no column `a`"));
        std::fs::write(&p, "a,b\n1,2\n0,x\n").unwrap();
        let e = read_reference(&p, &features).unwrap_err();
        assert!(e.contains("data row 2") && e.contains("\"b\""), "{e}");
        std::fs::write(&p, "a;b\n1;2\n0;3\n").unwrap();
        assert_eq!(
            read_reference(&p, &features).unwrap(),
            (vec![1.0, 2.0, 0.0, 3.0], 2),
            "the delimiter is sniffed as for every table"
        );
        std::fs::write(&p, "a,b\n1,NaN\n0,1\n").unwrap();
        assert!(read_reference(&p, &features).is_err());
        let mut big = String::from("a,b\n");
        for _ in 0..=MAX_REFERENCE_ROWS {
            big.push_str("1,2\n");
        }
        std::fs::write(&p, big).unwrap();
        assert!(read_reference(&p, &features)
            .unwrap_err()
            .contains("more than"));
    }

    #[test]
    fn watermark_keys_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wm.key");
        std::fs::write(&p, "0123456789abcdef0123456789abcdef\n").unwrap();
        let config = WatermarkConfig {
            key_file: p.clone(),
            fraction: 0.05,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = read_watermark(&config).unwrap_err();
            assert!(e.contains("chmod 600") && !e.contains("0123456789"), "{e}");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let w = read_watermark(&config).unwrap();
        assert!(!format!("{w:?}").contains("0123456789"));
        std::fs::write(&p, "short").unwrap();
        assert!(read_watermark(&config).is_err());
    }
}
