//! Fuzz the lenient zip and tar readers: listing members and streaming each member's content must never
//! panic, allocate without bound or loop forever, whatever the bytes.
#![no_main]

use std::io::Cursor;

use aegis_formats::tar::TarArchive;
use aegis_formats::zip::ZipArchive;
use aegis_formats::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let len = data.len() as u64;
    let mut blob = Cursor::new(data);
    if let Ok(archive) = ZipArchive::open(&mut blob, len, &limits) {
        for entry in &archive.entries {
            if let Ok(reader) = entry.reader(&mut blob, 1 << 20) {
                let _ = reader.finish();
            }
        }
    }
    let _ = TarArchive::open(&mut blob, len, &limits);
});
