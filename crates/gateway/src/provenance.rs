//! Provenance of a local model before it is scanned and served: decrypt an age-encrypted model in memory only,
//! and verify its Ed25519 signature (an `aegis vault sign` bundle over the plaintext file) against the model's
//! trusted keys.
//!
//! The plaintext never touches the disk and lives in zeroizing memory until the model is built from it; the
//! identity is read from an owner-only file and zeroized by age when dropped. A model that cannot be decrypted
//! is refused. A model whose signature is missing, made by no trusted key, or over other bytes is refused
//! unless `allow_unverified = true`, an explicit operator override that is reported (and so audited) with its
//! reason. Nothing secret reaches an error or event text: paths, key hints and digests only.

use std::path::{Path, PathBuf};

use aegis_vault::crypt::{self, DecryptWith};
use aegis_vault::keys::Identities;
use aegis_vault::{signature, signing_key};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::ModelConfig;

/// What was established about a model's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// The file was age-encrypted and decrypted in memory.
    pub encrypted: bool,
    /// Hint (SHA-256 of the public key PEM) of the trusted key whose signature verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Why the model is served unverified (`allow_unverified = true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unverified: Option<String>,
    /// The plaintext matched the configured `sha256` pin.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

impl Provenance {
    /// One line for the load event.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.encrypted {
            parts.push("decrypted in memory".to_string());
        }
        match (&self.signed_by, &self.unverified) {
            (Some(hint), _) => parts.push(format!("signature verified (key {})", short(hint))),
            (None, Some(why)) => parts.push(format!("UNVERIFIED ({why})")),
            (None, None) if self.encrypted => parts.push(
                "origin not verified (no trusted_keys: anyone can encrypt to a public recipient)"
                    .into(),
            ),
            (None, None) => {}
        }
        if self.pinned {
            parts.push("SHA-256 pinned".into());
        }
        parts.join(", ")
    }
}

fn short(hint: &str) -> &str {
    hint.get(..16).unwrap_or(hint)
}

/// The model's plaintext bytes (at most `max_bytes`) and what is known of them; `Err` is why it is refused.
pub(crate) fn read_model(
    config: &ModelConfig,
    max_bytes: u64,
) -> Result<(Zeroizing<Vec<u8>>, Provenance), String> {
    let mut provenance = Provenance::default();
    let bytes = match &config.identity {
        Some(identity) => {
            let ids = Identities::read_file(identity).map_err(|e| e.to_string())?;
            provenance.encrypted = true;
            crypt::decrypt_to_memory(&DecryptWith::Identities(ids), &config.path, max_bytes)
                .map_err(|e| format!("cannot decrypt the model: {e}"))?
        }
        None if is_age_file(&config.path) => {
            return Err(format!(
            "{} is age-encrypted; set identity = \"...\" to an identity file that can decrypt it",
            config.path.display()
        ))
        }
        None => Zeroizing::new(read_plain(&config.path, max_bytes)?),
    };
    if let Some(pin) = &config.sha256 {
        let digest = hex::encode(sha256(&bytes));
        if !digest.eq_ignore_ascii_case(pin) {
            return Err(format!(
                "the model's SHA-256 is {digest}, not the pinned sha256 = \"{pin}\" (another release, or a \
                 rollback to an older one); the model is not served"
            ));
        }
        provenance.pinned = true;
    }
    if config.trusted_keys.is_empty() {
        return Ok((bytes, provenance));
    }
    match verify(config, &bytes) {
        Ok(hint) => provenance.signed_by = Some(hint),
        Err(why) if config.allow_unverified => provenance.unverified = Some(why),
        Err(why) => {
            return Err(format!(
                "{why}; the model is not served (set allow_unverified = true to serve it anyway, which is \
                 audited)"
            ))
        }
    }
    Ok((bytes, provenance))
}

/// Where the signature is: configured, or the plaintext file's name plus `.sig`.
pub fn signature_path(config: &ModelConfig) -> PathBuf {
    if let Some(s) = &config.signature {
        return s.clone();
    }
    signature::default_signature_path(&plain_path(config))
}

/// The model file's plaintext name: the path without `.age`.
fn plain_path(config: &ModelConfig) -> PathBuf {
    if is_age_file(&config.path) {
        config.path.with_extension("")
    } else {
        config.path.clone()
    }
}

/// A text file of at most `max` bytes (read through a bound, not checked then read).
fn read_bounded(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(text)
}

/// Verify the signature over `bytes`; the hint of the key that signed, or why not.
fn verify(config: &ModelConfig, bytes: &[u8]) -> Result<String, String> {
    let sig = signature_path(config);
    let keys = config
        .trusted_keys
        .iter()
        .map(|k| signing_key::read_verifying_key(k).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let text = read_bounded(&sig, signature::MAX_BUNDLE_BYTES)
        .map_err(|e| format!("no readable signature at {}: {e}", sig.display()))?;
    let (manifest, hint) =
        signature::verify_bundle_signer(&text, &sig, &keys).map_err(|e| e.to_string())?;
    let [resource] = manifest.resources.as_slice() else {
        return Err(format!(
            "{} signs {} files; a model's signature must cover its one file (aegis vault sign MODEL_FILE)",
            sig.display(),
            manifest.resources.len()
        ));
    };
    // The signature must be for this model, not for another file signed by the same key.
    let name = plain_path(config)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if manifest.model_name != name {
        return Err(format!(
            "{} signs a model named {:?}, not {name:?}",
            sig.display(),
            manifest.model_name
        ));
    }
    let digest = sha256(bytes);
    if resource.digest != digest {
        return Err(format!(
            "the model's SHA-256 {} is not the signed {} ({})",
            hex::encode(digest),
            hex::encode(resource.digest),
            sig.display()
        ));
    }
    Ok(hint)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn is_age_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "age")
}

fn read_plain(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max_bytes + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!(
            "{} is larger than the {max_bytes}-byte limit",
            path.display()
        ));
    }
    Ok(bytes)
}
