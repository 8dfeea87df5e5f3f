//! The job queue under concurrency and crashes: two replicas claim every job exactly once; a restart in the
//! middle of a run marks it failed with its reason and requeues the job, which then runs once more.

mod support;

use std::collections::HashSet;

use aegis_store::checks::CheckKind;
use aegis_store::queue::{RunStatus, MAX_ATTEMPTS};
use aegis_store::Backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_claim_each_job_exactly_once() {
    for backend in support::backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = support::fresh_url(backend, dir.path()).await;
        let a = support::open(backend, &url, dir.path()).await;
        let b = support::open(backend, &url, dir.path()).await;
        let mut queued = HashSet::new();
        for i in 0..60 {
            let id = a
                .enqueue("ast_x", &format!("ver_{i}"), CheckKind::Scan, "test", 0)
                .await
                .unwrap();
            queued.insert(id);
        }
        let claim_all = |store: aegis_store::Store, name: &'static str| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some((job, _run)) = store.claim(name).await.unwrap() {
                    mine.push(job.id);
                }
                mine
            })
        };
        let (ra, rb) = tokio::join!(
            claim_all(a.clone(), "replica-a"),
            claim_all(b.clone(), "replica-b")
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let mut all: Vec<String> = ra.iter().chain(rb.iter()).cloned().collect();
        assert_eq!(
            all.len(),
            60,
            "{backend:?}: every job claimed once ({} + {})",
            ra.len(),
            rb.len()
        );
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 60, "{backend:?}: a job was claimed twice");
        assert_eq!(all.into_iter().collect::<HashSet<_>>(), queued);
        let counts = a.queue_counts().await.unwrap();
        assert_eq!((counts.queued, counts.running), (0, 60));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_run_fails_the_run_and_requeues_the_job() {
    for backend in support::backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = support::fresh_url(backend, dir.path()).await;
        let store = support::open(backend, &url, dir.path()).await;
        let job = store
            .enqueue("ast_x", "ver_1", CheckKind::Audit, "test", 0)
            .await
            .unwrap();
        // The first process claims it and dies.
        let (_, run1) = store.claim("serve@host:boot_1").await.unwrap().unwrap();
        // Its successor on the same node recovers it at once; a replica elsewhere would wait for the lease.
        let other = support::open(backend, &url, dir.path()).await;
        assert_eq!(
            other
                .recover(
                    aegis_store::now_secs(),
                    Some("serve@other:"),
                    "serve@other:b"
                )
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .recover(
                    aegis_store::now_secs(),
                    Some("serve@host:"),
                    "serve@host:boot_2"
                )
                .await
                .unwrap(),
            1
        );
        let failed = store.run(&run1.id, false).await.unwrap();
        assert_eq!(failed.status, RunStatus::Failed);
        assert!(
            failed.error.contains("restarted") && failed.error.contains("queued again"),
            "{}",
            failed.error
        );
        // The job runs again, once; the dead worker's late answer counts for nothing.
        let (again, run2) = store.claim("serve@host:boot_2").await.unwrap().unwrap();
        let stale = aegis_store::queue::Job {
            attempt: 1,
            ..again.clone()
        };
        assert!(!store
            .renew(&job, &run1.id, "serve@host:boot_1")
            .await
            .unwrap());
        assert!(!store
            .finish(
                &stale,
                &run1.id,
                "serve@host:boot_1",
                RunStatus::Done,
                "no findings",
                "",
                None
            )
            .await
            .unwrap());
        assert_eq!(
            store.run(&run1.id, false).await.unwrap().status,
            RunStatus::Failed
        );
        assert_eq!(again.id, job);
        assert_eq!(again.attempt, 2);
        assert_eq!(again.cause, "retry");
        assert!(store.claim("serve@host:boot_2").await.unwrap().is_none());
        assert!(store
            .finish(
                &again,
                &run2.id,
                "serve@host:boot_2",
                RunStatus::Done,
                "no findings",
                "",
                None
            )
            .await
            .unwrap());
        // A lease that runs out (a lost replica) is recovered by anyone, and after MAX_ATTEMPTS left failed.
        let job = store
            .enqueue("ast_x", "ver_2", CheckKind::Scan, "test", 0)
            .await
            .unwrap();
        for attempt in 1..=MAX_ATTEMPTS {
            let (j, _) = store.claim("replica-gone").await.unwrap().unwrap();
            assert_eq!((j.id.as_str(), j.attempt), (job.as_str(), attempt));
            let later = aegis_store::now_secs() + aegis_store::queue::LEASE_SECS + 1;
            assert_eq!(
                other.recover(later, None, "serve@other:b").await.unwrap(),
                1
            );
        }
        assert!(store.claim("anyone").await.unwrap().is_none());
        let runs = store.runs("ast_x", Some("ver_2"), 10).await.unwrap();
        assert_eq!(runs.len() as i64, MAX_ATTEMPTS);
        assert!(runs.iter().all(|r| r.status == RunStatus::Failed));
        assert!(runs[0].error.contains("given up"), "{}", runs[0].error);
        let counts = store.queue_counts().await.unwrap();
        assert_eq!((counts.queued, counts.running), (0, 0));
        let _ = Backend::Sqlite;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_loading_checks_wait_for_the_scan_of_their_version() {
    for backend in support::backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = support::fresh_url(backend, dir.path()).await;
        let store = support::open(backend, &url, dir.path()).await;
        let scan = store
            .enqueue("ast_x", "ver_1", CheckKind::Scan, "test", 0)
            .await
            .unwrap();
        let robustness = store
            .enqueue("ast_x", "ver_1", CheckKind::Robustness, "test", 0)
            .await
            .unwrap();
        // Another version's checks are not held up.
        let other = store
            .enqueue("ast_x", "ver_2", CheckKind::Privacy, "test", 0)
            .await
            .unwrap();
        let (first, run) = store.claim("w").await.unwrap().unwrap();
        assert_eq!(first.id, scan);
        let (second, _) = store.claim("w").await.unwrap().unwrap();
        assert_eq!(second.id, other, "{backend:?}");
        assert!(
            store.claim("w").await.unwrap().is_none(),
            "robustness claimed while its scan runs"
        );
        assert!(store.claim_job("w", &robustness).await.unwrap().is_none());
        store
            .finish(
                &first,
                &run.id,
                "w",
                RunStatus::Done,
                "no findings",
                "",
                None,
            )
            .await
            .unwrap();
        let (third, _) = store.claim("w").await.unwrap().unwrap();
        assert_eq!(third.id, robustness);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replica_workers_run_each_job_once() {
    use aegis_store::assets::{AssetKind, NewAsset};
    use aegis_store::worker::{Worker, WorkerConfig};
    for backend in support::backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = support::fresh_url(backend, dir.path()).await;
        let a = support::open(backend, &url, dir.path()).await;
        let b = support::open(backend, &url, dir.path()).await;
        let asset = a
            .create_asset(NewAsset {
                name: "m".into(),
                kind: Some(AssetKind::Model),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut jobs = Vec::new();
        for i in 0..10u8 {
            let path = dir.path().join(format!("m{i}.pkl"));
            // A list of one small int: ten different harmless pickles.
            std::fs::write(&path, [0x80, 0x02, b']', b'K', i, b'a', b'.']).unwrap();
            let asset = a.asset(&asset.id).await.unwrap();
            let (version, _) = a
                .add_version_from_path(&asset, &path, 1 << 20)
                .await
                .unwrap();
            jobs.extend(a.on_new_version(&asset, &version).await.unwrap());
        }
        let n = jobs.len();
        assert_eq!(n, 50, "five checks per model version");
        let config = WorkerConfig {
            poll: std::time::Duration::from_millis(50),
            ..WorkerConfig::default()
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wa =
            tokio::spawn(Worker::new(a.clone(), "serve@a:", config.clone()).run(stopped.clone()));
        let wb = tokio::spawn(Worker::new(b.clone(), "serve@b:", config).run(stopped));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let c = a.queue_counts().await.unwrap();
            if c.queued == 0 && c.running == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{backend:?}: the queue did not drain: {c:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        stop.send(true).unwrap();
        let _ = tokio::join!(wa, wb);
        let runs = a.runs(&asset.id, None, 1000).await.unwrap();
        assert_eq!(runs.len(), n, "{backend:?}: one run per job");
        let mut by_job: Vec<&str> = runs.iter().map(|r| r.job_id.as_str()).collect();
        by_job.sort();
        by_job.dedup();
        assert_eq!(by_job.len(), n, "{backend:?}: a job ran twice");
        let workers: std::collections::HashSet<&str> = runs
            .iter()
            .map(|r| r.worker.split("boot").next().unwrap())
            .collect();
        assert!(
            runs.iter().all(|r| r.status != RunStatus::Failed),
            "{backend:?}"
        );
        eprintln!("{backend:?}: {n} jobs, workers {workers:?}");
    }
}
