//! Files written by the real libraries (testdata/scan/sklearn, see its README for the generator and versions):
//! none of them may raise a finding at high or above.

use std::path::Path;

use aegis_core::Severity;
use aegis_scan::Scanner;

#[test]
fn real_scikit_learn_joblib_and_numpy_files_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scan/sklearn");
    let scanner = Scanner::default();
    let mut scanned = 0;
    let mut alarms = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("testdata/scan/sklearn") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).expect("readable test file");
        scanned += 1;
        for f in scanner.scan_bytes(&name, &bytes).findings {
            if f.severity >= Severity::High {
                alarms.push(format!("{name}: {} {}: {}", f.rule, f.severity, f.message));
            }
        }
    }
    assert!(scanned >= 29, "only {scanned} files in {}", dir.display());
    assert!(
        alarms.is_empty(),
        "{} false alarm(s):\n  {}",
        alarms.len(),
        alarms.join("\n  ")
    );
}
