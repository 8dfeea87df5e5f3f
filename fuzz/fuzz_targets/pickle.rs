//! Fuzz the pickle VM emulator: any byte stream must be emulated without panicking, recursing without bound,
//! allocating without bound or looping forever; malformed input only ever becomes anomalies.
#![no_main]

use aegis_formats::pickle::emulate;
use aegis_formats::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_kept_constant: 1 << 16,
        max_stack: 4096,
        max_memo: 4096,
        ..Limits::default()
    };
    if let Ok(trace) = emulate(data, &limits) {
        for call in &trace.calls {
            let _ = (call.callee.render(200), call.args.render(200));
        }
    }
    let _ = emulate(data, &Limits::default());
});
