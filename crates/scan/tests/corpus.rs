//! The labelled corpus through the whole scanner: every malicious sample must raise its expected rule at high
//! or above, every benign twin must raise nothing at high or above. Prints a confusion table on failure.

use aegis_core::Severity;
use aegis_scan::Scanner;
use aegis_test_support::{corpus, Case};

fn high_rules(scanner: &Scanner, case: &Case) -> Vec<String> {
    scanner
        .scan_bytes(&case.file_name, &case.bytes)
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::High)
        .map(|f| format!("{} {} @ {}: {}", f.rule, f.severity, f.location, f.message))
        .collect()
}

#[test]
fn every_malicious_case_is_caught_and_no_benign_case_is_flagged() {
    let scanner = Scanner::default();
    let cases = corpus::all();
    assert!(cases.len() >= 40, "corpus too small: {}", cases.len());
    let mut missed = Vec::new();
    let mut false_alarms = Vec::new();
    let (mut malicious, mut benign) = (0, 0);
    for case in &cases {
        let found = high_rules(&scanner, case);
        if case.malicious {
            malicious += 1;
            let rule = case.expect_rule.unwrap_or("AEG-SCAN-");
            if !found.iter().any(|f| f.starts_with(rule)) {
                missed.push(format!(
                    "{} ({}): expected {rule}, got {found:?}",
                    case.name, case.technique
                ));
            }
        } else {
            benign += 1;
            if !found.is_empty() {
                false_alarms.push(format!("{} ({}): {found:?}", case.name, case.technique));
            }
        }
    }
    assert!(
        missed.is_empty() && false_alarms.is_empty(),
        "{malicious} malicious, {benign} benign\nmissed ({}):\n  {}\nfalse alarms ({}):\n  {}",
        missed.len(),
        missed.join("\n  "),
        false_alarms.len(),
        false_alarms.join("\n  ")
    );
}

#[test]
fn every_malicious_case_has_a_benign_twin_in_its_format() {
    let cases = corpus::all();
    for case in cases.iter().filter(|c| c.malicious) {
        let family = case.name.split('/').next().unwrap_or_default();
        assert!(
            cases
                .iter()
                .any(|c| !c.malicious && c.name.split('/').next() == Some(family)),
            "no benign case in family `{family}` for {}",
            case.name
        );
    }
}

#[test]
fn case_names_are_unique() {
    let cases = corpus::all();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate case names");
}

#[test]
fn a_directory_scan_survives_crafted_files_and_reports_each() {
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus::all();
    for (i, case) in cases.iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("{i:03}-{}", case.file_name)),
            &case.bytes,
        )
        .unwrap();
    }
    // Files that are nothing at all, or empty, must not disturb the run.
    std::fs::write(dir.path().join("empty.pt"), b"").unwrap();
    std::fs::write(dir.path().join("garbage.bin"), [0xffu8; 300]).unwrap();
    let outcome = Scanner::default().scan_paths(&[dir.path().to_path_buf()], &());
    assert_eq!(outcome.stats.files as usize, cases.len() + 2);
    for (i, case) in cases.iter().enumerate().filter(|(_, c)| c.malicious) {
        let prefix = format!("{i:03}-");
        assert!(
            outcome
                .findings
                .iter()
                .any(|f| { f.severity >= Severity::High && f.location.root().contains(&prefix) }),
            "{} not reported in the directory scan",
            case.name
        );
    }
}
