//! Passwords: the policy a new password must meet, argon2id hashing in PHC strings, and verification.
//!
//! Hashing and verifying run on tokio's blocking pool, because argon2 is deliberately slow (tens of
//! milliseconds) and would otherwise stall every request sharing the async worker. Logins for unknown users
//! verify against a dummy hash made with the same parameters, so response time does not reveal which
//! usernames exist.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::util::random_bytes;

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Most characters a password may have (bounds hashing work on hostile input).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Check a new password: at least 12 and at most 1024 characters, not one character repeated.
///
/// The error ([`Error::Invalid`]) says which rule failed and never contains the password.
pub fn check_password_policy(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(Error::Invalid(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(Error::Invalid(format!(
            "password must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    let mut it = password.chars();
    if let Some(first) = it.next() {
        if it.all(|c| c == first) {
            return Err(Error::Invalid(
                "password must not be a single character repeated".into(),
            ));
        }
    }
    Ok(())
}

/// Hash `password` with argon2id (default parameters) and a fresh 16-byte random salt; returns the PHC string.
pub(crate) async fn hash(password: &str) -> Result<String> {
    let salt_bytes = Zeroizing::new(random_bytes(16)?);
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| Error::Internal(format!("password hashing: salt: {e}")))?;
    let password = Zeroizing::new(password.as_bytes().to_vec());
    let _permit = hash_permit().await;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(&password, &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing: {e}")))
    })
    .await
    .map_err(|e| Error::Server(format!("password hashing task: {e}")))?
}

/// At most this many argon2 computations at once (each takes ~19 MiB and tens of milliseconds): a flood of
/// logins queues here instead of exhausting memory and the blocking pool that inference shares.
const MAX_CONCURRENT_HASHES: usize = 4;

/// A permit to run one argon2 computation.
async fn hash_permit() -> Option<tokio::sync::SemaphorePermit<'static>> {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS
        .get_or_init(|| tokio::sync::Semaphore::new(MAX_CONCURRENT_HASHES))
        .acquire()
        .await
        .ok()
}

/// Whether `password` matches the PHC string `phc` (parameters are read from the string).
pub(crate) async fn verify(password: &str, phc: &str) -> Result<bool> {
    let password = Zeroizing::new(password.as_bytes().to_vec());
    let phc = phc.to_string();
    let _permit = hash_permit().await;
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&phc).map_err(|e| {
            Error::Corrupt(format!("stored password hash is not a PHC string: {e}"))
        })?;
        Ok(Argon2::default()
            .verify_password(&password, &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| Error::Server(format!("password verification task: {e}")))?
}

/// Spend the time of one verification against a hash no password matches, for logins of unknown users.
pub(crate) async fn verify_dummy(password: &str) {
    let password = Zeroizing::new(password.as_bytes().to_vec());
    let _permit = hash_permit().await;
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(phc) = dummy_hash() {
            if let Ok(parsed) = PasswordHash::new(phc) {
                let _ = Argon2::default().verify_password(&password, &parsed);
            }
        }
    })
    .await;
}

/// A hash made with the same parameters as real ones, computed once per process.
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let bytes = random_bytes(16).unwrap_or_else(|_| vec![0x5a; 16]);
            let salt = SaltString::encode_b64(&bytes).ok()?;
            let secret = random_bytes(32).unwrap_or_else(|_| b"aegis dummy password".to_vec());
            Argon2::default()
                .hash_password(&secret, &salt)
                .ok()
                .map(|h| h.to_string())
        })
        .as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refuses_short_long_and_repeated_passwords() {
        assert!(check_password_policy("correct horse battery").is_ok());
        assert!(check_password_policy("abcdefghijkl").is_ok());
        let short = check_password_policy("abcdefghijk").unwrap_err();
        assert!(short.to_string().contains("at least 12"), "{short}");
        let long = check_password_policy(&"ab".repeat(513)).unwrap_err();
        assert!(long.to_string().contains("at most 1024"), "{long}");
        assert!(check_password_policy(&"ab".repeat(512)).is_ok());
        let same = check_password_policy("aaaaaaaaaaaaaaaa").unwrap_err();
        assert!(same.to_string().contains("repeated"), "{same}");
        assert!(check_password_policy("").is_err());
        // Characters, not bytes: 12 two-byte characters pass, 11 do not.
        assert!(check_password_policy("éàéàéàéàéàéà").is_ok());
        assert!(check_password_policy("éàéàéàéàéàé").is_err());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").await.unwrap();
        let b = hash("correct horse battery").await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salts differ");
        assert!(verify("correct horse battery", &a).await.unwrap());
        assert!(!verify("correct horse batterY", &a).await.unwrap());
        assert!(verify("x", "not a phc string").await.is_err());
        assert!(dummy_hash().unwrap().starts_with("$argon2id$"));
        verify_dummy("anything").await;
    }
}
