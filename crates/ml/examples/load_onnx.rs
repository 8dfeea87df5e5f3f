//! Load ONNX files the way every command does and say how each is run: `cargo run -p aegis-ml --example
//! load_onnx -- model.onnx [more.onnx …]`. With `--rows FILE.json` (`{"x": [...], "n": N}`), also print the
//! class probabilities of those rows, one row per line, for comparison with another runtime.

use std::path::PathBuf;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let rows = match args.iter().position(|a| a == "--rows") {
        Some(i) if i + 1 < args.len() => {
            let file = args.remove(i + 1);
            args.remove(i);
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&file).expect("read --rows file"))
                    .expect("--rows file is JSON");
            let x: Vec<f32> = v["x"]
                .as_array()
                .expect("x")
                .iter()
                .map(|n| n.as_f64().unwrap_or(f64::NAN) as f32)
                .collect();
            Some((x, v["n"].as_u64().expect("n") as usize))
        }
        _ => None,
    };
    if args.is_empty() {
        eprintln!("usage: load_onnx MODEL.onnx [MODEL.onnx …] [--rows ROWS.json]");
        std::process::exit(2);
    }
    for path in args.iter().map(PathBuf::from) {
        match aegis_ml::load_onnx(&path) {
            Ok(m) => {
                println!(
                    "{}: {} features, {} classes",
                    m.describe(),
                    m.n_features(),
                    m.n_classes()
                );
                if let Some((x, n)) = &rows {
                    match m.predict_proba(x, *n) {
                        Ok(p) => {
                            for row in p.chunks(m.n_classes()) {
                                println!("  {row:?}");
                            }
                        }
                        Err(e) => println!("  predict: {e}"),
                    }
                }
            }
            Err(e) => println!("{}: {e}", path.display()),
        }
    }
}
