//! Files written by the real libraries (testdata/scan/sklearn and testdata/scan/libraries, see their READMEs for
//! the generators and versions): none of them may raise a finding at high or above.

use std::path::Path;

use aegis_core::Severity;
use aegis_scan::Scanner;

#[test]
fn real_scikit_learn_joblib_and_numpy_files_pass() {
    no_high_findings("sklearn", 29);
}

/// torch (state dicts, whole modules, legacy and TorchScript archives), transformers, XGBoost, LightGBM,
/// pandas (with pyarrow strings, every compression), Keras 3 and legacy HDF5, ONNX, safetensors, NumPy.
#[test]
fn real_files_of_other_libraries_pass() {
    no_high_findings("libraries", 90);
}

fn no_high_findings(subdir: &str, at_least: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/scan")
        .join(subdir);
    let scanner = Scanner::default();
    let mut scanned = 0;
    let mut alarms = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("testdata/scan directory") {
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
    assert!(
        scanned >= at_least,
        "only {scanned} files in {}",
        dir.display()
    );
    assert!(
        alarms.is_empty(),
        "{} false alarm(s):\n  {}",
        alarms.len(),
        alarms.join("\n  ")
    );
}
