//! Model theft and drift through a real `aegis serve` on 127.0.0.1 (SQLite and, with `AEGIS_TEST_POSTGRES`,
//! PostgreSQL): output hardening (label only, top-k, watermark), PRADA extraction detection per API key with
//! its alert / throttle / block actions and the admin routes, live drift windows against the demo model's
//! reference data, and configuration errors.
//!
//! Streams are generated here, deterministically: natural transactions from the demo model's generating rule
//! (the one `examples/make_demo_model.rs` trains on), a Jacobian-augmentation-like synthetic attack
//! (Papernot et al.: a few seeds, then rounds of `x ± λ·σ` steps, each round doubling the set), and a shifted
//! stream (amounts four times larger). The committed reference file `assets/demo-fraud.reference.csv` is
//! produced by [`reference_csv_matches_its_generator`] (`AEGIS_REGENERATE=1` rewrites it).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use aegis_gateway::audit_log::{self, AuditRecord};
use aegis_gateway::config::{Config, ExtractionAction, ModelConfig, WatermarkConfig};
use aegis_gateway::identity::Role;
use aegis_ml::output_policy::OutputPolicy;
use aegis_ml::rng::Rng;
use aegis_monitor::prada::DistanceSpace;
use aegis_monitor::window::WindowConfig;
use serde_json::{json, Value};
use support::demo_data::transaction;
use support::{Backend, TestServer};

const FEATURES: [&str; 6] = [
    "amount",
    "hour",
    "merchant_risk",
    "card_age_days",
    "foreign",
    "n_tx_24h",
];
/// Rows in the committed reference file.
const REFERENCE_ROWS: usize = 2_000;
/// Seed of the reference rows (other streams use other seeds).
const REFERENCE_SEED: u64 = 6_000_001;

fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
}

// ---------------------------------------------------------------------------------------------------------
// Streams.

fn natural(n: usize, seed: u64) -> Vec<[f32; 6]> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| transaction(&mut rng).0).collect()
}

/// A row made valid for the schema: within bounds, whole where the feature is an integer, 0/1 where binary.
fn valid(mut r: [f32; 6]) -> [f32; 6] {
    let bounds = [
        (0.0, 20_000.0),
        (0.0, 23.0),
        (0.0, 1.0),
        (0.0, 3_650.0),
        (0.0, 1.0),
        (0.0, 100.0),
    ];
    for (v, (lo, hi)) in r.iter_mut().zip(bounds) {
        *v = v.clamp(lo, hi);
    }
    r[0] = (r[0] * 100.0).round() / 100.0;
    for i in [1, 3, 4, 5] {
        r[i] = r[i].round();
    }
    r
}

/// Jacobian-augmentation-like synthetic queries: 5 natural seeds, then rounds in which every known point
/// yields a new one a step of `λ = 0.1` standard deviations away in each feature (signs drawn per point), as
/// an attacker without natural data grows a training set around its seeds.
fn jacobian_attack(n: usize, seed: u64) -> Vec<[f32; 6]> {
    let std = [250.0f32, 6.9, 0.3, 700.0, 0.27, 2.0];
    let mut rng = Rng::new(seed);
    let mut known: Vec<[f32; 6]> = natural(5, seed + 1);
    let mut out = known.clone();
    while out.len() < n {
        let mut next = Vec::with_capacity(known.len());
        for x in &known {
            let mut y = *x;
            for j in 0..6 {
                let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                y[j] += sign * 0.1 * std[j];
            }
            next.push(valid(y));
        }
        out.extend(next.iter().copied());
        known.extend(next);
    }
    out.truncate(n);
    out
}

fn body(rows: &[[f32; 6]]) -> String {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            for (name, v) in FEATURES.iter().zip(r) {
                m.insert(name.to_string(), json!(v));
            }
            Value::Object(m)
        })
        .collect();
    json!({ "rows": rows }).to_string()
}

fn reference_csv() -> String {
    let mut rng = Rng::new(REFERENCE_SEED);
    let mut out = String::from("amount,hour,merchant_risk,card_age_days,foreign,n_tx_24h,label\n");
    for _ in 0..REFERENCE_ROWS {
        let (r, label) = transaction(&mut rng);
        out.push_str(&format!(
            "{},{},{},{},{},{},{label}\n",
            r[0], r[1], r[2], r[3], r[4], r[5]
        ));
    }
    out
}

#[test]
fn reference_csv_matches_its_generator() {
    let path = assets().join("demo-fraud.reference.csv");
    let want = reference_csv();
    if std::env::var_os("AEGIS_REGENERATE").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(have.len() < 200_000);
    assert!(
        have == want,
        "assets/demo-fraud.reference.csv differs from its generator; rerun with AEGIS_REGENERATE=1"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Helpers.

/// The demo model under another name, with a tweak.
fn model(name: &str, tweak: impl FnOnce(&mut ModelConfig)) -> ModelConfig {
    let mut m = ModelConfig::new(
        name,
        assets().join("demo-fraud.onnx"),
        assets().join("demo-fraud.schema.toml"),
    );
    m.classes = vec!["legit".into(), "fraud".into()];
    tweak(&mut m);
    m
}

fn predict_path(model: &str) -> String {
    format!("/v1/models/{model}/predict")
}

/// Per row: (class, probabilities) of a predict answer.
fn answers(r: &support::Resp) -> Vec<(u64, Vec<f64>)> {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let probs = ["legit", "fraud"]
                .iter()
                .map(|c| p["probabilities"][c].as_f64().unwrap())
                .collect();
            (p["class"].as_u64().unwrap(), probs)
        })
        .collect()
}

/// Audit records matching `pred`, waiting up to 5 s for at least `min` of them.
async fn audit_where(
    server: &TestServer,
    min: usize,
    pred: impl Fn(&AuditRecord) -> bool,
) -> Vec<AuditRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let all = audit_log::list(server.db(), 0, 10_000).await.unwrap();
        let found: Vec<AuditRecord> = all.into_iter().filter(|r| pred(r)).collect();
        if found.len() >= min || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The value of one sample on `/metrics` (`metrics_public` must be on).
async fn metric(server: &TestServer, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = server.request("GET", "/metrics", &[], "").await.text();
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n != name {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

// ---------------------------------------------------------------------------------------------------------
// Output hardening.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_policies_keep_the_top_label() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("wm.key");
    std::fs::write(&key_file, "a-secret-watermark-key-of-32-bytes\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let server = support::start(Backend::Sqlite, |c| {
        c.models = vec![
            model("full", |_| {}),
            model("label", |m| m.output = OutputPolicy::LabelOnly),
            model("top1", |m| m.output = OutputPolicy::TopK { k: 1 }),
            model("marked", |m| {
                m.watermark = Some(WatermarkConfig {
                    key_file: key_file.clone(),
                    fraction: 0.25,
                })
            }),
        ];
    })
    .await
    .unwrap();
    let key = server
        .key(&["full", "label", "top1", "marked"], |k| {
            // Rows are the cost: room for several 201-row batches at once.
            k.rate_per_sec = 100_000.0;
            k.burst = 10_000;
        })
        .await;
    let rows = natural(200, 11);
    let mut rows_with_fraud = rows.clone();
    rows_with_fraud.push([4800.0, 3.0, 0.95, 2.0, 1.0, 25.0]);
    let b = body(&rows_with_fraud);
    let full = answers(&server.post_key(&predict_path("full"), &key, &b).await);
    let label = answers(&server.post_key(&predict_path("label"), &key, &b).await);
    let top1 = answers(&server.post_key(&predict_path("top1"), &key, &b).await);
    assert!(full.iter().any(|(c, _)| *c == 1) && full.iter().any(|(c, _)| *c == 0));
    for ((f, l), t) in full.iter().zip(&label).zip(&top1) {
        assert_eq!(f.0, l.0);
        assert_eq!(f.0, t.0);
        let top = f.0 as usize;
        // Label only: one-hot on the same label.
        assert_eq!(l.1[top], 1.0);
        assert_eq!(l.1[1 - top], 0.0);
        // Top-1: the top probability as the full answer gives it, the other zeroed.
        assert!((t.1[top] - f.1[top]).abs() < 1e-6);
        assert_eq!(t.1[1 - top], 0.0);
        // Negative control: the full answer is not one-hot.
        assert!(f.1[1 - top] > 0.0);
    }
    // The V2 route is hardened the same way.
    let data: Vec<f32> = rows.iter().take(3).flatten().copied().collect();
    let v2 = json!({"inputs":[{"name":"input","shape":[3,6],"datatype":"FP32","data":data}]});
    let r = server
        .post_key("/v2/models/label/infer", &key, &v2.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let probs: Vec<f64> = r.json()["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(probs.iter().all(|p| *p == 0.0 || *p == 1.0), "{probs:?}");

    // The watermark changes the label of about a quarter of the rows, the same rows every time.
    let marked = answers(&server.post_key(&predict_path("marked"), &key, &b).await);
    let again = answers(&server.post_key(&predict_path("marked"), &key, &b).await);
    let changed = full.iter().zip(&marked).filter(|(f, m)| f.0 != m.0).count();
    assert!((25..=80).contains(&changed), "{changed} of 201 marked");
    assert_eq!(
        marked.iter().map(|m| m.0).collect::<Vec<_>>(),
        again.iter().map(|m| m.0).collect::<Vec<_>>()
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------------------
// Extraction detection.

/// Send `rows` in batches of 25 from `key` to `model`; returns the statuses, stopping at the first non-200.
async fn send(server: &TestServer, model: &str, key: &str, rows: &[[f32; 6]]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for chunk in rows.chunks(25) {
        let r = server
            .post_key(&predict_path(model), key, &body(chunk))
            .await;
        statuses.push(r.status);
        if r.status != 200 {
            break;
        }
    }
    statuses
}

fn detector(m: &mut ModelConfig, action: ExtractionAction) {
    m.reference = Some(assets().join("demo-fraud.reference.csv"));
    m.extraction.action = action;
    m.extraction.min_distances = Some(50);
    m.extraction.window = Some(400);
    m.extraction.throttle_secs = 60;
}

async fn extraction_scenario(backend: Backend) {
    let Some(server) = support::start(backend, |c| {
        c.server.metrics_public = true;
        c.models = vec![
            model("fraud", |m| detector(m, ExtractionAction::Block)),
            model("fraud-t", |m| detector(m, ExtractionAction::Throttle)),
        ];
    })
    .await
    else {
        return;
    };
    let attacker = server.key(&["fraud", "fraud-t"], |_| {}).await;
    let benign = server.key(&["fraud", "fraud-t"], |_| {}).await;
    let attacker_id = key_id(&server, &attacker).await;
    let benign_id = key_id(&server, &benign).await;

    // A natural stream from one key raises nothing.
    let statuses = send(&server, "fraud", &benign, &natural(600, 21)).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    // The synthetic stream from another raises the alarm, then the key is blocked.
    let attack = jacobian_attack(1500, 31);
    let statuses = send(&server, "fraud", &attacker, &attack).await;
    // The request that raised the alarm is answered; the next one is refused.
    assert_eq!(statuses.last(), Some(&403), "{statuses:?}");
    assert!(statuses.len() >= 3, "{statuses:?}");
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 200));
    let alarms = audit_where(&server, 1, |r| r.kind == "extraction").await;
    assert_eq!(alarms.len(), 1, "{alarms:#?}");
    assert_eq!(alarms[0].key_id, attacker_id);
    assert_eq!(alarms[0].model, "fraud");
    assert_eq!(alarms[0].decision, "alarm");
    assert!(
        alarms[0].detail.contains("action block"),
        "{}",
        alarms[0].detail
    );
    let r = server
        .post_key(&predict_path("fraud"), &attacker, &body(&natural(1, 5)))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code(), "extraction_block");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("model-extraction"));
    let denied = audit_where(&server, 1, |r| r.decision == "denied:extraction_block").await;
    assert_eq!(denied[0].key_id, attacker_id);
    // The benign key is still served, and its stream after the attack raises nothing either.
    let statuses = send(&server, "fraud", &benign, &natural(200, 22)).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        metric(
            &server,
            "aegis_extraction_alarms_total",
            &[("model", "fraud")]
        )
        .await,
        Some(1.0)
    );

    // Admins and auditors list alarms; only admins clear them, which lifts the block.
    let admin = server.session("root", Role::Admin).await;
    let auditor = server.session("eve", Role::Auditor).await;
    let operator = server.session("op", Role::Operator).await;
    let list = server
        .with_session("GET", "/admin/extraction", &auditor, "")
        .await;
    assert_eq!(list.status, 200, "{}", list.text());
    let listed = list.json()["alarms"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["key_id"], attacker_id.as_str());
    assert!(listed[0]["queries"].as_u64().unwrap() >= 50);
    assert!(listed.iter().all(|a| a["key_id"] != benign_id.as_str()));
    let path = format!("/admin/extraction/{attacker_id}");
    assert_eq!(
        server
            .with_session("DELETE", &path, &operator, "")
            .await
            .status,
        403
    );
    let r = server.with_session("DELETE", &path, &admin, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["cleared"], 1);
    let cleared = audit_where(&server, 1, |r| r.decision == "extraction.clear").await;
    assert_eq!(cleared[0].key_id, attacker_id);
    let r = server
        .post_key(&predict_path("fraud"), &attacker, &body(&natural(1, 5)))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Throttle: after the alarm, one answer per 60 s (the alarm request, then the next one claims the slot),
    // then 429 with Retry-After.
    let statuses = send(&server, "fraud-t", &attacker, &attack).await;
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.len() >= 4, "{statuses:?}");
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 200));
    let alarms = audit_where(&server, 2, |r| r.kind == "extraction").await;
    assert_eq!(alarms.len(), 2, "{alarms:#?}");
    assert_eq!(alarms[1].model, "fraud-t");
    let r = server
        .post_key(&predict_path("fraud-t"), &attacker, &body(&natural(1, 6)))
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.code(), "extraction_throttle");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The benign key is not throttled on that model.
    let statuses = send(&server, "fraud-t", &benign, &natural(100, 23)).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    server.stop().await;
}

both!(extraction_is_detected_per_key, extraction_scenario);

/// Two gateways on one database: concurrent requests from one key through both are all counted by one
/// detector state (optimistic concurrency), an attack split across them raises one alarm, and both enforce it.
async fn replicas_scenario(backend: Backend) {
    let config = |c: &mut Config| {
        c.models = vec![
            model("fraud", |m| detector(m, ExtractionAction::Block)),
            model("fraud-a", |m| detector(m, ExtractionAction::Alert)),
        ];
    };
    let Some(first) = support::start(backend, config).await else {
        return;
    };
    let url = first.db_url.clone();
    let secrets = first.state().config.secrets_path();
    let second = support::start(backend, |c| {
        config(c);
        c.server.database = Some(url);
        c.server.secrets_file = Some(secrets.clone());
    })
    .await
    .unwrap();
    let stored = |id: String, model: &'static str| {
        let first = &first;
        async move {
            use sqlx::Row;
            let row =
                sqlx::query("SELECT state FROM extraction_state WHERE key_id = $1 AND model = $2")
                    .bind(id)
                    .bind(model)
                    .fetch_one(first.db().pool())
                    .await
                    .unwrap();
            let text: String = row.try_get("state").unwrap();
            serde_json::from_str::<aegis_monitor::prada::PradaState>(&text).unwrap()
        }
    };
    // One key's natural queries, concurrently through both gateways, with the action that reads the state
    // before answering (block) and the one that does not (alert).
    let key = first.key(&["fraud", "fraud-a"], |_| {}).await;
    let id = key_id(&first, &key).await;
    let rows = natural(40, 51);
    for model in ["fraud", "fraud-a"] {
        let statuses = futures_util::future::join_all((0..4).map(|t| {
            let (first, second, key, rows) = (&first, &second, &key, &rows);
            async move {
                let mut out = Vec::new();
                for i in 0..10 {
                    let server = if (t + i) % 2 == 0 { first } else { second };
                    let row = &rows[t * 10 + i..t * 10 + i + 1];
                    out.push(
                        server
                            .post_key(&predict_path(model), key, &body(row))
                            .await
                            .status,
                    );
                }
                out
            }
        }))
        .await;
        assert!(statuses.iter().flatten().all(|s| *s == 200), "{statuses:?}");
        // States are written behind (at most every 250 ms per key and model): wait for both replicas' writes.
        let mut s = stored(id.clone(), model).await;
        for _ in 0..100 {
            if s.queries == 40 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            s = stored(id.clone(), model).await;
        }
        assert_eq!(
            s.queries, 40,
            "{model}: every concurrent query is counted once"
        );
        assert!(!s.alarmed);
    }

    // Another key's attack, alternating between the gateways.
    let key = first.key(&["fraud"], |_| {}).await;
    let id = key_id(&first, &key).await;
    let attack = jacobian_attack(1500, 31);
    let mut statuses = Vec::new();
    for (i, chunk) in attack.chunks(25).enumerate() {
        let server = if i % 2 == 0 { &first } else { &second };
        let r = server
            .post_key(&predict_path("fraud"), &key, &body(chunk))
            .await;
        statuses.push(r.status);
        if r.status != 200 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&403), "{statuses:?}");
    assert!(stored(id, "fraud").await.alarmed);
    let alarms = audit_where(&first, 1, |r| r.kind == "extraction").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let alarms_later = audit_where(&first, 1, |r| r.kind == "extraction").await;
    assert_eq!(
        (alarms.len(), alarms_later.len()),
        (1, 1),
        "{alarms_later:#?}"
    );
    for server in [&first, &second] {
        let r = server
            .post_key(&predict_path("fraud"), &key, &body(&natural(1, 52)))
            .await;
        assert_eq!(r.status, 403, "{}", r.text());
    }
    second.stop().await;
    first.stop().await;
}

both!(replicas_share_one_detector, replicas_scenario);

/// The id (`aeg_<id>_…`) of a key, from the key list.
async fn key_id(server: &TestServer, secret: &str) -> String {
    let keys = aegis_gateway::keys::list_keys(server.db()).await.unwrap();
    keys.into_iter()
        .map(|k| k.id)
        .find(|id| secret.starts_with(&format!("aeg_{id}_")))
        .expect("the key's id is part of its secret")
}

// ---------------------------------------------------------------------------------------------------------
// Drift.

async fn drift_scenario(backend: Backend) {
    let Some(server) = support::start(backend, |c| {
        c.server.metrics_public = true;
        c.models = vec![model("fraud", |m| {
            m.reference = Some(assets().join("demo-fraud.reference.csv"));
            m.extraction.enabled = false;
            m.drift = Some(WindowConfig {
                size: 300,
                ..WindowConfig::default()
            });
        })];
    })
    .await
    else {
        return;
    };
    let key = server.key(&["fraud"], |_| {}).await;

    // Two windows of natural traffic: no alert.
    let statuses = send(&server, "fraud", &key, &natural(600, 41)).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let m = |name: &'static str| {
        let server = &server;
        async move { metric(server, name, &[("model", "fraud")]).await }
    };
    assert_eq!(m("aegis_drift_windows_total").await, Some(2.0));
    assert_eq!(m("aegis_drift_alerts_total").await, Some(0.0));
    let admin = server.session("root", Role::Operator).await;
    let r = server.with_session("GET", "/admin/drift", &admin, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["reports"][0]["alert"], false, "{}", r.text());
    assert!(audit_where(&server, 0, |r| r.kind == "drift")
        .await
        .is_empty());
    // The served model's posture has a live drift run, and no drift finding.
    let store = &server.state().store;
    let asset = store.asset("fraud").await.unwrap();
    let drift_runs = |store: aegis_store::Store, id: String| async move {
        let runs = store.runs(&id, None, 100).await.unwrap();
        runs.into_iter()
            .filter(|r| r.kind == aegis_store::checks::CheckKind::Drift)
            .collect::<Vec<_>>()
    };
    let runs = drift_runs(store.clone(), asset.id.clone()).await;
    assert_eq!(
        runs.len(),
        1,
        "one run an hour while the verdict holds: {runs:?}"
    );
    assert_eq!(
        (runs[0].cause.as_str(), runs[0].summary.as_str()),
        ("live", "no findings")
    );
    let drift_findings = aegis_store::findings::FindingFilter {
        asset: Some("fraud".into()),
        source: Some("drift".into()),
        ..Default::default()
    };
    assert!(store
        .list_findings(&drift_findings)
        .await
        .unwrap()
        .findings
        .is_empty());

    // A window of amounts four times larger: alert naming `amount`.
    let shifted: Vec<[f32; 6]> = natural(300, 42)
        .into_iter()
        .map(|mut r| {
            r[0] = (r[0] * 4.0).min(20_000.0);
            valid(r)
        })
        .collect();
    let statuses = send(&server, "fraud", &key, &shifted).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(m("aegis_drift_windows_total").await, Some(3.0));
    assert_eq!(m("aegis_drift_alerts_total").await, Some(1.0));
    let psi = metric(
        &server,
        "aegis_drift_psi",
        &[("model", "fraud"), ("feature", "amount")],
    )
    .await
    .unwrap();
    assert!(psi > 0.25, "psi {psi}");
    let p = metric(
        &server,
        "aegis_drift_pvalue",
        &[("model", "fraud"), ("feature", "amount")],
    )
    .await
    .unwrap();
    assert!(p < 0.01, "p {p}");
    let alerts = audit_where(&server, 1, |r| r.kind == "drift").await;
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].detail.contains("amount"), "{}", alerts[0].detail);
    let r = server.with_session("GET", "/admin/drift", &admin, "").await;
    let report = &r.json()["reports"][0];
    assert_eq!(report["model"], "fraud");
    assert_eq!(report["alert"], true);
    let drifted: Vec<&str> = report["report"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["drifted"] == true)
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(drifted.contains(&"amount"), "{drifted:?}");
    assert!(!drifted.contains(&"hour"), "{drifted:?}");
    // The alert is a finding on `amount`, and a new run (the verdict changed).
    let found = store.list_findings(&drift_findings).await.unwrap().findings;
    assert!(
        found.iter().any(|f| matches!(&f.finding.location,
            aegis_core::Location::ModelInput { feature, .. } if feature == "amount")),
        "{found:?}"
    );
    let runs = drift_runs(store.clone(), asset.id.clone()).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_ne!(runs[0].summary, "no findings");
    server.stop().await;
}

both!(drift_alerts_on_a_shifted_stream_only, drift_scenario);

// ---------------------------------------------------------------------------------------------------------
// Configuration errors.

#[test]
fn config_errors_name_the_model_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.toml");
    let load = |extra: &str| {
        std::fs::write(
            &path,
            format!("[[model]]\nname = \"fraud\"\npath = \"m.onnx\"\nschema = \"s.toml\"\n{extra}"),
        )
        .unwrap();
        Config::load(&path).map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(load("").is_ok());
    assert!(load("output = { policy = \"top-k\", k = 2 }\n").is_ok());
    assert!(load("reference = \"r.csv\"\n[model.drift]\nsize = 500\n").is_ok());
    let cases = [
        ("[model.drift]\nsize = 500\n", "drift"),
        ("output = { policy = \"top-k\", k = 0 }\n", "output.k"),
        (
            "output = { policy = \"round\", decimals = 9 }\n",
            "output.decimals",
        ),
        ("[model.extraction]\ndelta = 1.5\n", "extraction.delta"),
        (
            "[model.extraction]\nthrottle_secs = 0\n",
            "extraction.throttle_secs",
        ),
        ("[model.extraction]\nwindow = 2\n", "extraction.window"),
        (
            "[model.watermark]\nkey_file = \"k\"\nfraction = 0.9\n",
            "watermark.fraction",
        ),
        (
            "reference = \"r.csv\"\n[model.drift]\nalpha = 2.0\n",
            "drift.alpha",
        ),
    ];
    for (extra, field) in cases {
        let e = load(extra).unwrap_err();
        assert!(e.contains("\"fraud\"") && e.contains(field), "{extra}: {e}");
    }
    // Unknown keys and actions are refused, not ignored.
    let e = load("[model.extraction]\nacton = \"block\"\n").unwrap_err();
    assert!(e.contains("acton"), "{e}");
    let e = load("[model.extraction]\naction = \"ban\"\n").unwrap_err();
    assert!(e.contains("ban"), "{e}");
    let e = load("output = { policy = \"blur\" }\n").unwrap_err();
    assert!(e.contains("blur"), "{e}");
    let e = load("[model.extraction]\ndistance = \"cosine\"\n").unwrap_err();
    assert!(e.contains("cosine") && e.contains("normal-scores"), "{e}");
    for space in ["robust", "normal-scores", "std"] {
        assert!(load(&format!("[model.extraction]\ndistance = \"{space}\"\n")).is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reference_or_watermark_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let start = |m: ModelConfig| {
        let data = dir.path().join("data");
        async move {
            let mut c = Config::default();
            c.server.listen = "127.0.0.1:0".parse().unwrap();
            c.server.data_dir = data;
            c.server.plaintext = true;
            c.models = vec![m];
            aegis_gateway::serve::start(c).await
        }
    };
    let csv = dir.path().join("ref.csv");
    std::fs::write(&csv, "amount,hour\n1,2\n3,4\n").unwrap();
    let err = start(model("fraud", |m| m.reference = Some(csv.clone())))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"fraud\"") && err.contains("reference") && err.contains("merchant_risk"),
        "{err}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("wm.key");
        std::fs::write(&key, "a-secret-watermark-key-of-32-bytes").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = start(model("fraud", |m| {
            m.watermark = Some(WatermarkConfig {
                key_file: key.clone(),
                fraction: 0.02,
            })
        }))
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("watermark.key_file") && err.contains("chmod 600"),
            "{err}"
        );
        assert!(!err.contains("a-secret"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Detector rates on the demo model, without HTTP (the gateway's own settings and model, many streams).

/// Run the gateway's detector settings for `config` over `streams`: per stream, the query count at the alarm.
async fn alarms(config: &ModelConfig, streams: &[Vec<[f32; 6]>]) -> Vec<Option<u64>> {
    let (models, _) = aegis_gateway::models::LocalModels::load(std::slice::from_ref(config));
    let local = models.get(&config.name).expect("demo model loads");
    let guard = aegis_gateway::ModelGuard::build(config, &local)
        .await
        .unwrap();
    let settings = guard.extraction.as_ref().expect("detector enabled");
    let mut out = Vec::new();
    for stream in streams {
        let x: Vec<f32> = stream.iter().flatten().copied().collect();
        let proba = local.predict(x, stream.len()).await.unwrap();
        let mut state = aegis_monitor::prada::PradaState::default();
        for (row, p) in stream.iter().zip(proba.chunks_exact(2)) {
            let row: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
            let ood = guard.out_of_distribution(&row);
            state.observe(&settings.prada, &row, p, ood);
        }
        out.push(state.alarm_at);
    }
    out
}

/// False alarms on 40 natural streams and alarms on 20 Jacobian-like streams (600 queries each), default
/// detector settings, in each distance space. Measured: robust (the default) 2/40 benign and 12/20 attacks;
/// normal scores 0/40 and 3/20; std 14/40 and 15/20 (docs/BENCHMARKS.md). The demo data's log-normal amounts
/// and card ages make natural nearest-neighbour distances skewed in linear units; normal scores remove that,
/// and with it most of the signal of an attacker whose steps are fixed in linear units; robust scores keep the
/// bulk linear and compress only the tails.
#[tokio::test]
async fn detector_rates_on_demo_traffic() {
    let benign: Vec<Vec<[f32; 6]>> = (0..40).map(|k| natural(600, 7_000 + k)).collect();
    let attacks: Vec<Vec<[f32; 6]>> = (0..20).map(|k| jacobian_attack(600, 8_000 + k)).collect();
    let count = |v: &[Option<u64>]| v.iter().flatten().count();
    let mut rates = Vec::new();
    for space in [
        DistanceSpace::Robust,
        DistanceSpace::NormalScores,
        DistanceSpace::Std,
    ] {
        let config = model("fraud", |m| {
            m.reference = Some(assets().join("demo-fraud.reference.csv"));
            m.extraction.distance = space;
        });
        let (b, a) = (
            alarms(&config, &benign).await,
            alarms(&config, &attacks).await,
        );
        eprintln!(
            "{space:?}: benign alarms {}/40 at {:?}; attack alarms {}/20 at {:?}",
            count(&b),
            b.iter().flatten().collect::<Vec<_>>(),
            count(&a),
            a.iter().flatten().collect::<Vec<_>>()
        );
        rates.push((count(&b), count(&a)));
    }
    let (robust, normal, std) = (rates[0], rates[1], rates[2]);
    // The default: at most 10 % false alarms and at least half the attacks.
    assert!(robust.0 <= 4 && robust.1 >= 10, "robust: {robust:?}");
    // Normal scores: the fewest false alarms; std: the most attacks and many false alarms.
    assert!(normal.0 <= robust.0 && normal.1 < robust.1, "{normal:?}");
    assert!(std.0 >= 8 && std.1 >= robust.1, "std: {std:?}");
}

/// `refuse_findings`: a served model whose asset has an open finding at the policy's severity is withheld
/// (503 `model_withheld`, audited), and served again once the finding is accepted as a risk.
async fn serving_policy_scenario(backend: Backend) {
    let Some(server) = support::start(backend, |c| {
        c.models = vec![model("fraud", |m| {
            m.extraction.enabled = false;
            // Unsigned without a trust policy is a medium finding of the signature check.
            m.refuse_findings = Some(aegis_core::Severity::Medium);
        })];
    })
    .await
    else {
        return;
    };
    let key = server.key(&["fraud"], |_| {}).await;
    let rows = natural(1, 7);
    let withheld = async {
        for _ in 0..120 {
            let statuses = send(&server, "fraud", &key, &rows).await;
            if statuses[0] == 503 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        false
    }
    .await;
    assert!(
        withheld,
        "the model was not withheld while its unsigned finding is open"
    );
    let store = &server.state().store;
    let open = store
        .list_findings(&aegis_store::findings::FindingFilter {
            asset: Some("fraud".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .findings;
    let unsigned = open
        .iter()
        .find(|f| f.finding.rule.as_str() == "AEG-VAULT-001")
        .expect("the unsigned finding");
    store
        .triage(
            &unsigned.fingerprint,
            &aegis_store::Triage {
                accept_days: Some(7),
                comment: "signing lands next week".into(),
                ..Default::default()
            },
            "alice",
        )
        .await
        .unwrap();
    let served = async {
        for _ in 0..120 {
            let statuses = send(&server, "fraud", &key, &rows).await;
            if statuses[0] == 200 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        false
    }
    .await;
    assert!(served, "an accepted risk does not withhold the model");
    let decisions: Vec<String> = audit_where(&server, 0, |r| r.kind == "policy")
        .await
        .into_iter()
        .map(|r| r.decision.clone())
        .collect();
    assert!(decisions.contains(&"withhold".to_string()), "{decisions:?}");
    server.stop().await;
}

both!(
    a_model_with_open_findings_is_withheld_until_they_are_accepted,
    serving_policy_scenario
);
