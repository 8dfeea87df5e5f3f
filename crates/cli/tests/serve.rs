//! `aegis serve`, `aegis user`, `aegis key`, `aegis model` and `aegis audit-log` as a user runs them: the real
//! binary, a real server process on 127.0.0.1, plain HTTP/1.1 written by hand, SIGTERM for a clean stop.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::aegis;

fn data_dir_args(dir: &Path) -> Vec<String> {
    vec!["--data-dir".into(), dir.join("data").display().to_string()]
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(data_dir_args(dir));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    aegis(&refs, dir)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One HTTP/1.1 request; returns (status, body).
fn http(addr: &str, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = key
        .map(|k| format!("authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `aegis user add NAME --role ROLE --password-stdin` with `password` on stdin.
fn user_add(dir: &Path, name: &str, role: &str, password: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args([
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(password).unwrap();
    child.wait_with_output().unwrap()
}

/// `aegis serve --plaintext` on a free port with its data in `d/data`: the child, its address, and the demo key and
/// bootstrap code when it printed them (first start).
fn spawn_serve(d: &Path) -> (std::process::Child, String, Option<String>, Option<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args([
            "serve",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(d.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    let mut key = None;
    let mut code = None;
    let mut secrets = false;
    let mut serving = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        // The start says where the secrets key file is, so it can be backed up.
        secrets |= line.contains("secrets: ") && line.contains("secrets.key");
        serving |= line.contains("1 of 1 models serving");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(k) = line.split_whitespace().find(|w| w.starts_with("aeg_")) {
            key = Some(k.trim_matches('\'').to_string());
        }
        if line.contains("\"code\":\"") {
            code = line
                .split("\"code\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned);
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    assert!(secrets, "the secrets key file is not named at start");
    assert!(serving, "no 'N of M models serving' line at start");
    (child, addr.expect("listening line"), key, code)
}

const ROW: &str = r#"{"rows":[{"amount":2400,"hour":3,"merchant_risk":0.9,"card_age_days":12,"foreign":1,"n_tx_24h":14}]}"#;

#[test]
fn users_keys_and_the_audit_log_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A user: the password from stdin, admins get TOTP and recovery codes once.
    let out = user_add(d, "alice", "admin", b"a long enough password\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("otpauth://totp/"), "{}", stdout(&out));
    // A weak password is refused with the reason, and nothing is created.
    let out = user_add(d, "bob", "operator", b"short\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("12"), "{}", stderr(&out));
    let out = run(d, &["user", "list", "--format", "json"]);
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["role"], "admin");
    // Every command that opens the database says which one, and stdout stays JSON.
    assert!(
        stderr(&out).contains("aegis: database sqlite://") && stderr(&out).contains("aegis.db"),
        "{}",
        stderr(&out)
    );
    // Unlock clears a lock (here: none) and names the user; an unknown user is an error.
    let out = run(d, &["user", "unlock", "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("alice unlocked"), "{}", stderr(&out));
    let out = run(d, &["user", "unlock", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    // Keys: created (secret on stdout once), listed without the secret, rotated, revoked.
    let out = run(
        d,
        &[
            "key",
            "create",
            "--name",
            "shop",
            "--owner",
            "acme",
            "--model",
            "demo-fraud",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["key"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with(&format!("aeg_{id}_")));
    let out = run(d, &["key", "list", "--format", "json"]);
    assert!(
        !stdout(&out).contains(&secret),
        "the secret must never be listed"
    );
    assert!(stdout(&out).contains(&id));
    let out = run(d, &["key", "rotate", &id, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let new_id = rotated["key"]["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    let out = run(d, &["key", "revoke", &new_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(d, &["key", "revoke", "kNoSuchKey00"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    // Every change above is in the chain, and the chain verifies.
    let out = run(d, &["audit-log", "verify", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["problem"].is_null());
    assert!(v["records"].as_i64().unwrap() >= 4, "{v}");
    // The head hash that docs/serve.md tells operators to anchor, in JSON and in words.
    let head = v["head_hash"].as_str().unwrap().to_owned();
    assert!(
        head.len() == 64 && head.bytes().all(|b| b.is_ascii_hexdigit()),
        "{v}"
    );
    assert!(stdout(&run(d, &["audit-log", "verify"])).contains(&format!("head hash {head}")));
    let out = run(d, &["audit-log", "show", "--format", "json"]);
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Newest first, the newest being the head.
    let seqs: Vec<i64> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    assert_eq!(seqs[0], v["head_seq"].as_i64().unwrap());
    // In words: a header, readable UTC times, and paging back with --before.
    let shown = stdout(&run(
        d,
        &[
            "audit-log",
            "show",
            "--limit",
            "2",
            "--before",
            &seqs[0].to_string(),
        ],
    ));
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[0].contains("TIME (UTC)"), "{shown}");
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(
        lines[1].trim_start().starts_with(&seqs[1].to_string()),
        "{shown}"
    );
    let year = lines[1].split_whitespace().nth(1).unwrap();
    assert!(
        year.len() == 10 && year.starts_with("20") && year.as_bytes()[4] == b'-',
        "{shown}"
    );
    let decisions: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["decision"].as_str())
        .collect();
    for expected in [
        "user.create",
        "user.unlock",
        "key.create",
        "key.rotate",
        "key.revoke",
    ] {
        assert!(
            decisions.contains(&expected),
            "{expected} missing from {decisions:?}"
        );
    }
}

#[test]
fn serve_answers_then_stops_cleanly_with_every_request_audited() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut child, addr, key, code) = spawn_serve(d);
    let key = key.expect("demo key printed on first start");
    assert!(
        code.is_some_and(|c| c.len() >= 20),
        "bootstrap code printed on an empty database"
    );

    let (status, body) = http(
        &addr,
        "POST",
        "/v1/models/demo-fraud/predict",
        Some(&key),
        ROW,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"fraud\""), "{body}");
    let (status, body) = http(&addr, "POST", "/v1/models/demo-fraud/predict", None, ROW);
    assert_eq!(status, 401, "{body}");
    let (status, body) = http(&addr, "GET", "/openapi.json", None, "");
    assert_eq!(status, 200);
    assert!(body.contains("\"openapi\""));

    // SIGTERM (not SIGKILL): requests finish and the audit log is flushed before exit.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    let out = run(
        d,
        &["audit-log", "show", "--format", "json", "--limit", "1000"],
    );
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inference: Vec<&serde_json::Value> = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["route"] == "/v1/models/{name}/predict")
        .collect();
    assert_eq!(inference.len(), 2, "{records}");
    assert!(inference
        .iter()
        .any(|r| r["status"] == 200 && r["decision"] == "allowed"));
    assert!(inference.iter().any(|r| r["status"] == 401));
    let out = run(d, &["audit-log", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Tamper with the database file: verify exits 1 and names the record.
    let db = d.join("data/aegis.db");
    let conn_ok = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE audit_log SET decision='allowed' WHERE status=401\"); c.commit()",
        ])
        .arg(&db)
        .status();
    if conn_ok.map(|s| s.success()).unwrap_or(false) {
        let out = run(d, &["audit-log", "verify"]);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(
            stdout(&out).contains("CHAIN BROKEN at record"),
            "{}",
            stdout(&out)
        );
    } else {
        eprintln!("python3 with sqlite3 unavailable: tamper step skipped");
    }
}

#[test]
fn openapi_and_model_list_and_helpful_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = aegis(&["serve", "--openapi"], d);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["paths"]["/v1/models/{name}/predict"].is_object());
    let out = run(d, &["model", "list", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["models"][0]["name"], "demo-fraud");
    // A configured model that is not a model is refused (exit 1, named), while the demo is not served in its place.
    std::fs::write(d.join("junk.onnx"), b"not a model").unwrap();
    std::fs::write(
        d.join("schema.toml"),
        "[[feature]]\nname = \"x\"\nkind = \"continuous\"\nmin = 0.0\nmax = 1.0\n",
    )
    .unwrap();
    std::fs::write(
        d.join("models.toml"),
        "[[model]]\nname = \"junk\"\npath = \"junk.onnx\"\nschema = \"schema.toml\"\n",
    )
    .unwrap();
    let out = aegis(&["model", "list", "--config", "models.toml"], d);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("junk") && stdout(&out).contains("REFUSED"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("demo-fraud"), "{}", stdout(&out));
    // `aegis serve` with that configuration does not start (exit 2), naming the model and the way out.
    let serve_junk = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--config",
            "models.toml",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
            .args(&args)
            .arg("--data-dir")
            .arg(d.join("junk-data"))
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut text = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            text.push_str(&line);
            text.push('\n');
            if line.contains("Ctrl-C") {
                break;
            }
        }
        let _ = child.kill();
        (child.wait().unwrap(), text)
    };
    let (status, text) = serve_junk(&[]);
    assert_eq!(status.code(), Some(2), "{text}");
    assert!(
        text.contains("junk")
            && text.contains("1 of 1 configured models refused")
            && text.contains("--allow-partial"),
        "{text}"
    );
    assert!(!text.contains("listening"), "{text}");
    // With --allow-partial it starts, and says how many of the configured models serve.
    let (_, text) = serve_junk(&["--allow-partial"]);
    assert!(
        text.contains("listening") && text.contains("0 of 1 models serving"),
        "{text}"
    );
    // A bad config is refused naming the file and the key.
    std::fs::write(
        d.join("aegis.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\nplaintxt = true\n",
    )
    .unwrap();
    let out = aegis(&["serve", "--config", "aegis.toml"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("aegis.toml") && stderr(&out).contains("plaintxt"),
        "{}",
        stderr(&out)
    );
    // A user command without --password-stdin on a pipe explains what to do.
    let out = run(d, &["user", "add", "carol", "--role", "auditor"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--password-stdin"),
        "{}",
        stderr(&out)
    );
    // Unknown role.
    let out = run(
        d,
        &["user", "add", "carol", "--role", "root", "--password-stdin"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("admin"), "{}", stderr(&out));
}

/// kill -9 under load, three times: every answer the clients got has its record (answers wait for their commit),
/// the chain verifies after each kill, and verify lists the runs that did not stop cleanly.
#[test]
fn kill_9_under_load_loses_no_answered_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A key with room for the load (the demo key allows 10 requests a second).
    let out = run(
        d,
        &[
            "key",
            "create",
            "--name",
            "load",
            "--owner",
            "test",
            "--model",
            "demo-fraud",
            "--rate",
            "1000",
            "--burst",
            "1000",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["secret"].as_str().unwrap().to_string();
    let mut answered = 0usize;
    for trial in 0..3 {
        let (mut child, addr, _, _) = spawn_serve(d);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (addr, key, stop) = (addr.clone(), key.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut ok = 0usize;
                    // Bounded: at most 5,000 requests per client, and only until the kill.
                    for _ in 0..5_000 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        match try_http(&addr, "/v1/models/demo-fraud/predict", &key, ROW) {
                            Some(200) => ok += 1,
                            Some(_) => {}
                            None => break,
                        }
                    }
                    ok
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700 + 300 * trial));
        let killed = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let _ = child.wait();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let got: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
        assert!(got > 0, "no request was answered before the kill");
        eprintln!("trial {trial}: {got} answers before kill -9");
        answered += got;

        let out = run(
            d,
            &["audit-log", "show", "--format", "json", "--limit", "10000"],
        );
        let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let recorded = records
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["route"] == "/v1/models/{name}/predict" && r["status"] == 200)
            .count();
        assert!(
            recorded >= answered,
            "trial {trial}: {answered} answers, {recorded} records"
        );
        let out = run(d, &["audit-log", "verify"]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert!(
            stdout(&out).contains("runs without a clean stop"),
            "{}",
            stdout(&out)
        );
    }
}

/// One POST; the status, or None when the connection failed (the server is gone).
fn try_http(addr: &str, path: &str, key: &str, body: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.get(9..12)?.parse().ok()
}

#[test]
fn keys_beyond_the_ceilings_need_unbounded_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wide = [
        "key",
        "create",
        "--name",
        "wide",
        "--owner",
        "ops",
        "--model",
        "*",
        "--rate",
        "1e12",
        "--expires-days",
        "0",
    ];
    let out = run(d, &wide);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for what in [
        "beyond the ceilings",
        "rate",
        "never expires",
        "every model",
        "--unbounded",
    ] {
        assert!(err.contains(what), "{what}: {err}");
    }
    let mut asked = wide.to_vec();
    asked.push("--unbounded");
    let out = run(d, &asked);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(d, &["audit-log", "show", "--format", "json"]);
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["decision"] == "key.create"
                && r["detail"].as_str().unwrap().contains("UNBOUNDED")),
        "{records}"
    );
}
