//! Fuzz what the gateway parses from a client before any model runs: predict bodies (rows, instances,
//! columns), V2 inference bodies, OpenAI request bodies and upstream paths (whose canonical form must be stable
//! and hold no escape). Any bytes must give a value or an `InputError`,
//! never a panic. The first byte picks the parser; the bundled demo model supplies the schema.
#![no_main]

use std::sync::{Arc, OnceLock};

use aegis_gateway::models::{self, LocalModel, LocalModels};
use libfuzzer_sys::fuzz_target;

fn demo() -> &'static Arc<LocalModel> {
    static DEMO: OnceLock<Arc<LocalModel>> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = std::env::temp_dir().join("aegis-fuzz-gateway");
        let (models, _) = LocalModels::with_demo(&dir).expect("the bundled demo model loads");
        models.get(models::DEMO_NAME).expect("demo model present")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let _ = models::parse_predict(demo(), body);
        }
        1 => {
            let _ = models::parse_v2(demo(), body);
        }
        2 => {
            let _ = aegis_gateway::openai_model(body);
        }
        _ => {
            // An upstream path: the canonical form, when accepted, must be stable and hold no escape.
            if let Ok(text) = std::str::from_utf8(body) {
                if let Ok(path) = aegis_gateway::canonical_path(text) {
                    assert_eq!(aegis_gateway::canonical_path(&path).as_deref(), Ok(path.as_str()));
                    assert!(!path.split('/').any(|s| s == "." || s == ".."));
                    assert!(!path.contains('?') && !path.contains('#') && !path.contains('\\'));
                }
            }
        }
    }
});
