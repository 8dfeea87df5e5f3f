//! Fuzz the GGUF header parser: any bytes must yield a header or an error, never a panic or a huge
//! allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut blob = std::io::Cursor::new(data);
    let _ = aegis_formats::gguf::parse(
        &mut blob,
        data.len() as u64,
        &aegis_formats::Limits::default(),
    );
});
