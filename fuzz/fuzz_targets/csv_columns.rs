//! Fuzz the one CSV tokenizer: the row splitter and field decoders (`aegis_data::split_row`), and the chunked
//! reader (`aegis_data::CsvChunks`: BOM, sniffing, the quote-aware row scanner, header checks, rows across
//! chunk boundaries). Any bytes must split, unescape and parse as numbers or fail cleanly, never panic. The
//! first byte picks the delimiter and whether there is a header.
#![no_main]

use std::io::Cursor;
use std::path::PathBuf;

use aegis_data::{ChunkOptions, CsvChunks};
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
            let _ = field.strict_text();
            let _ = field.number();
        }
    }
    let opts = ChunkOptions {
        delimiter: (flags & 4 == 0).then_some(delimiter),
        header: flags & 8 == 0,
        max_bytes: 1 << 20,
        chunk_bytes: 1024,
    };
    let reader = Box::new(Cursor::new(text.to_vec()));
    if let Ok(mut chunks) = CsvChunks::from_reader(PathBuf::from("fuzz.csv"), reader, &opts) {
        while let Ok(Some(chunk)) = chunks.next_chunk() {
            let mut row = Vec::new();
            for i in 0..chunk.len() {
                if chunk.fields(i, &mut row).is_ok() {
                    for field in &row {
                        let _ = field.text();
                        let _ = field.number();
                    }
                }
            }
        }
    }
});
