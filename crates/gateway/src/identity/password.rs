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

/// Check a new password for `username`: at least 12 and at most 1024 characters, not one character repeated,
/// and not guessable: zxcvbn (its lists of common and breached passwords, dictionary words, names, keyboard
/// patterns, dates and sequences, and the username itself) must estimate at least 10^8 guesses (its score 3),
/// which refuses `123456789012` and `password2024` alike.
///
/// The error ([`Error::Invalid`]) says which rule failed, with zxcvbn's advice, and never contains the password.
pub fn check_password_policy(password: &str, username: &str) -> Result<()> {
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
    // zxcvbn's work grows with the length; the strength of a long password is settled by its first 100 characters.
    let head: String = password.chars().take(100).collect();
    let estimate = zxcvbn::zxcvbn(&head, &[username, "aegis"]);
    if estimate.score() < zxcvbn::Score::Three {
        let mut advice = Vec::new();
        if let Some(feedback) = estimate.feedback() {
            if let Some(warning) = feedback.warning() {
                advice.push(warning.to_string());
            }
            advice.extend(feedback.suggestions().iter().map(ToString::to_string));
        }
        if advice.is_empty() {
            advice.push("Use several unrelated words, or a password manager's.".into());
        }
        return Err(Error::Invalid(format!(
            "password is too easy to guess: {}",
            advice.join(" ")
        )));
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

    fn policy(password: &str) -> Result<()> {
        check_password_policy(password, "ann")
    }

    #[test]
    fn policy_refuses_short_long_and_repeated_passwords() {
        assert!(policy("correct horse battery").is_ok());
        assert!(policy("k7#pQ2!vX9mz").is_ok());
        let short = policy("k7#pQ2!vX9m").unwrap_err();
        assert!(short.to_string().contains("at least 12"), "{short}");
        let long = policy(&"ab".repeat(513)).unwrap_err();
        assert!(long.to_string().contains("at most 1024"), "{long}");
        assert!(
            policy(&"ab".repeat(512)).is_err(),
            "a repeated pattern is guessable"
        );
        let same = policy("aaaaaaaaaaaaaaaa").unwrap_err();
        assert!(same.to_string().contains("repeated"), "{same}");
        assert!(policy("").is_err());
        // Characters, not bytes: 11 two-byte characters are too short.
        assert!(policy("éàéàéàéàéàé")
            .unwrap_err()
            .to_string()
            .contains("at least 12"));
    }

    #[test]
    fn guessable_passwords_are_refused_with_advice_and_strong_ones_accepted() {
        for weak in [
            "123456789012",
            "password2024",
            "qwertyuiop12",
            "letmein123456",
            "ilovemyfamily1",
            "abcdefghijkl",
            "ann-ann-ann-ann",
            "aegis-aegis-2026",
        ] {
            let e = policy(weak).unwrap_err().to_string();
            assert!(e.contains("too easy to guess"), "{weak}: {e}");
            assert!(!e.contains(weak), "the error repeats the password: {e}");
        }
        for strong in [
            "correct horse battery staple",
            "a long enough password",
            "Tr0ub4dor&3xyz",
            "sdf8SD*f7sd#k",
            "vivid-otter-mango-quartz",
        ] {
            assert!(policy(strong).is_ok(), "{strong}");
        }
        // A very long password is judged on its first 100 characters, quickly.
        assert!(policy(&"vivid-otter-mango-quartz ".repeat(40)).is_ok());
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
