//! Forward-pass speed of the two ONNX engines on the same graphs: tract (the forward engine) and Aegis's own
//! gradient-checked evaluator on candle. Run by `bench/onnx_engines.sh` (release build); prints a Markdown
//! table with the median of repeated runs, in microseconds per call.

use std::path::Path;
use std::time::Instant;

use aegis_ml::native::{Arch, NativeModel};
use aegis_ml::onnx::OnnxModel;
use aegis_ml::tract::TractModel;
use aegis_ml::Model;

fn median_us(model: &dyn Model, x: &[f32], n: usize, reps: usize) -> f64 {
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let p = model.predict_proba(x, n).expect("predict");
            std::hint::black_box(p);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[reps / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    println!("| model | rows per call | tract (µs) | evaluator (µs) | evaluator / tract |");
    println!("|---|---:|---:|---:|---:|");
    for (name, arch, d) in [
        ("MLP 30-64-64-2", Arch::Mlp(vec![64, 64]), 30),
        (
            "CNN 1x28x28, 8 filters",
            "cnn:1x28x28:8:32".parse::<Arch>().expect("arch"),
            784,
        ),
    ] {
        let native = NativeModel::new(arch, d, 2, 1).expect("model");
        let path = dir.path().join("m.onnx");
        aegis_ml::train::Trainable::save_onnx(&native, &path).expect("save");
        let tract = TractModel::load(&path).expect("tract");
        let ours = OnnxModel::load(Path::new(&path)).expect("evaluator");
        for n in [1usize, 256] {
            let x: Vec<f32> = (0..n * d)
                .map(|i| ((i * 7919) % 101) as f32 / 101.0)
                .collect();
            let reps = if n == 1 { 2001 } else { 101 };
            let a = median_us(&tract, &x, n, reps);
            let b = median_us(&ours, &x, n, reps);
            println!("| {name} | {n} | {a:.1} | {b:.1} | {:.2}× |", b / a);
        }
    }
}
