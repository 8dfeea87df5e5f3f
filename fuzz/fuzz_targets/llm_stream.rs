//! Fuzz the LLM guard's stream filter (server-sent events from an untrusted upstream): any bytes, fed in pieces
//! whose size the first byte picks, must give output or nothing, never a panic, and never more held back than
//! the filter's bound. The policy looks for a canary and every kind of secret, redacting.
#![no_main]

use aegis_guard::canary::Canary;
use aegis_guard::openai::{AnswerPolicy, StreamFilter};
use aegis_guard::pii::{Action, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&size, bytes)) = data.split_first() else {
        return;
    };
    let mut filter = StreamFilter::new(AnswerPolicy {
        canary: Some(Canary::from_random([7; 10])),
        cut_on_canary: size & 1 == 0,
        pii: Kind::ALL.to_vec(),
        pii_action: if size & 2 == 0 { Action::Redact } else { Action::Block },
    });
    for piece in bytes.chunks(usize::from(size).max(1)) {
        let _ = filter.push(piece);
    }
    let _ = filter.finish();
    let _ = filter.take_events();
});
