//! The life of a finding through the store, on SQLite and PostgreSQL: a check finds it, one signed webhook and
//! one mail announce it, triage accepts it, a fixed version resolves it, a bad version reopens it; a dismissal
//! without a comment is refused; a failing receiver is retried and then reported.

mod support;

use aegis_core::Severity;
use aegis_store::assets::{AssetKind, NewAsset};
use aegis_store::checks::CheckKind;
use aegis_store::findings::{FindingFilter, Triage, VexState};
use aegis_store::notify::{Backoff, Channel, EmailConfig, Transport, WebhookConfig};
use aegis_store::queue::RunStatus;
use aegis_store::worker::{Worker, WorkerConfig};
use aegis_store::Store;

const SECRET: &str = "a-shared-secret-of-32-characters";

async fn add_version(
    store: &Store,
    name: &str,
    file: &str,
    bytes: &[u8],
    dir: &std::path::Path,
) -> Vec<String> {
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    let asset = store.asset(name).await.unwrap();
    let (version, new) = store
        .add_version_from_path(&asset, &path, 1 << 30)
        .await
        .unwrap();
    assert!(new);
    store.on_new_version(&asset, &version).await.unwrap()
}

async fn run_all(worker: &Worker, jobs: &[String]) {
    for job in jobs {
        let run = worker
            .run_job_now(job)
            .await
            .unwrap()
            .expect("the job was still queued");
        assert_ne!(
            run.status,
            RunStatus::Failed,
            "{}: {}",
            run.kind.as_str(),
            run.error
        );
    }
}

/// A store on a fresh SQLite database in `dir`.
async fn sqlite_store(dir: &std::path::Path) -> Store {
    let url = support::fresh_url(aegis_store::Backend::Sqlite, dir).await;
    support::open(aegis_store::Backend::Sqlite, &url, dir).await
}

/// A registered model asset without versions.
async fn model(store: &Store, name: &str) -> aegis_store::assets::Asset {
    store
        .create_asset(NewAsset {
            name: name.into(),
            kind: Some(AssetKind::Model),
            ..Default::default()
        })
        .await
        .unwrap()
}

fn open(filter_asset: &str) -> FindingFilter {
    FindingFilter {
        asset: Some(filter_asset.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_lifecycle_with_notifications() {
    for backend in support::backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = support::fresh_url(backend, dir.path()).await;
        let store = support::open(backend, &url, dir.path()).await;
        let (hook, hooks) = support::webhook_receiver(200).await;
        let (smtp, mails) = support::smtp_sink().await;
        store
            .put_channel(&Channel {
                name: "security-team".into(),
                transport: Transport::Webhook(WebhookConfig {
                    url: hook,
                    secret: SECRET.into(),
                    ca_file: None,
                }),
                min_severity: Severity::High,
                tags: vec![],
                digest_secs: 0,
                enabled: true,
            })
            .await
            .unwrap();
        store
            .put_channel(&Channel {
                name: "mail".into(),
                transport: Transport::Email(EmailConfig {
                    server: smtp,
                    from: "aegis@example.com".into(),
                    to: vec!["security@example.com".into()],
                    security: "none".into(),
                    ..Default::default()
                }),
                min_severity: Severity::High,
                tags: vec![],
                digest_secs: 0,
                enabled: true,
            })
            .await
            .unwrap();
        store
            .create_asset(NewAsset {
                name: "churn".into(),
                kind: Some(AssetKind::Model),
                owner: "data-team".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let worker = Worker::new(store.clone(), "test@host:", WorkerConfig::default());

        // Version 1 carries an os.system payload: one critical scan finding, one webhook, one mail.
        let jobs = add_version(
            &store,
            "churn",
            "model.pkl",
            &support::malicious_pickle(),
            dir.path(),
        )
        .await;
        run_all(&worker, &jobs).await;
        let page = store.list_findings(&open("churn")).await.unwrap();
        let payload: Vec<_> = page
            .findings
            .iter()
            .filter(|f| f.source == "scan")
            .collect();
        assert!(!payload.is_empty(), "{:?}", page.findings);
        assert!(payload
            .iter()
            .any(|f| f.finding.severity == Severity::Critical));
        let fp = payload[0].fingerprint.clone();
        // Nothing loads a version whose scan found a payload.
        let asset = store.asset("churn").await.unwrap();
        let latest = store.latest_runs(&asset.id).await.unwrap();
        let robustness = latest
            .iter()
            .find(|r| r.kind == CheckKind::Robustness)
            .unwrap();
        assert_eq!(robustness.status, RunStatus::Skipped);
        assert!(
            robustness.error.starts_with(
                "not loaded: the scan of version 1 found open high or critical findings (AEG-SCAN-"
            ),
            "{}",
            robustness.error
        );
        store.deliver_due(Backoff::default()).await.unwrap();
        {
            let got = hooks.lock().unwrap();
            assert_eq!(got.len(), 1, "one message per run and channel");
            let body = &got[0].body;
            assert_eq!(
                got[0].header("x-aegis-signature").unwrap(),
                aegis_store::notify::sign(SECRET, body)
            );
            assert_ne!(
                got[0].header("x-aegis-signature").unwrap(),
                aegis_store::notify::sign("another-secret-of-enough-length", body)
            );
            let json: serde_json::Value = serde_json::from_slice(body).unwrap();
            let events = json["events"].as_array().unwrap();
            assert!(events.iter().any(|e| e["fingerprint"] == fp.as_str()));
            // The unsigned-model finding is medium: below the channel's threshold, not sent.
            assert!(events.iter().all(|e| e["severity"] != "medium"));
        }
        {
            let got = mails.lock().unwrap();
            assert_eq!(got.len(), 1);
            assert!(got[0].contains("Subject: [Aegis critical]"), "{}", got[0]);
            assert!(got[0].contains(&fp));
        }

        // Dismissing without a comment is refused; accepting the risk for 30 days takes it off the open list.
        let err = store
            .triage(
                &fp,
                &Triage {
                    state: Some(VexState::FalsePositive),
                    ..Default::default()
                },
                "alice",
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("comment"), "{err}");
        let (before, after) = store
            .triage(
                &fp,
                &Triage {
                    accept_days: Some(30),
                    comment: "sandboxed loader until the vendor ships safetensors".into(),
                    ..Default::default()
                },
                "alice",
            )
            .await
            .unwrap();
        assert_eq!(before.accepted_until, 0);
        assert!(after.accepted_until > aegis_store::now_secs() + 29 * 86_400);
        assert!(store
            .list_findings(&open("churn"))
            .await
            .unwrap()
            .findings
            .iter()
            .all(|f| f.fingerprint != fp));
        let accepted = FindingFilter {
            state: Some("accepted".into()),
            ..open("churn")
        };
        assert_eq!(
            store.list_findings(&accepted).await.unwrap().findings.len(),
            1
        );

        // Version 2 is clean: the scan finding resolves itself; nothing new is sent.
        let jobs = add_version(
            &store,
            "churn",
            "model.pkl",
            &support::benign_pickle(),
            dir.path(),
        )
        .await;
        run_all(&worker, &jobs).await;
        // A clean version passes the gate (the assessment then says what it lacks).
        let latest = store.latest_runs(&asset.id).await.unwrap();
        let robustness = latest
            .iter()
            .find(|r| r.kind == CheckKind::Robustness)
            .unwrap();
        assert!(
            robustness.error.contains("no test data"),
            "{}",
            robustness.error
        );
        let f = store.finding(&fp).await.unwrap();
        assert_eq!(f.state, VexState::Resolved);
        assert!(f.resolved_at > 0);
        let history = store.finding_events(&fp).await.unwrap();
        let actions: Vec<&str> = history.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["detected", "accepted", "resolved"]);
        assert_eq!(history[1].actor, "alice");
        store.deliver_due(Backoff::default()).await.unwrap();
        assert_eq!(hooks.lock().unwrap().len(), 1);

        // Version 3 brings the payload back: reopened, its old acceptance gone, announced again.
        let jobs = add_version(
            &store,
            "churn",
            "model.pkl",
            &support::malicious_pickle(),
            dir.path(),
        )
        .await;
        run_all(&worker, &jobs).await;
        let f = store.finding(&fp).await.unwrap();
        assert_eq!(f.state, VexState::InTriage);
        assert_eq!(f.accepted_until, 0);
        assert_eq!(f.occurrences, 2);
        store.deliver_due(Backoff::default()).await.unwrap();
        {
            let got = hooks.lock().unwrap();
            assert_eq!(got.len(), 2);
            let json: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
            assert!(json["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["event"] == "finding_reopened"));
        }

        // Dismissed as a false positive with a comment: seen again by the next run, nothing is sent.
        store
            .triage(
                &fp,
                &Triage {
                    state: Some(VexState::FalsePositive),
                    comment: "test fixture, never deployed".into(),
                    ..Default::default()
                },
                "bob",
            )
            .await
            .unwrap();
        let asset = store.asset("churn").await.unwrap();
        let jobs = store
            .check_now(&asset, &[aegis_store::checks::CheckKind::Scan])
            .await
            .unwrap();
        run_all(&worker, &jobs).await;
        assert_eq!(
            store.finding(&fp).await.unwrap().state,
            VexState::FalsePositive
        );
        store.deliver_due(Backoff::default()).await.unwrap();
        assert_eq!(hooks.lock().unwrap().len(), 2);
        assert_eq!(mails.lock().unwrap().len(), 2);

        // The posture names the latest result of each check.
        let posture = store.posture(Some("churn")).await.unwrap();
        assert_eq!(posture[0].version, 3);
        assert_eq!(posture[0].signature, "unsigned");
        let skipped: Vec<_> = posture[0]
            .checks
            .iter()
            .filter(|c| c.status == "skipped")
            .collect();
        assert!(
            skipped.iter().any(|c| c.summary.starts_with("not loaded")),
            "{skipped:?}"
        );
        let html = aegis_store::posture::html(&posture);
        assert!(html.contains("churn") && !html.contains("<script"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_receiver_is_retried_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let (hook, hooks) = support::webhook_receiver(503).await;
    store
        .put_channel(&Channel {
            name: "flaky".into(),
            transport: Transport::Webhook(WebhookConfig {
                url: hook,
                secret: SECRET.into(),
                ca_file: None,
            }),
            min_severity: Severity::Low,
            tags: vec![],
            digest_secs: 0,
            enabled: true,
        })
        .await
        .unwrap();
    let asset = store
        .create_asset(NewAsset {
            name: "m".into(),
            kind: Some(AssetKind::Model),
            ..Default::default()
        })
        .await
        .unwrap();
    let finding = aegis_core::Finding::new(
        &aegis_vault::trust::UNSIGNED,
        aegis_core::Location::file("m.onnx"),
        "not signed",
    );
    store
        .record_signal(&asset, "gateway", &[finding], false)
        .await
        .unwrap();
    let backoff = Backoff { base_secs: 0 };
    for _ in 0..aegis_store::notify::MAX_ATTEMPTS {
        store.deliver_due(backoff).await.unwrap();
    }
    assert_eq!(
        hooks.lock().unwrap().len() as i64,
        aegis_store::notify::MAX_ATTEMPTS
    );
    let failed = store.deliveries(Some("failed"), 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].last_error.contains("503"),
        "{}",
        failed[0].last_error
    );
    // Given up: no further attempt.
    store.deliver_due(backoff).await.unwrap();
    assert_eq!(
        hooks.lock().unwrap().len() as i64,
        aegis_store::notify::MAX_ATTEMPTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_gathers_a_burst_into_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let (hook, hooks) = support::webhook_receiver(200).await;
    store
        .put_channel(&Channel {
            name: "digest".into(),
            transport: Transport::Webhook(WebhookConfig {
                url: hook,
                secret: SECRET.into(),
                ca_file: None,
            }),
            min_severity: Severity::Medium,
            tags: vec!["prod".into()],
            digest_secs: 600,
            enabled: true,
        })
        .await
        .unwrap();
    let prod = store
        .create_asset(NewAsset {
            name: "prod-model".into(),
            kind: Some(AssetKind::Model),
            tags: vec!["prod".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let dev = store
        .create_asset(NewAsset {
            name: "dev-model".into(),
            kind: Some(AssetKind::Model),
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..500 {
        let f = aegis_core::Finding::new(
            &aegis_vault::trust::UNSIGNED,
            aegis_core::Location::Route {
                route: format!("/v1/models/prod-model/window/{i}"),
                key: None,
            },
            format!("window {i}"),
        );
        store
            .record_signal(&prod, "drift", std::slice::from_ref(&f), false)
            .await
            .unwrap();
        store
            .record_signal(&dev, "drift", &[f], false)
            .await
            .unwrap();
    }
    store.deliver_due(Backoff::default()).await.unwrap();
    assert_eq!(
        hooks.lock().unwrap().len(),
        0,
        "the digest window is still open"
    );
    store
        .deliver_due_at(aegis_store::now_secs() + 601, Backoff::default())
        .await
        .unwrap();
    let got = hooks.lock().unwrap();
    assert_eq!(got.len(), 1);
    let json: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    let events = json["events"].as_array().unwrap();
    assert_eq!(events.len(), 500, "only the prod-tagged asset's events");
    assert!(events.iter().all(|e| e["asset"] == "prod-model"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_versions_are_checked_for_drift_against_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let worker = Worker::new(store.clone(), "test@host:", WorkerConfig::default());
    store
        .create_asset(NewAsset {
            name: "tx".into(),
            kind: Some(AssetKind::Dataset),
            settings: aegis_store::assets::AssetSettings {
                label: Some("label".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, csv) = support::demo_model();
    let lines: Vec<&str> = csv.lines().collect();
    let table = |rows: &[&str]| format!("{}\n{}\n", lines[0], rows.join("\n"));
    let drift_findings = |store: Store| async move {
        let page = store
            .list_findings(&FindingFilter {
                asset: Some("tx".into()),
                source: Some("drift".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        page.findings
    };
    // v1 and v2 are two samples of one distribution: no drift.
    run_all(
        &worker,
        &add_version(
            &store,
            "tx",
            "tx.csv",
            table(&lines[1..1001]).as_bytes(),
            dir.path(),
        )
        .await,
    )
    .await;
    run_all(
        &worker,
        &add_version(
            &store,
            "tx",
            "tx.csv",
            table(&lines[1001..]).as_bytes(),
            dir.path(),
        )
        .await,
    )
    .await;
    let asset = store.asset("tx").await.unwrap();
    let latest = store.latest_runs(&asset.id).await.unwrap();
    let drift = latest.iter().find(|r| r.kind == CheckKind::Drift).unwrap();
    assert_eq!(drift.status, RunStatus::Done, "{}", drift.error);
    assert!(drift_findings(store.clone()).await.is_empty());
    // v3 carries amounts five times larger: the amount column drifted.
    let scaled: Vec<String> = lines[1001..]
        .iter()
        .map(|l| {
            let mut cells: Vec<String> = l.split(',').map(str::to_string).collect();
            cells[0] = format!("{:.2}", cells[0].parse::<f64>().unwrap() * 5.0);
            cells.join(",")
        })
        .collect();
    let scaled: Vec<&str> = scaled.iter().map(String::as_str).collect();
    run_all(
        &worker,
        &add_version(
            &store,
            "tx",
            "tx.csv",
            table(&scaled).as_bytes(),
            dir.path(),
        )
        .await,
    )
    .await;
    let found = drift_findings(store.clone()).await;
    assert!(
        found.iter().any(|f| f.finding.rule.as_str() == "AEG-DRIFT-001"
            && matches!(&f.finding.location, aegis_core::Location::Dataset { column: Some(c), .. } if c == "amount")),
        "{found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_starttls_with_credentials_inside_tls() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let (server, ca, mails, auths) = support::starttls_sink(dir.path()).await;
    let email = EmailConfig {
        server: server.clone(),
        from: "aegis@example.com".into(),
        to: vec!["oncall@example.com".into()],
        security: "starttls".into(),
        username: Some("aegis".into()),
        password: Some("smtp secret".into()),
        ca_file: Some(ca),
    };
    store
        .put_channel(&Channel {
            name: "oncall".into(),
            transport: Transport::Email(email.clone()),
            min_severity: Severity::High,
            tags: vec![],
            digest_secs: 0,
            enabled: true,
        })
        .await
        .unwrap();
    store.test_channel("oncall").await.unwrap();
    assert_eq!(auths.lock().unwrap().as_slice(), ["|aegis|smtp secret"]);
    let got = mails.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("Subject: Aegis test notification"),
        "{}",
        got[0]
    );
    // Without the sink's CA the certificate is refused, and nothing is sent.
    store
        .put_channel(&Channel {
            name: "unverified".into(),
            transport: Transport::Email(EmailConfig {
                ca_file: None,
                ..email.clone()
            }),
            min_severity: Severity::High,
            tags: vec![],
            digest_secs: 0,
            enabled: true,
        })
        .await
        .unwrap();
    let err = store
        .test_channel("unverified")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("TLS"), "{err}");
    assert_eq!(
        auths.lock().unwrap().len(),
        1,
        "no credentials sent to an unverified server"
    );
    // A plain sink that offers no STARTTLS is refused unless the channel says `none`.
    let (plain, _) = support::smtp_sink().await;
    store
        .put_channel(&Channel {
            name: "plain".into(),
            transport: Transport::Email(EmailConfig {
                server: plain,
                ca_file: None,
                ..email
            }),
            min_severity: Severity::High,
            tags: vec![],
            digest_secs: 0,
            enabled: true,
        })
        .await
        .unwrap();
    let err = store.test_channel("plain").await.unwrap_err().to_string();
    assert!(err.contains("does not offer STARTTLS"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_resolved_by_a_later_version_still_keeps_its_version_unloaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let worker = Worker::new(store.clone(), "test@host:", WorkerConfig::default());
    let asset = model(&store, "m").await;
    run_all(
        &worker,
        &add_version(
            &store,
            "m",
            "m.pkl",
            &support::malicious_pickle(),
            dir.path(),
        )
        .await,
    )
    .await;
    run_all(
        &worker,
        &add_version(&store, "m", "m.pkl", &support::benign_pickle(), dir.path()).await,
    )
    .await;
    let v1 = store
        .versions(&asset.id)
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.seq == 1)
        .unwrap();
    let job = store
        .enqueue(&asset.id, &v1.id, CheckKind::Robustness, "test", 0)
        .await
        .unwrap();
    let run = worker.run_job_now(&job).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Skipped);
    assert!(run.error.starts_with("not loaded"), "{}", run.error);
    // The clean version is loaded (here it then lacks test data).
    let v2 = store
        .versions(&asset.id)
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.seq == 2)
        .unwrap();
    let job = store
        .enqueue(&asset.id, &v2.id, CheckKind::Robustness, "test", 0)
        .await
        .unwrap();
    let run = worker.run_job_now(&job).await.unwrap().unwrap();
    assert!(run.error.contains("no test data"), "{}", run.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_risk_acceptance_reopens_and_a_schedule_runs_once_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let worker = Worker::new(store.clone(), "test@host:", WorkerConfig::default());
    let asset = model(&store, "m").await;
    let jobs = add_version(
        &store,
        "m",
        "m.pkl",
        &support::malicious_pickle(),
        dir.path(),
    )
    .await;
    run_all(&worker, &jobs).await;
    let fp = store.list_findings(&open("m")).await.unwrap().findings[0]
        .fingerprint
        .clone();
    store
        .triage(
            &fp,
            &Triage {
                accept_days: Some(1),
                comment: "one day".into(),
                ..Default::default()
            },
            "alice",
        )
        .await
        .unwrap();
    let now = aegis_store::now_secs();
    assert!(
        store.expire_acceptances(now).await.unwrap().is_empty(),
        "not yet due"
    );
    let reopened = store.expire_acceptances(now + 2 * 86_400).await.unwrap();
    assert_eq!(reopened.len(), 1);
    let f = store.finding(&fp).await.unwrap();
    assert_eq!((f.state, f.accepted_until), (VexState::InTriage, 0));
    let actions: Vec<String> = store
        .finding_events(&fp)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions.last().map(String::as_str),
        Some("acceptance_expired")
    );

    // Scan is scheduled daily by default; a due schedule queues one job and advances, a missed week once.
    let schedules = store.schedules(&asset.id).await.unwrap();
    assert!(schedules
        .iter()
        .any(|s| s.check == CheckKind::Scan && s.every_secs == 86_400));
    assert_eq!(
        store.enqueue_scheduled(now).await.unwrap(),
        0,
        "nothing due yet"
    );
    let week = now + 7 * 86_400 + 10;
    let queued = store.enqueue_scheduled(week).await.unwrap();
    assert_eq!(queued, 2, "scan and signature, once each");
    assert_eq!(
        store.enqueue_scheduled(week).await.unwrap(),
        0,
        "advanced past the missed week"
    );
    let s = store
        .set_schedule(&asset, CheckKind::Scan, 0, Some("30 2 * * *"))
        .await
        .unwrap();
    assert!(s.enabled && s.next_due > now && !s.cron.is_empty());
    assert!(store
        .set_schedule(&asset, CheckKind::Scan, 0, Some("bad"))
        .await
        .is_err());
}
