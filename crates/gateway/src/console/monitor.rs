//! The monitor page: what each served model sees in production (the last traffic window's inputs against the
//! reference, their distributions, the hourly drift record) and which API keys look like they are copying a
//! model.

use aegis_web as web;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::views::chrome;
use crate::state::Shared;
use crate::util;

// ----------------------------------------------------------------------------------------------- monitor

/// `GET /monitor`.
pub(super) async fn monitor(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let v = visitor!(state, headers);
    let now = util::now_secs();
    let reports = crate::guard::list_reports(&state.db)
        .await
        .unwrap_or_default();
    let mut models = Vec::new();
    let mut names = state.models.names();
    names.sort();
    for name in names {
        let latest = reports.iter().find(|r| r["model"] == name.as_str());
        let history = live_history(&state, &name).await;
        models.push(monitor_model(&name, latest, &history, now));
    }
    let mut extraction = Vec::new();
    if v.can_audit() {
        for a in crate::extraction::list_alarms(&state.db)
            .await
            .unwrap_or_default()
        {
            extraction.push(vec![
                a.key_id.clone(),
                a.model.clone(),
                a.queries.to_string(),
                format!(
                    "alarm after {} queries: {:.0}% near the decision boundary, {:.0}% unlike the reference data",
                    a.alarm_at.unwrap_or(a.queries),
                    a.low_margin_rate * 100.0,
                    a.out_of_distribution_rate * 100.0
                ),
                web::ago(a.alarm_ts, now),
            ]);
        }
    }
    super::page(
        StatusCode::OK,
        web::render(&web::Monitor {
            chrome: chrome(&state, &v, "monitor"),
            models,
            extraction,
            extraction_visible: v.can_audit(),
        }),
    )
}

/// The live drift records of a served model, oldest first: (when, share of inputs drifted, rows in the window).
/// One hourly live drift record.
struct Record {
    /// When it was recorded.
    ts: i64,
    /// Share of inputs that drifted.
    share: f64,
    /// Rows in its window.
    rows: f64,
    /// PSI and verdict per input, in model order.
    inputs: Vec<(String, f64, bool)>,
}

async fn live_history(state: &Shared, model: &str) -> Vec<Record> {
    let Ok(Some(asset)) = state.store.find_asset(model).await else {
        return Vec::new();
    };
    let runs = state
        .store
        .runs(&asset.id, None, 200)
        .await
        .unwrap_or_default();
    let mut out = Vec::new();
    for r in runs
        .iter()
        .filter(|r| r.kind.as_str() == "drift" && r.cause == "live")
        .take(24)
    {
        let Ok(full) = state.store.run(&r.id, true).await else {
            continue;
        };
        let Some(window) = full.report.as_ref().map(|rep| &rep["metrics"]["window"]) else {
            continue;
        };
        let inputs: Vec<&serde_json::Value> = window["features"]
            .as_array()
            .map(|a| a.iter().filter(|f| f["name"] != "prediction").collect())
            .unwrap_or_default();
        let drifted = inputs.iter().filter(|f| f["drifted"] == true).count();
        out.push(Record {
            ts: r.started,
            share: drifted as f64 / inputs.len().max(1) as f64,
            rows: window["rows"].as_f64().unwrap_or(0.0),
            inputs: inputs
                .iter()
                .map(|f| {
                    (
                        f["name"].as_str().unwrap_or("?").to_string(),
                        f["psi"].as_f64().unwrap_or(f64::NAN),
                        f["drifted"] == true,
                    )
                })
                .collect(),
        });
    }
    out.reverse();
    out
}

/// A served model's monitoring from its last closed window (`latest`: the `drift_reports` row) and history.
fn monitor_model(
    name: &str,
    latest: Option<&serde_json::Value>,
    history: &[Record],
    now: i64,
) -> web::MonitorModel {
    let report = latest.map(|l| &l["report"]);
    let all: Vec<serde_json::Value> = report
        .and_then(|r| r["features"].as_array())
        .cloned()
        .unwrap_or_default();
    let (predictions, columns): (Vec<serde_json::Value>, Vec<serde_json::Value>) =
        all.into_iter().partition(|f| f["name"] == "prediction");
    let drifted = columns.iter().filter(|c| c["drifted"] == true).count();
    let mut features: Vec<(bool, f64, Vec<String>)> = columns
        .iter()
        .map(|c| {
            let psi = c["psi"].as_f64();
            (
                c["drifted"] == true,
                psi.unwrap_or(0.0),
                vec![
                    c["name"].as_str().unwrap_or("?").to_string(),
                    psi.map_or("—".into(), |p| format!("{p:.3}")),
                    "KS".into(),
                    c["pvalue"].as_f64().map_or("—".into(), |p| {
                        if p < 0.001 {
                            "< 0.001".into()
                        } else {
                            format!("{p:.3}")
                        }
                    }),
                    if c["drifted"] == true {
                        "changed".into()
                    } else {
                        "as expected".into()
                    },
                ],
            )
        })
        .collect();
    features.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    let (verdict, tone) = match latest {
        None => ("no traffic window closed yet".to_string(), "neutral"),
        Some(_) if drifted == 0 => ("inputs look like the reference data".to_string(), "good"),
        Some(_) => (
            format!("{drifted} of {} inputs changed", columns.len()),
            "bad",
        ),
    };
    let window = match (latest, report) {
        (Some(l), Some(r)) => format!(
            "Last window: {} rows, closed {}.",
            r["rows"].as_u64().unwrap_or(0),
            web::ago(l["ts"].as_i64().unwrap_or(0), now)
        ),
        _ => "Drift is measured once a window of live requests fills up; a model needs a reference table \
              (reference = … under its [[model]] in aegis.toml)."
            .into(),
    };
    let prediction = match predictions.first() {
        Some(p) if p["drifted"] == true => format!(
            "The model's answers changed too: their mix differs from the reference (PSI {:.3}).",
            p["psi"].as_f64().unwrap_or(0.0)
        ),
        Some(_) => "The mix of the model's answers is as on the reference data.".into(),
        None => String::new(),
    };
    let labels: Vec<String> = history
        .iter()
        .map(|r| {
            aegis_store::posture::when(r.ts)
                .get(5..16)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let history_chart = web::Chart {
        caption: format!(
            "Share of inputs that changed, per hourly record; the latest is {:.0}%.",
            history.last().map_or(0.0, |h| h.share * 100.0)
        ),
        svg: aegis_report::charts::columns(
            &format!("{name}: share of inputs changed, per hourly record"),
            &labels,
            &[(
                "inputs changed (%)",
                "#b91c1c",
                history.iter().map(|h| h.share * 100.0).collect(),
            )],
            "% of inputs",
        ),
        columns: vec![
            "record".into(),
            "inputs changed".into(),
            "rows in window".into(),
        ],
        rows: history
            .iter()
            .zip(&labels)
            .map(|(h, l)| {
                vec![
                    l.clone(),
                    format!("{:.0}%", h.share * 100.0),
                    format!("{:.0}", h.rows),
                ]
            })
            .collect(),
    };
    let traffic = web::Chart {
        caption: format!(
            "Rows scored per recorded window; the latest held {:.0}.",
            history.last().map_or(0.0, |h| h.rows)
        ),
        svg: aegis_report::charts::columns(
            &format!("{name}: rows per recorded window"),
            &labels,
            &[("rows", "#0b5e73", history.iter().map(|h| h.rows).collect())],
            "rows",
        ),
        columns: Vec::new(),
        rows: Vec::new(),
    };
    let mut distributions: Vec<web::Chart> = columns
        .iter()
        .filter(|c| c["drifted"] == true && c["histogram"].is_object())
        .take(6)
        .map(|c| distribution_chart(name, c))
        .collect();
    if let Some(p) = predictions
        .iter()
        .find(|p| p["drifted"] == true && p["histogram"].is_object())
    {
        distributions.push(distribution_chart(name, p));
    }
    let (history_chart, traffic) = if history.is_empty() {
        (web::Chart::default(), web::Chart::default())
    } else {
        (history_chart, traffic)
    };
    // Each input's PSI per hourly record, newest first (a changed input marked).
    let names: Vec<String> = history
        .last()
        .map(|r| r.inputs.iter().map(|i| i.0.clone()).collect())
        .unwrap_or_default();
    let trend_rows = history
        .iter()
        .rev()
        .map(|r| {
            let mut row = vec![aegis_store::posture::when(r.ts)];
            row.extend(names.iter().map(|n| {
                r.inputs.iter().find(|i| i.0 == *n).map_or("—".into(), |i| {
                    format!("{:.3}{}", i.1, if i.2 { " (changed)" } else { "" })
                })
            }));
            row
        })
        .collect();
    let mut trend_columns = vec!["record".to_string()];
    trend_columns.extend(names);
    web::MonitorModel {
        name: name.to_string(),
        verdict,
        tone,
        window,
        features: features.into_iter().map(|f| f.2).collect(),
        prediction,
        history: history_chart,
        traffic,
        distributions,
        trend_columns,
        trend_rows,
    }
}

/// One changed input's reference and live distributions, as shares of rows per bin.
fn distribution_chart(model: &str, column: &serde_json::Value) -> web::Chart {
    let h = &column["histogram"];
    let name = column["name"].as_str().unwrap_or("?");
    let labels: Vec<String> = h["labels"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| l.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    let shares = |key: &str| -> Vec<f64> {
        let v: Vec<f64> = h[key]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect())
            .unwrap_or_default();
        let total: f64 = v.iter().sum::<f64>().max(1.0);
        v.iter().map(|x| 100.0 * x / total).collect()
    };
    let (reference, live) = (shares("reference"), shares("current"));
    let rows = labels
        .iter()
        .zip(reference.iter().zip(&live))
        .map(|(l, (a, b))| vec![l.clone(), format!("{a:.1}%"), format!("{b:.1}%")])
        .collect();
    web::Chart {
        caption: format!(
            "Input {name}: live rows (red) against the reference (grey); PSI {:.3}.",
            column["psi"].as_f64().unwrap_or(0.0)
        ),
        svg: aegis_report::charts::columns(
            &format!("{model}: {name}, reference and live distributions"),
            &labels,
            &[
                ("reference", "#8c959f", reference),
                ("live", "#b91c1c", live),
            ],
            "% of rows",
        ),
        columns: vec!["bin".into(), "reference".into(), "live".into()],
        rows,
    }
}
