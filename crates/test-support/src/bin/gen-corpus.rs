//! Write the labelled corpus (and optionally large benchmark files) to a directory.
//!
//! ```sh
//! gen-corpus DIR                      # every case once: DIR/{malicious,benign}/<case>/<file>
//! gen-corpus DIR --copies 10          # ten renamed copies of each case (benchmark directory)
//! gen-corpus DIR --torch-zip 1073741824 --numpy-pickle 268435456
//! gen-corpus DIR --hub 50              # 50 realistic checkpoints (500-tensor torch zip, numpy pickle)
//! ```
//! A `manifest.json` lists every file with its label and expected rule.

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let (mut copies, mut torch_zip, mut numpy_pickle, mut hub) = (1usize, 0u64, 0u64, 0usize);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--copies" => copies = value()?.parse()?,
            "--torch-zip" => torch_zip = value()?.parse()?,
            "--numpy-pickle" => numpy_pickle = value()?.parse()?,
            "--hub" => hub = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "usage: gen-corpus DIR [--copies N] [--hub N] [--torch-zip BYTES] [--numpy-pickle BYTES]"
                );
                return Ok(());
            }
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            other => return Err(format!("unexpected argument {other}").into()),
        }
    }
    let dir = dir.ok_or("usage: gen-corpus DIR [--copies N]")?;
    let mut manifest = Vec::new();
    for copy in 0..copies {
        for case in aegis_test_support::corpus::all() {
            let label = if case.malicious {
                "malicious"
            } else {
                "benign"
            };
            let slug = case.name.replace('/', "__");
            let case_dir = if copies == 1 {
                dir.join(label).join(&slug)
            } else {
                dir.join(label).join(format!("{slug}__{copy}"))
            };
            fs::create_dir_all(&case_dir)?;
            let path = case_dir.join(&case.file_name);
            fs::write(&path, &case.bytes)?;
            manifest.push(serde_json::json!({
                "path": relative(&path, &dir),
                "name": case.name,
                "malicious": case.malicious,
                "expect_rule": case.expect_rule,
                "technique": case.technique,
            }));
        }
    }
    for i in 0..hub {
        // A realistic model repository: a multi-layer checkpoint (opcode-heavy data.pkl) and arrays.
        let repo = dir.join("hub").join(format!("model-{i:03}"));
        fs::create_dir_all(&repo)?;
        let mut out = BufWriter::new(fs::File::create(repo.join("pytorch_model.bin"))?);
        aegis_test_support::bench::write_torch_zip_with(&mut out, 500, 8 << 10)?;
        let mut out = BufWriter::new(fs::File::create(repo.join("arrays.pkl"))?);
        aegis_test_support::bench::write_numpy_pickle_with(&mut out, 64, 64 << 10)?;
    }
    if torch_zip > 0 {
        let path = dir.join("large").join("pytorch_model.bin");
        fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
        let mut out = BufWriter::new(fs::File::create(&path)?);
        aegis_test_support::bench::write_torch_zip(&mut out, torch_zip)?;
    }
    if numpy_pickle > 0 {
        let path = dir.join("large").join("arrays.pkl");
        fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
        let mut out = BufWriter::new(fs::File::create(&path)?);
        aegis_test_support::bench::write_numpy_pickle(&mut out, numpy_pickle)?;
    }
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    eprintln!("wrote {} files to {}", manifest.len(), dir.display());
    Ok(())
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}
