//! The `aegis` binary end to end: exit codes, output formats parsed back into types, policy flags, pipes.

mod common;

use common::*;

use std::io::Read;
use std::process::{Command, Stdio};

use aegis_core::{Report, Severity};
use serde::Deserialize;

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("evil.pkl"), EVIL).unwrap();
    std::fs::write(dir.path().join("benign.pkl"), BENIGN).unwrap();
    std::fs::write(dir.path().join("custom.pkl"), CUSTOM).unwrap();
    dir
}

#[test]
fn exit_codes_follow_fail_on() {
    let dir = fixture();
    assert_eq!(
        aegis(&["scan", "benign.pkl"], dir.path()).status.code(),
        Some(0)
    );
    let evil = aegis(&["scan", "evil.pkl"], dir.path());
    assert_eq!(evil.status.code(), Some(1));
    let text = String::from_utf8_lossy(&evil.stdout);
    assert!(
        text.contains("AEG-SCAN-101") && text.contains("os.system"),
        "{text}"
    );
    // Raising the bar above the finding's severity turns it into a pass.
    let custom = aegis(&["scan", "custom.pkl", "--fail-on", "critical"], dir.path());
    assert_eq!(custom.status.code(), Some(0));
    let missing = aegis(&["scan", "missing.pt"], dir.path());
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("error: cannot scan missing.pt"), "{stderr}");
    assert!(stderr.contains("caused by:"), "{stderr}");
    let bad_flag = aegis(&["scan", "x", "--fail-on", "severe"], dir.path());
    assert_eq!(bad_flag.status.code(), Some(2));
}

#[test]
fn json_output_parses_back_into_a_report() {
    let dir = fixture();
    let out = aegis(&["scan", ".", "--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let report: Report = serde_json::from_slice(&out.stdout).expect("stdout is a JSON report");
    assert_eq!(report.command, "scan");
    assert_eq!(report.metrics["files"], 3);
    let rules: Vec<&str> = report.findings.iter().map(|f| f.rule.as_str()).collect();
    assert!(
        rules.contains(&"AEG-SCAN-101") && rules.contains(&"AEG-SCAN-102"),
        "{rules:?}"
    );
    assert_eq!(
        report.findings[0].severity,
        Severity::Critical,
        "sorted highest first"
    );
    // The human summary went to stderr, not into the JSON.
    assert!(String::from_utf8_lossy(&out.stderr).contains("finding(s)"));
}

#[test]
fn jsonl_is_one_object_per_line() {
    let dir = fixture();
    let out = aegis(&["scan", "evil.pkl", "--format", "jsonl"], dir.path());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.last().unwrap()["type"], "summary");
    assert!(lines.iter().any(|l| l["rule"] == "AEG-SCAN-101"));
}

// The subset of SARIF 2.1.0 GitHub code scanning reads; deserialising fails if a required field is missing.
#[derive(Deserialize)]
struct Sarif {
    version: String,
    #[serde(rename = "$schema")]
    schema: String,
    runs: Vec<Run>,
}
#[derive(Deserialize)]
struct Run {
    tool: Tool,
    results: Vec<SarifResult>,
}
#[derive(Deserialize)]
struct Tool {
    driver: Driver,
}
#[derive(Deserialize)]
struct Driver {
    name: String,
    rules: Vec<Rule>,
}
#[derive(Deserialize)]
struct Rule {
    id: String,
    #[serde(rename = "shortDescription")]
    short_description: Text,
    help: Help,
    properties: RuleProperties,
}
#[derive(Deserialize)]
struct Text {
    text: String,
}
#[derive(Deserialize)]
struct Help {
    text: String,
    markdown: String,
}
#[derive(Deserialize)]
struct RuleProperties {
    tags: Vec<String>,
    #[serde(rename = "security-severity")]
    security_severity: String,
}
#[derive(Deserialize)]
struct SarifResult {
    #[serde(rename = "ruleId")]
    rule_id: String,
    #[serde(rename = "ruleIndex")]
    rule_index: usize,
    level: String,
    message: Text,
    locations: Vec<SarifLocation>,
    #[serde(rename = "partialFingerprints")]
    partial_fingerprints: std::collections::BTreeMap<String, String>,
}
#[derive(Deserialize)]
struct SarifLocation {
    #[serde(rename = "physicalLocation")]
    physical: Physical,
}
#[derive(Deserialize)]
struct Physical {
    #[serde(rename = "artifactLocation")]
    artifact: Artifact,
    region: Region,
}
#[derive(Deserialize)]
struct Artifact {
    uri: String,
}
#[derive(Deserialize)]
struct Region {
    #[serde(rename = "startLine")]
    start_line: u64,
}

#[test]
fn sarif_has_what_code_scanning_needs() {
    let dir = fixture();
    let out = aegis(
        &[
            "scan",
            "evil.pkl",
            "custom.pkl",
            "--format",
            "sarif",
            "-o",
            "out.sarif",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "report went to the file");
    let text = std::fs::read_to_string(dir.path().join("out.sarif")).unwrap();
    let sarif: Sarif = serde_json::from_str(&text).expect("valid SARIF subset");
    assert_eq!(sarif.version, "2.1.0");
    assert!(sarif.schema.contains("sarif-2.1.0"));
    let run = &sarif.runs[0];
    assert_eq!(run.tool.driver.name, "aegis");
    assert!(!run.results.is_empty());
    for result in &run.results {
        let rule = &run.tool.driver.rules[result.rule_index];
        assert_eq!(rule.id, result.rule_id);
        assert!(!rule.short_description.text.is_empty() && !rule.help.text.is_empty());
        assert!(rule.help.markdown.contains("How to fix"));
        assert!(rule.properties.tags.contains(&"security".to_owned()));
        assert!(rule.properties.security_severity.parse::<f64>().is_ok());
        assert!(["error", "warning", "note"].contains(&result.level.as_str()));
        assert!(!result.message.text.is_empty());
        let physical = &result.locations[0].physical;
        assert!(physical.artifact.uri.ends_with(".pkl"));
        assert!(physical.region.start_line >= 1);
        assert!(!result.partial_fingerprints.is_empty());
    }
}

#[test]
fn allow_flag_and_policy_file_extend_the_allow_list() {
    let dir = fixture();
    let before = aegis(&["scan", "custom.pkl"], dir.path());
    assert_eq!(before.status.code(), Some(1));
    let flag = aegis(
        &["scan", "custom.pkl", "--allow", "mylab.models.FraudNet"],
        dir.path(),
    );
    assert_eq!(
        flag.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&flag.stdout)
    );
    std::fs::write(
        dir.path().join("aegis.toml"),
        "[scan]\nallow = [\"mylab.*\"]\n",
    )
    .unwrap();
    let policy = aegis(&["scan", "custom.pkl"], dir.path());
    assert_eq!(policy.status.code(), Some(0));
    // The allow-list never excuses a gadget.
    let evil = aegis(
        &["scan", "evil.pkl", "--allow", "mylab.models.FraudNet"],
        dir.path(),
    );
    assert_eq!(evil.status.code(), Some(1));
    std::fs::write(
        dir.path().join("aegis.toml"),
        "[scan]\nallow = [\"not a name\"]\n",
    )
    .unwrap();
    let bad = aegis(&["scan", "custom.pkl"], dir.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid allow entry"));
}

#[test]
fn closed_pipe_does_not_panic() {
    let dir = fixture();
    for i in 0..200 {
        std::fs::write(dir.path().join(format!("evil{i}.pkl")), EVIL).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["scan", ".", "--format", "jsonl"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then drop: the pipe closes
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(matches!(status.code(), Some(0..=2)), "{status:?}");
}

#[test]
fn rules_command_documents_each_rule() {
    let dir = fixture();
    let list = aegis(&["rules"], dir.path());
    assert_eq!(list.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&list.stdout).contains("AEG-SCAN-101"));
    let one = aegis(&["rules", "AEG-SCAN-101"], dir.path());
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(
        text.contains("Why it matters") && text.contains("How to fix") && text.contains("CWE-502")
    );
    assert_eq!(
        aegis(&["rules", "AEG-SCAN-999"], dir.path()).status.code(),
        Some(2)
    );
    let json = aegis(&["rules", "--format", "json"], dir.path());
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&json.stdout).unwrap();
    let ids: Vec<&str> = docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| [
        "AEG-SCAN-",
        "AEG-ROB-",
        "AEG-AUD-",
        "AEG-SCH-",
        "AEG-DRIFT-",
        "AEG-PRIV-",
        "AEG-EXT-",
        "AEG-VAULT-",
        "AEG-LLM-",
        "AEG-GW-"
    ]
    .iter()
    .any(|p| id.starts_with(p))));
    for id in [
        "AEG-ROB-001",
        "AEG-SCAN-101",
        "AEG-AUD-040",
        "AEG-SCH-001",
        "AEG-VAULT-001",
    ] {
        assert!(ids.contains(&id), "{id} missing from the catalogue");
    }
    let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "rule ids are unique");
}

/// A standard MLflow model folder and the text files found next to models: nothing at high or above, while a
/// protocol-0 pickle saved as text next to them is still caught.
#[test]
fn ordinary_text_next_to_a_model_is_not_read_as_a_pickle() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let files: &[(&str, &str)] = &[
        ("MLmodel", "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"),
        ("conda.yaml", "channels:\n- conda-forge\ndependencies:\n- python=3.11.7\n- pip:\n  - mlflow==3.18.0\n"),
        ("requirements.txt", "mlflow==3.18.0\ncloudpickle==3.1.3\nscikit-learn==1.6.1\n"),
        ("python_env.yaml", "python: 3.11.7\nbuild_dependencies:\n- pip==23.2.1\n"),
        ("train.csv", "customer_id,amount,hour\n1,20.5,3\n2,11.0,4\n"),
        ("model.py", "class FraudModel:\n    def __init__(self):\n        self.x = 1\n"),
        ("imports.py", "import numpy as np\nimport os\n"),
        ("RECORD", "charset_normalizer/__init__.py,sha256=abc,1590\ncharset_normalizer/api.py,sha256=def,2\n"),
        ("meson.build", "project('x', 'c')\nexecutable('x', 'x.c')\n"),
        ("words.txt", "cat\ndog\nelephant\n"),
    ];
    for (name, text) in files {
        std::fs::write(model.join(name), text).unwrap();
    }
    std::fs::write(model.join("model.pkl"), BENIGN).unwrap();
    let clean = aegis(&["scan", "model", "--format", "json"], dir.path());
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    let report: Report = serde_json::from_slice(&clean.stdout).unwrap();
    let high: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::High)
        .collect();
    assert!(high.is_empty(), "{high:?}");
    // The same folder with a text-looking protocol-0 pickle in it fails.
    std::fs::write(model.join("notes.txt"), "cos\nsystem\n(S'echo hi'\ntR.").unwrap();
    let evil = aegis(&["scan", "model"], dir.path());
    assert_eq!(evil.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&evil.stdout).contains("notes.txt"));
}

#[test]
fn exclude_flag_policy_and_aegisignore_leave_paths_out_and_an_empty_run_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("project/tests")).unwrap();
    std::fs::create_dir_all(root.join("project/sub")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("project/tests/evil.pkl"), EVIL).unwrap();
    std::fs::write(root.join("project/sub/evil.pkl"), EVIL).unwrap();
    std::fs::write(root.join("project/benign.pkl"), BENIGN).unwrap();
    let scan = |args: &[&str]| aegis(args, root);
    let criticals = |out: &std::process::Output| {
        let report: Report = serde_json::from_slice(&out.stdout).unwrap();
        report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Critical)
            .count()
    };
    // Both payloads are found by default.
    assert_eq!(
        criticals(&scan(&["scan", "project", "--format", "json"])),
        2
    );
    // An .aegisignore shipped inside the scanned tree does not hide its payload: it is reported.
    std::fs::write(root.join("project/sub/.aegisignore"), "evil.pkl\n").unwrap();
    let planted = scan(&["scan", "project", "--format", "json"]);
    assert_eq!(criticals(&planted), 2);
    assert!(String::from_utf8_lossy(&planted.stdout).contains("AEG-SCAN-004"));
    // --exclude and the working directory's .aegisignore leave paths out; the rest still fails the gate.
    std::fs::write(root.join(".aegisignore"), "project/sub/evil.pkl\n").unwrap();
    let out = scan(&["scan", "project", "--exclude", "tests/", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.metrics["excluded"], 2);
    // `!` re-includes; the policy file's `[scan] exclude` works like --exclude.
    std::fs::write(root.join(".aegisignore"), "*.pkl\n!project/sub/evil.pkl\n").unwrap();
    std::fs::write(root.join("aegis.toml"), "[scan]\nexclude = [\"tests/\"]\n").unwrap();
    let policy = scan(&["scan", "project"]);
    assert_eq!(policy.status.code(), Some(1));
    let text = String::from_utf8_lossy(&policy.stdout);
    assert!(
        text.contains("sub/evil.pkl") && !text.contains("tests/evil.pkl"),
        "{text}"
    );
    // A file named on the command line is scanned even when a pattern matches it.
    let named = scan(&["scan", "project/tests/evil.pkl"]);
    assert_eq!(named.status.code(), Some(1));
    std::fs::remove_file(root.join("aegis.toml")).unwrap();
    std::fs::remove_file(root.join(".aegisignore")).unwrap();
    // Nothing to scan is exit 2 with a message, never a pass.
    for (args, says) in [
        (vec!["scan", "empty"], "holds no files"),
        (vec!["scan", "project", "--exclude", "*"], "excluded"),
        (vec!["scan", "nomatch/*.pkl"], "no file matches"),
    ] {
        let out = scan(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("nothing to scan") && err.contains(says),
            "{args:?}: {err}"
        );
    }
}

/// The shared flags are refused by commands that do not honour them: a secret key is never written to a file
/// the user named for an HTML report, and listings write human or json only.
#[test]
fn shared_flags_are_refused_where_they_do_nothing() {
    let dir = fixture();
    let d = dir.path();
    let refused: &[(&[&str], &str)] = &[
        (
            &["vault", "keygen", "--format", "html", "-o", "k.html"],
            "writes human or json",
        ),
        (
            &["vault", "keygen", "-v", "-o", "k.key"],
            "-v/--verbose does nothing",
        ),
        (
            &["vault", "keygen", "--fail-on", "low", "-o", "k.key"],
            "--fail-on does nothing",
        ),
        (&["rules", "--format", "sarif"], "writes human or json"),
        (
            &["schema", "infer", "x.csv", "--format", "json"],
            "--format does nothing",
        ),
    ];
    for (args, says) in refused {
        let out = aegis(args, d);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(
        !d.join("k.html").exists() && !d.join("k.key").exists(),
        "a key was written"
    );
    // Where they are honoured they still work.
    let ok = aegis(&["vault", "keygen", "--format", "json", "-o", "k.key"], d);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let html = aegis(
        &[
            "scan",
            "benign.pkl",
            "--format",
            "html",
            "-v",
            "--fail-on",
            "low",
        ],
        d,
    );
    assert_eq!(html.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&html.stdout).contains("<html"));
}

/// `--help` shows the shared flags only where they do something: a report command lists them all, a listing
/// `--format` and `-o`, and a command that prints nothing but a message none of them.
#[test]
fn help_lists_only_the_shared_flags_a_command_honours() {
    let dir = fixture();
    let help = |args: &[&str]| {
        let out = aegis(args, dir.path());
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shows = |text: &str, flag: &str| text.lines().any(|l| l.trim_start().starts_with(flag));
    let scan = help(&["scan", "--help"]);
    for flag in [
        "--format",
        "-o, --output",
        "--fail-on",
        "-q, --quiet",
        "-v, --verbose",
        "--color",
    ] {
        assert!(shows(&scan, flag), "scan --help lacks {flag}:\n{scan}");
    }
    let list = help(&["model", "list", "--help"]);
    assert!(
        shows(&list, "--format") && shows(&list, "-o, --output"),
        "{list}"
    );
    assert!(
        !shows(&list, "--fail-on") && !shows(&list, "-v, --verbose"),
        "{list}"
    );
    let keygen = help(&["vault", "keygen", "--help"]);
    assert!(
        shows(&keygen, "-o, --output") && !shows(&keygen, "--fail-on"),
        "{keygen}"
    );
    let disable = help(&["user", "disable", "--help"]);
    for flag in ["--format", "-o, --output", "--fail-on", "--color"] {
        assert!(
            !shows(&disable, flag),
            "user disable --help shows {flag}:\n{disable}"
        );
    }
    // -q and -v conflict wherever each is written.
    for args in [
        &["-q", "scan", "benign.pkl", "-v"][..],
        &["scan", "benign.pkl", "-q", "-v"][..],
    ] {
        let out = aegis(args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot be used"), "{err}");
    }
    let serve = help(&["serve", "--help"]);
    assert!(serve.contains("--openapi writes"), "{serve}");
    // A flag written after a subcommand still reaches the command that honours it.
    let json = aegis(&["rules", "--format", "json"], dir.path());
    assert!(serde_json::from_slice::<serde_json::Value>(&json.stdout).is_ok());
}
