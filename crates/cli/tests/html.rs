//! `--format html` end to end: the `aegis` binary writes one self-contained HTML page to stdout (or `--output`)
//! and keeps the usual exit codes.

mod common;

use common::*;

#[test]
fn scan_of_a_benign_file_prints_an_html_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    std::fs::write(dir.path().join("models/config.json"), br#"{"a": 1}"#).unwrap();
    let out = aegis(&["scan", "models", "--format", "html"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("<!DOCTYPE html>"), "{stdout}");
    assert!(stdout.contains("<title>Aegis report — scan</title>"));
    assert!(stdout.contains("No findings."));
    assert!(stdout.trim_end().ends_with("</html>"));
    assert!(!stdout.contains("<script"));
}

#[test]
fn html_report_of_a_finding_keeps_exit_code_and_escapes() {
    let dir = tempfile::tempdir().unwrap();
    // A file name an attacker chose; `<` and `>` are not allowed in Windows file names, so keep it Unix-only.
    let name = if cfg!(unix) {
        "<img src=x onerror=alert(1)>.pkl"
    } else {
        "evil.pkl"
    };
    std::fs::write(dir.path().join(name), EVIL).unwrap();
    let out = aegis(
        &["scan", ".", "--format", "html", "--output", "report.html"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("AEG-SCAN-101"), "{page}");
    assert!(page.contains("sev-critical"));
    if cfg!(unix) {
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;.pkl"),
            "{page}"
        );
        assert!(!page.contains("<img"));
    }
}
