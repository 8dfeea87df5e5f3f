//! The audit promise under a full disk: `aegis serve` on a small filesystem that the test fills and then
//! grows. While nothing can be recorded nothing is answered (503), no answered request lacks its record, a
//! key's budget is never exceeded, and once space returns the gateway recovers by itself, says so in its
//! audit log, and its chain verifies.
//!
//! Needs root to mount a tmpfs (as in CI); elsewhere the test says why it skips.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aegis_gateway::audit_log;
use support::Backend;

const ROW: &str = r#"{"rows":[{"amount":2400,"hour":3,"merchant_risk":0.9,"card_age_days":12,"foreign":1,"n_tx_24h":14}]}"#;
const PREDICT: &str = "/v1/models/demo-fraud/predict";
/// The key's daily budget: 10 answers before the disk fills, the rest after.
const BUDGET: usize = 16;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (as `mount` spells it), or say why not.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("needs root to mount a small filesystem".into());
        }
        let parent = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = parent.path().join("fs");
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .map_err(|e| format!("cannot run mount: {e}"))?
            .success();
        if !ok {
            return Err("mount -t tmpfs failed (no privilege in this container?)".into());
        }
        Ok(Tmpfs {
            path,
            _parent: parent,
        })
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

/// Write zeros to `dir/filler` until the filesystem is full.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_answers_it_cannot_record_and_recovers_by_itself() {
    let fs = match Tmpfs::mount("8m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let data = fs.path.join("data");
    let server = support::start(Backend::Sqlite, |c| c.server.data_dir = data.clone())
        .await
        .unwrap();
    let key = server
        .key(&["demo-fraud"], |k| {
            k.daily_budget = BUDGET as i64;
        })
        .await;
    let mut answered = 0usize;
    for _ in 0..10 {
        let r = server.post_key(PREDICT, &key, ROW).await;
        assert_eq!(r.status, 200, "{}", r.text());
        answered += 1;
    }

    // Full: nothing can be recorded, so nothing is answered.
    fill(&fs.path);
    let mut refused = 0usize;
    for _ in 0..20 {
        let r = server.post_key(PREDICT, &key, ROW).await;
        match r.status {
            200 => answered += 1,
            503 => refused += 1,
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(refused > 0, "every request was answered on a full disk");

    // Space returns: the gateway recovers without a restart.
    fs.resize("64m");
    let _ = std::fs::remove_file(fs.path.join("filler"));
    let mut recovered = false;
    for _ in 0..100 {
        let r = server.post_key(PREDICT, &key, ROW).await;
        if r.status == 200 {
            answered += 1;
            recovered = true;
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "still refusing 10 s after space returned");
    // The rest of the budget, then refusals: the budget counts exactly what was answered or charged.
    loop {
        let r = server.post_key(PREDICT, &key, ROW).await;
        match r.status {
            200 => answered += 1,
            429 => break,
            other => panic!("unexpected {other}: {}", r.text()),
        }
        assert!(answered <= BUDGET, "the daily budget was exceeded");
    }

    // Every answer has its record; the outage is in the log; the chain verifies.
    server.stop().await;
    let db = aegis_gateway::Db::open_data_dir(&data).await.unwrap();
    let records = audit_log::list(&db, 0, 10_000).await.unwrap();
    let allowed = records
        .iter()
        .filter(|r| r.kind == "inference" && r.status == 200)
        .count();
    assert_eq!(allowed, answered, "answered requests without a record");
    assert!(
        records.iter().any(|r| r.kind == "audit_outage"),
        "the outage is not in the log"
    );
    let v = audit_log::verify(&db).await.unwrap();
    assert!(v.problem.is_none(), "{v:?}");

    // After a restart on the same data, the spent budget still holds.
    drop(db);
    let again = support::start(Backend::Sqlite, |c| c.server.data_dir = data.clone())
        .await
        .unwrap();
    let r = again.post_key(PREDICT, &key, ROW).await;
    assert_eq!(r.status, 429, "{}", r.text());
    again.stop().await;
}

/// Start-up on a database that cannot be written fails at once, naming the file, what is wrong and what to do
/// (not "pool timed out" ten seconds later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_names_a_read_only_or_full_database_and_what_to_do() {
    let fs = match Tmpfs::mount("4m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let data = fs.path.join("data");
    let config = |dir: &Path| {
        let mut c = aegis_gateway::config::Config::default();
        c.server.listen = "127.0.0.1:0".parse().unwrap();
        c.server.plaintext = true;
        c.server.data_dir = dir.to_path_buf();
        c
    };
    // A database made by a first start.
    let running = aegis_gateway::serve::start(config(&data)).await.unwrap();
    running.shutdown().await.unwrap();

    let remount = |opts: &str| {
        assert!(Command::new("mount")
            .args(["-o", opts])
            .arg(&fs.path)
            .status()
            .unwrap()
            .success());
    };
    remount("remount,ro");
    let err = aegis_gateway::serve::start(config(&data))
        .await
        .unwrap_err()
        .to_string();
    remount("remount,rw");
    assert!(
        err.contains("aegis.db") && err.contains("read-only file system"),
        "{err}"
    );
    assert!(err.contains("writable"), "{err}");

    // A full disk, with the database there and without it.
    fill(&fs.path);
    let err = aegis_gateway::serve::start(config(&data))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("aegis.db") && err.contains("disk is full"),
        "{err}"
    );
    assert!(err.contains("df -h"), "{err}");
    std::fs::remove_dir_all(&data).unwrap();
    let err = aegis_gateway::serve::start(config(&data))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("aegis.db") && err.contains("disk is full"),
        "{err}"
    );
    std::fs::remove_file(fs.path.join("filler")).unwrap();

    // Space back: it starts.
    let running = aegis_gateway::serve::start(config(&data)).await.unwrap();
    running.shutdown().await.unwrap();
}
