//! The whole scanner on arbitrary bytes: sniffing, every format module, recursion into members.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scanner = aegis_scan::Scanner::default();
    let _ = scanner.scan_bytes("fuzz.bin", data);
});
