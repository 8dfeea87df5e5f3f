//! Fuzz the signature-bundle verifier (`aegis_vault::signature::verify_bundle`): any text must be refused or
//! verified cleanly, never panic or allocate without bound. A fixed trusted key (its PEM text) is used, so the
//! fuzzer also reaches the statement parsing after a hint and base64 decoding it cannot forge a signature for;
//! the seeds include a validly signed bundle for that key (the golden bundle of `crates/vault/tests/signature.rs`).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;

fn trusted() -> &'static [(VerifyingKey, String)] {
    static KEYS: OnceLock<Vec<(VerifyingKey, String)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = SigningKey::from_bytes(&[42u8; 32]).verifying_key();
        let pem = aegis_vault::signing_key::public_pem(&key).expect("pem");
        vec![(key, pem)]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = aegis_vault::signature::verify_bundle(text, Path::new("model.sig"), trusted());
});
