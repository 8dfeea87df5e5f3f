//! Fuzz the typed CSV reader (delimiter sniffing, quoting, type inference, timestamps, labels) and the
//! conversion to model input: any bytes must yield a frame (and a table) or an error, never a panic. The first byte picks the options so that the header-less,
//! labelled, forced-type and row-bounded paths are all reached.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let mut opts = aegis_data::ReadOptions {
        header: flags & 1 == 0,
        max_categories: 4,
        ..aegis_data::ReadOptions::default()
    };
    if flags & 2 != 0 {
        // Without a header the first column is `c0`; with one, a column named `y` may exist.
        opts.label = Some(if opts.header { "y" } else { "c0" }.to_owned());
    }
    if flags & 4 != 0 {
        opts.delimiter = Some(b';');
    }
    if flags & 8 != 0 {
        opts.max_rows = Some(usize::from(flags >> 4));
    }
    if flags & 16 != 0 && !opts.header {
        opts.types
            .insert("c1".to_owned(), aegis_core::ColumnKind::Timestamp);
    }
    // The frame, then the one conversion to model input.
    if let Ok(frame) = aegis_data::read_frame_bytes("fuzz.csv", text, &opts) {
        let _ = aegis_data::table_from_frame(&frame, std::path::Path::new("fuzz.csv"));
    }
});
