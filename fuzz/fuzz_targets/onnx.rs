//! Fuzz the protobuf model parsers: sniffing, ONNX decoding and inventory, SavedModel / Keras metadata
//! decoding. Any panic, overflow or unbounded allocation is a bug.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = aegis_formats::Limits::default();
    let _ = aegis_formats::onnx::sniff_protobuf(data);
    let bytes = aegis_formats::onnx::read_all(
        "fuzz",
        &mut std::io::Cursor::new(data),
        data.len() as u64,
        limits.max_protobuf,
    );
    if let Ok(bytes) = bytes {
        if let Ok(model) = aegis_formats::onnx::decode_model(bytes.clone(), &limits) {
            let _ = aegis_formats::onnx::inventory(&model, &limits);
        }
        let _ = aegis_formats::savedmodel::decode(bytes, &limits);
    }
});
