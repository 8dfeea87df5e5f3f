//! The operating model as a new user meets it (README, "Your models under watch"): start `aegis serve`, add a
//! model with its data, see its checks run by themselves with their findings (API and CLI), receive a signed
//! webhook for the high ones, accept one as a risk for 30 days, add a signed version and see the finding resolve
//! itself, upload another over the API and see it come back. The real binary, a real server on 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const SECRET: &str = "walkthrough-webhook-secret-0123456789";

fn aegis(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(args)
        // Every command but `vault` and `scan` works on the server's configuration and database.
        .args(if matches!(args[0], "vault" | "scan") {
            &[][..]
        } else {
            &["--config", "aegis.toml"][..]
        })
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    // 1 is "findings at or above --fail-on", as for every report command; 2 would be a failure.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "aegis {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One HTTP/1.1 request with a bearer token; (status, body).
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = token
        .map(|k| format!("authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// A webhook receiver on 127.0.0.1: its URL and the bodies (with their signature header) it got.
/// The (signature header, body) pairs a receiver got.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let (mut len, mut sig) = (0usize, String::new());
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = line.trim_end().strip_prefix("x-aegis-signature:") {
                    sig = v.trim().to_string();
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            seen.lock().unwrap().push((sig, body));
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn posture(addr: &str, token: &str) -> Value {
    let (status, body) = http(addr, "GET", "/admin/posture?asset=fraud", Some(token), b"");
    assert_eq!(status, 200, "{body}");
    body[0].clone()
}

fn check_status(p: &Value, check: &str) -> (String, i64) {
    let c = p["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .unwrap();
    (
        c["status"].as_str().unwrap().to_string(),
        c["version"].as_i64().unwrap(),
    )
}

#[test]
fn a_new_user_puts_a_model_under_watch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/assets");
    let model = std::fs::read(demo.join("demo-fraud.onnx")).unwrap();
    std::fs::write(d.join("model.onnx"), &model).unwrap();
    let rows = std::fs::read_to_string(demo.join("demo-fraud.reference.csv")).unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    std::fs::write(
        d.join("train.csv"),
        format!("{}\n{}\n", lines[0], lines[1..1001].join("\n")),
    )
    .unwrap();
    std::fs::write(
        d.join("test.csv"),
        format!("{}\n{}\n", lines[0], lines[1001..].join("\n")),
    )
    .unwrap();

    // The company signs its models with a release key: an unsigned model is then a high finding.
    aegis(d, &["vault", "keygen", "--sign", "-o", "release.key"], None);
    std::fs::write(
        d.join("aegis.toml"),
        "[server]\ndata_dir = \"data\"\nplaintext = true\nlisten = \"127.0.0.1:0\"\n\n[checks]\ntrusted_keys = [\"release.key.pub\"]\nencrypt_objects = true\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::set_permissions(
            d.join("data"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
    }

    // An operator for the API, a webhook for the security team.
    aegis(
        d,
        &[
            "user",
            "add",
            "olga",
            "--role",
            "operator",
            "--password-stdin",
        ],
        Some(b"operator password 1234\n"),
    );
    let (hook, hooks) = receiver();
    aegis(
        d,
        &[
            "notify",
            "add",
            "security",
            "--webhook",
            &hook,
            "--secret-stdin",
        ],
        Some(SECRET.as_bytes()),
    );

    // `aegis serve`.
    let mut server = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["serve", "--config", "aegis.toml"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let (mut addr, mut demo_key) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(k) = line.split_whitespace().find(|w| w.starts_with("aeg_")) {
            demo_key = Some(k.trim_matches('\'').to_string());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let addr = addr.expect("listening line");
    let (status, login) = http(
        &addr,
        "POST",
        "/admin/login",
        None,
        br#"{"username":"olga","password":"operator password 1234"}"#,
    );
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap().to_string();

    // The model the gateway serves is an asset already.
    let (_, assets) = http(&addr, "GET", "/admin/assets", Some(&token), b"");
    assert!(
        assets
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "demo-fraud"),
        "{assets}"
    );

    // The served demo model is unsigned too: once its checks ran, answers carry the serving policy's warning.
    let demo_key = demo_key.expect("demo key at first start");
    wait_until("the findings header on demo-fraud answers", 60, || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        let row = r#"{"rows":[{"amount":24,"hour":13,"merchant_risk":0.1,"card_age_days":400,"foreign":0,"n_tx_24h":1}]}"#;
        write!(
            stream,
            "POST /v1/models/demo-fraud/predict HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {demo_key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{row}",
            row.len()
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        text.to_ascii_lowercase()
            .contains("x-aegis-findings: 1 open finding(s), worst high")
            .then_some(())
    });

    // Add the model; the server's worker runs its checks by themselves.
    aegis(
        d,
        &[
            "model",
            "add",
            "fraud",
            "model.onnx",
            "--train",
            "train.csv",
            "--test",
            "test.csv",
            "--label",
            "label",
            "--no-wait",
        ],
        None,
    );
    let started = Instant::now();
    let p = wait_until("the four model checks", 60, || {
        let p = posture(&addr, &token);
        ["scan", "signature", "robustness", "privacy"]
            .iter()
            .all(|c| check_status(&p, c).0 == "done")
            .then_some(p)
    });
    eprintln!(
        "checks done {} ms after `model add`",
        started.elapsed().as_millis()
    );
    assert_eq!(p["signature"], "unsigned");
    assert_eq!(p["verdict"], "attention");

    // The high finding: the model is unsigned while a trust policy requires signatures.
    let (_, page) = http(
        &addr,
        "GET",
        "/admin/findings?asset=fraud&severity=high",
        Some(&token),
        b"",
    );
    let unsigned = page["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["finding"]["rule"] == "AEG-VAULT-001")
        .unwrap_or_else(|| panic!("{page}"))
        .clone();
    let fp = unsigned["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(unsigned["finding"]["severity"], "high");

    // One signed webhook names it.
    let (sig, body) = wait_until("the webhook", 30, || {
        hooks
            .lock()
            .unwrap()
            .iter()
            .find(|(_, b)| String::from_utf8_lossy(b).contains(&fp))
            .cloned()
    });
    assert_eq!(sig, aegis_store::notify::sign(SECRET, &body));

    // The CLI sees the same.
    let out = aegis(
        d,
        &["findings", "list", "--asset", "fraud", "--format", "json"],
        None,
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["fingerprint"] == fp.as_str()));

    // Accept it as a risk for 30 days: off the open list, recorded in the audit chain.
    aegis(
        d,
        &[
            "findings",
            "triage",
            &fp,
            "--accept-days",
            "30",
            "--comment",
            "signing pipeline lands next sprint",
        ],
        None,
    );
    let (_, open) = http(
        &addr,
        "GET",
        "/admin/findings?asset=fraud",
        Some(&token),
        b"",
    );
    assert!(
        open["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["fingerprint"] != fp.as_str()),
        "{open}"
    );
    let (_, accepted) = http(
        &addr,
        "GET",
        "/admin/findings?asset=fraud&state=accepted",
        Some(&token),
        b"",
    );
    assert_eq!(accepted["findings"][0]["fingerprint"], fp.as_str());
    let out = aegis(d, &["audit-log", "show", "--format", "json"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("finding.triage"));

    // Version 2, signed with the release key: the unsigned finding resolves itself.
    let mut v2 = model.clone();
    v2.extend_from_slice(b"\x32\x02v2"); // ModelProto.doc_string: the same graph, other bytes
    std::fs::write(d.join("model-v2.onnx"), &v2).unwrap();
    aegis(
        d,
        &["vault", "sign", "model-v2.onnx", "--key", "release.key"],
        None,
    );
    aegis(
        d,
        &["asset", "add", "fraud", "model-v2.onnx", "--no-wait"],
        None,
    );
    wait_until("the finding to resolve", 60, || {
        let (_, f) = http(
            &addr,
            "GET",
            &format!("/admin/findings/{fp}"),
            Some(&token),
            b"",
        );
        (f["finding"]["state"] == "resolved").then_some(())
    });
    let p = wait_until("the signature check of v2", 60, || {
        let p = posture(&addr, &token);
        (check_status(&p, "signature") == ("done".into(), 2)).then_some(p)
    });
    assert_eq!(p["signature"], "verified");

    // Version 3 uploaded over the API, unsigned: the finding comes back, reopened.
    let mut v3 = model.clone();
    v3.extend_from_slice(b"\x32\x02v3");
    let (status, up) = http(
        &addr,
        "PUT",
        "/admin/assets/fraud/versions?filename=model.onnx",
        Some(&token),
        &v3,
    );
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["version"]["seq"], 3);
    wait_until("the finding to reopen", 60, || {
        let (_, f) = http(
            &addr,
            "GET",
            &format!("/admin/findings/{fp}"),
            Some(&token),
            b"",
        );
        (f["finding"]["state"] == "in_triage").then_some(())
    });
    // An auditor-less operator may not do admin things; an unauthenticated caller sees nothing.
    let (status, _) = http(&addr, "GET", "/admin/findings", None, b"");
    assert_eq!(status, 401);

    // Every stored file is encrypted at rest (the checks above read them decrypted).
    let mut stored = Vec::new();
    let mut stack = vec![d.join("data/objects")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                stored.push(path);
            }
        }
    }
    assert!(stored.len() >= 6, "{stored:?}");
    for path in &stored {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.starts_with(b"age-encryption.org/v1"),
            "{} is not encrypted",
            path.display()
        );
    }

    let out = aegis(d, &["posture", "fraud"], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an open high finding: exit 1 at the default --fail-on high"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fraud (model v3") && text.contains("signature unsigned"),
        "{text}"
    );

    // A report a pipeline wrote is imported for the asset it is about, and refused for another.
    aegis(
        d,
        &["scan", "model.onnx", "--format", "json", "-o", "scan.json"],
        None,
    );
    let out = aegis(
        d,
        &[
            "report",
            "import",
            "scan.json",
            "--asset",
            "fraud",
            "--format",
            "json",
        ],
        None,
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (run["kind"].as_str(), run["cause"].as_str()),
        (Some("scan"), Some("import"))
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args([
            "report",
            "import",
            "scan.json",
            "--asset",
            "fraud-test",
            "--config",
            "aegis.toml",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    // A mistyped data directory is an error, not an empty inventory.
    let wrong = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["findings", "list", "--data-dir", "no-such-dir"])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("no Aegis data in no-such-dir"));
    assert!(!d.join("no-such-dir").exists());

    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(server.id().to_string())
            .status();
    }
    let _ = server.wait();
}
