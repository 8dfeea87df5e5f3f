//! Fuzz the LLM guard's screening of untrusted text (normalisation views with nested decoding, the rule layer, the
//! allow-list, personal-data detection and redaction, canary search) and the OpenAI request walk: any bytes
//! must give a verdict, never a panic.
#![no_main]

use aegis_guard::pii::{self, Action, Kind};
use aegis_guard::{AllowList, Screener, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let screener = Screener::new(0.5, AllowList::new(&["developer mode enabled".into()], &[]));
    let v = screener.screen(&text, Source::Untrusted);
    assert!((0.0..=1.0).contains(&v.score));
    let spans = pii::find(&text, &Kind::ALL);
    let _ = pii::rewrite(&text, &spans, Action::Mask);
    let _ = aegis_guard::canary::Canary::from_random([3; 10]).found_in(&text);
    if let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = aegis_guard::openai::request_parts(&body);
        let _ = aegis_guard::openai::filter_answer(
            &mut body,
            &aegis_guard::openai::AnswerPolicy {
                canary: None,
                cut_on_canary: true,
                pii: Kind::ALL.to_vec(),
                pii_action: Action::Redact,
            },
        );
    }
});
