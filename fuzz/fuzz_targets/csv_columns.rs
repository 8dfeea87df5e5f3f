//! Fuzz the streaming CSV splitter `aegis drift` reads with (`aegis_data::split_row` and the field decoders):
//! any bytes must split into fields, unescape and parse as numbers or fail cleanly, never panic. The first byte
//! picks the delimiter.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let delimiter = [b',', b';', b'\t', b'|'][usize::from(flags & 3)];
    let mut fields = Vec::new();
    for row in text.split(|&b| b == b'\n') {
        fields.clear();
        aegis_data::split_row(row, delimiter, &mut fields);
        for field in &fields {
            let _ = field.unescaped();
            let _ = field.text();
            let _ = field.number();
        }
    }
});
