//! Fuzz age decryption as the vault runs it (`aegis_vault::crypt::decrypt_stream`: armor detection, the bounded
//! header reader, age's header parser, STREAM chunks) with a fixed identity: any bytes must decrypt or fail
//! with an error, never panic, and never buffer more than the header bound.
#![no_main]

use std::sync::OnceLock;

use aegis_vault::crypt::{decrypt_stream, DecryptWith};
use aegis_vault::keys::Identities;
use libfuzzer_sys::fuzz_target;

/// A fixed identity (a test key, not a secret): seeds are encrypted to its recipient.
const IDENTITY: &str = "AGE-SECRET-KEY-1YH32QMC33S3XFVCFLC0WZLR09MNU8E2K2A8WDK4W6J6TYGQY230QQZ0K9R";

fn with() -> &'static DecryptWith {
    static WITH: OnceLock<DecryptWith> = OnceLock::new();
    WITH.get_or_init(|| DecryptWith::Identities(Identities::from_secret(IDENTITY).expect("identity")))
}

fuzz_target!(|data: &[u8]| {
    let _ = decrypt_stream(with(), data, std::io::sink());
});
