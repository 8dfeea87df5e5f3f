//! The console in a real browser: `aegis serve` (TLS, a fresh data directory), then the walk-through in
//! `tests/browser/console_walkthrough.py` in headless Chromium (Playwright, axe-core): bootstrap the admin,
//! enrol TOTP, sign in, add a model, wait for its scan, open the finding, accept it as a risk, create and
//! revoke an API key, check the audit page verifies, and see an auditor refused; zero Content-Security-Policy
//! and zero WCAG 2 A/AA violations on every page. Once at `/` and once under the base path `/aegis`.
//!
//! `.ci/run` installs Chromium and the Python packages; elsewhere the test says in one line why it skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A pickle whose payload calls `os.system("echo pwned!")` (protocol 2), written as bytes and never loaded:
/// the upload the scan must flag.
const EVIL_PICKLE: &[u8] =
    b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00echo pwned!q\x01\x85q\x02Rq\x03.";

/// The Python with Playwright and axe, and Chromium; `None` (with the reason) when this machine lacks them.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let python = std::env::var_os("AEGIS_BROWSER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/aegis-ci-browser/bin/python"));
    let chromium = std::env::var_os("AEGIS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!("no Chromium at {}", chromium.display()));
    }
    let ok = Command::new(&python)
        .args(["-c", "import playwright, axe_playwright_python"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return Err(format!("no Playwright and axe in {}", python.display()));
    }
    Ok((python, chromium))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `aegis serve` in `dir`; returns the server, its https address and the one-time setup link.
fn serve(dir: &Path, console_path: &str) -> (Server, String, String) {
    std::fs::write(
        dir.join("aegis.toml"),
        format!(
            "[server]\ndata_dir = \"data\"\nlisten = \"127.0.0.1:0\"\nconsole_path = \"{console_path}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["serve", "--config", "aegis.toml"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut addr, mut setup, mut console) = (None, None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("listening on https://").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.split("console: ").nth(1) {
            console = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.contains("setup?code=") {
            setup = Some(line.trim().to_string());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let addr = addr.expect("the listening line");
    let console = console.expect("the banner names the console");
    assert_eq!(console, format!("https://{addr}{console_path}/"));
    (
        Server(child),
        console,
        setup.expect("the one-time setup link"),
    )
}

fn walk_through(console_path: &str, label: &str) {
    let (python, chromium) = match browser() {
        Ok(b) => b,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {why} (.ci/run installs them)");
            return;
        }
        Err(why) => panic!("CI must run the browser suite: {why}"),
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vendor-model.pkl"), EVIL_PICKLE).unwrap();
    let (_server, console, setup) = serve(dir.path(), console_path);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("console-{label}"));
    let _ = std::fs::remove_dir_all(&shots);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser/console_walkthrough.py");
    let out = Command::new(python)
        .arg(script)
        .env("AEGIS_URL", &console)
        .env("AEGIS_SETUP", &setup)
        .env("AEGIS_MODEL", dir.path().join("vendor-model.pkl"))
        .env("AEGIS_SHOTS", &shots)
        .env("AEGIS_CHROMIUM", chromium)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser walk-through failed under {console_path:?}:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("visited 16 pages"), "{stdout}");
    eprintln!("{stdout}screenshots: {}", shots.display());
}

#[test]
fn the_console_walk_through_in_chromium() {
    walk_through("", "root");
}

#[test]
fn the_console_walk_through_under_a_base_path() {
    walk_through("/aegis", "base-path");
}
