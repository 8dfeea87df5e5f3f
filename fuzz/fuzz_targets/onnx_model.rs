//! Fuzz model loading for assessment: ONNX bytes decoded once by the bounded decoder, then prepared for the
//! gradient evaluator (operator checks, probing) and for tract, and compared on probe rows. Errors are fine; a
//! panic that escapes, an overflow or an unbounded allocation is a bug.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.onnx");
    if let Ok(model) = aegis_ml::onnx::OnnxModel::from_bytes(data, path) {
        use aegis_ml::Model;
        let d = model.n_features().min(1 << 12);
        let _ = model.predict_proba(&vec![0.5; d], 1);
    }
    let _ = aegis_ml::load_onnx_bytes(data, path);
});
