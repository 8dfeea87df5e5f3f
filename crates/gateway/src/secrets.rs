//! The gateway's secrets key: a 32-byte file kept apart from the database (`secrets.key` in the data directory by
//! default, `server.secrets_file` to put it elsewhere), from which the session MAC key and the key that seals
//! TOTP secrets are derived.
//!
//! Why: the database used to hold the session key and the TOTP secrets in the clear, so anyone with a copy of
//! `aegis.db` (a backup, a PostgreSQL dump, a read-only mount) could mint an admin session. Now the database
//! holds only what is useless without the file: session ids (a token also needs its MAC), sealed TOTP secrets
//! (ChaCha20-Poly1305, the username as associated data, so a sealed secret cannot be moved to another account),
//! argon2 password hashes, SHA-256 of recovery codes, and a check value that tells a wrong key file apart from a
//! corrupt database.
//!
//! Replicas sharing a PostgreSQL database must share the file (the check value refuses one that differs). Losing
//! it signs everyone out and makes TOTP enrolments unreadable: back it up apart from the database.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// The key file's name in the data directory when `server.secrets_file` is not set.
pub const DEFAULT_FILE: &str = "secrets.key";
/// Bytes of key material in the file.
const KEY_BYTES: usize = 32;
/// Prefix of a sealed TOTP secret as stored.
const SEALED_PREFIX: &str = "v1:";

/// Keys derived from the secrets file. Zeroed on drop.
pub struct Secrets {
    session: [u8; KEY_BYTES],
    totp: [u8; KEY_BYTES],
    check: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        self.session.zeroize();
        self.totp.zeroize();
    }
}

/// HMAC-SHA256(`key`, `label`): one HKDF-Expand block, a key per purpose.
fn derive(key: &[u8], label: &str) -> Result<[u8; KEY_BYTES]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| Error::Internal("secrets key length".into()))?;
    mac.update(label.as_bytes());
    let mut out = [0u8; KEY_BYTES];
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

impl Secrets {
    /// Read the key file at `path`, creating it (owner-only, random) when absent; a file others may read is
    /// refused with the `chmod` that fixes it.
    pub fn load_or_create(path: &Path) -> Result<Secrets> {
        let bad = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        if !path.exists() {
            let fresh = Zeroizing::new(crate::util::random_bytes(KEY_BYTES)?);
            let text = Zeroizing::new(format!("{}\n", hex::encode(fresh.as_slice())));
            match aegis_vault::secret_file::write_new(path, text.as_bytes()) {
                Ok(()) => {}
                // Another process created it first: read theirs.
                Err(_) if path.exists() => {}
                Err(e) => return Err(bad(e.to_string())),
            }
        }
        let raw = aegis_vault::secret_file::read(path).map_err(|e| bad(e.to_string()))?;
        let text = std::str::from_utf8(&raw).map_err(|_| bad("not a secrets key file".into()))?;
        let key = Zeroizing::new(
            hex::decode(text.trim())
                .map_err(|_| bad("not a secrets key file (64 hex digits)".into()))?,
        );
        if key.len() != KEY_BYTES {
            return Err(bad("not a secrets key file (64 hex digits)".into()));
        }
        Ok(Secrets {
            session: derive(&key, "aegis/session-mac/v1")?,
            totp: derive(&key, "aegis/totp-seal/v1")?,
            check: hex::encode(derive(&key, "aegis/check/v1")?),
        })
    }

    /// A value that identifies the key file without revealing it (stored in the database to refuse another file).
    pub(crate) fn check_value(&self) -> &str {
        &self.check
    }

    /// Whether `stored` is a sealed secret (not one stored in the clear by an older version).
    pub(crate) fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }

    /// The key sessions are MACed with.
    pub(crate) fn session_key(&self) -> [u8; KEY_BYTES] {
        self.session
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new((&self.totp).into())
    }

    /// Seal `secret` (a TOTP secret) for `username`, as stored: `v1:` and hex of nonce and ciphertext.
    pub(crate) fn seal(&self, username: &str, secret: &[u8]) -> Result<String> {
        let nonce_bytes = crate::util::random_bytes(12)?;
        let nonce = Nonce::from_slice(&nonce_bytes);
        let sealed = self
            .cipher()
            .encrypt(
                nonce,
                Payload {
                    msg: secret,
                    aad: username.as_bytes(),
                },
            )
            .map_err(|_| Error::Internal("sealing a TOTP secret".into()))?;
        let mut out = nonce_bytes;
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", hex::encode(out)))
    }

    /// Open what [`Secrets::seal`] stored for `username`.
    pub(crate) fn open(&self, username: &str, stored: &str) -> Result<Zeroizing<Vec<u8>>> {
        let corrupt = || {
            Error::Corrupt(format!(
                "the TOTP secret of user {username} does not open with this secrets key file (another file, or \
                 an edited database)"
            ))
        };
        let bytes = stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|h| hex::decode(h).ok())
            .filter(|b| b.len() > 12)
            .ok_or_else(corrupt)?;
        let (nonce, sealed) = bytes.split_at(12);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: username.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| corrupt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_private_derived_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secrets.key");
        let a = Secrets::load_or_create(&p).unwrap();
        let b = Secrets::load_or_create(&p).unwrap();
        assert_eq!(a.session, b.session);
        assert_ne!(a.session, a.totp);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = Secrets::load_or_create(&p).unwrap_err().to_string();
            assert!(e.contains("chmod 600") && e.contains("secrets.key"), "{e}");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&p, "not hex\n").unwrap();
        assert!(Secrets::load_or_create(&p)
            .unwrap_err()
            .to_string()
            .contains("64 hex digits"));
    }

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = Secrets::load_or_create(&dir.path().join("a")).unwrap();
        let other = Secrets::load_or_create(&dir.path().join("b")).unwrap();
        let sealed = s.seal("ann", b"0123456789abcdef0123").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains(&hex::encode(b"0123456789abcdef0123")));
        assert_eq!(
            &s.open("ann", &sealed).unwrap()[..],
            b"0123456789abcdef0123"
        );
        assert!(s.open("bob", &sealed).is_err(), "moved to another account");
        assert!(other.open("ann", &sealed).is_err(), "another key file");
        assert!(s.open("ann", "3031").is_err(), "a clear secret");
    }
}
