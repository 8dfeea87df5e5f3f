//! age identities (X25519 secret keys) and recipients (public keys), in the file formats of `age-keygen` and
//! `age -R`, so keys made by either tool work with the other.
//!
//! An identity file is secret: it is created owner-only and never overwritten, and reading refuses a file that
//! others can read (see [`crate::secret_file`]). Errors name the file and the line, and never echo the text of a
//! line, which could be a secret key.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::Error;

/// Prefix of an age X25519 secret key (Bech32, upper case).
pub const SECRET_KEY_PREFIX: &str = "AGE-SECRET-KEY-1";

/// Prefix of an age X25519 recipient (Bech32, lower case).
pub const RECIPIENT_PREFIX: &str = "age1";

/// Largest recipients file read, in bytes.
pub const MAX_RECIPIENTS_FILE_BYTES: u64 = 1024 * 1024;

/// A new X25519 identity: the secret key (`AGE-SECRET-KEY-1…`) and its recipient (`age1…`).
pub fn generate_identity() -> (Zeroizing<String>, String) {
    let identity = age::x25519::Identity::generate();
    let secret = Zeroizing::new(identity.to_string().expose_secret().to_string());
    (secret, identity.to_public().to_string())
}

/// Create the identity file `path` in `age-keygen`'s format (`# created: …`, `# public key: age1…`, the secret
/// key), readable by its owner only; refuses an existing file. Returns the recipient.
pub fn write_identity_file(path: &Path) -> Result<String, Error> {
    let (secret, recipient) = generate_identity();
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let created = aegis_core::format_timestamp(i64::try_from(secs).unwrap_or(i64::MAX));
    let contents = Zeroizing::new(format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        secret.as_str()
    ));
    crate::secret_file::write_new(path, contents.as_bytes())?;
    Ok(recipient)
}

/// One or more X25519 identities (secret keys) that can decrypt files encrypted to their recipients.
#[derive(Clone)]
pub struct Identities(Vec<age::x25519::Identity>);

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("count", &self.0.len())
            .field("recipients", &self.recipients())
            .finish()
    }
}

impl Identities {
    /// Read an identity file in `age-keygen`'s format: `#` comments, blank lines and one or more
    /// `AGE-SECRET-KEY-1…` lines. The file must be readable by its owner only.
    pub fn read_file(path: &Path) -> Result<Identities, Error> {
        let bytes = crate::secret_file::read(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| Error::Key {
            path: path.to_path_buf(),
            reason: format!(
                "not an age identity file: not UTF-8 text (at byte {})",
                e.valid_up_to()
            ),
        })?;
        parse_identities(text, path)
    }

    /// Identities from secret key text: one `AGE-SECRET-KEY-1…` key, or the contents of an identity file.
    pub fn from_secret(s: &str) -> Result<Identities, Error> {
        parse_identities(s, Path::new("(secret key)"))
    }

    /// The recipients (`age1…`) of these identities, in order.
    pub fn recipients(&self) -> Vec<String> {
        self.0.iter().map(|i| i.to_public().to_string()).collect()
    }

    /// How many identities.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no identity (never the case for a value read by this module).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Add the identities of another file (`-i` repeated): any one of them may decrypt.
    pub fn extend(&mut self, other: Identities) {
        self.0.extend(other.0);
    }

    /// The identities, for the age decryptor.
    pub(crate) fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.0.iter().map(|i| i as &dyn age::Identity)
    }
}

fn parse_identities(text: &str, path: &Path) -> Result<Identities, Error> {
    let key_error = |reason: String| Error::Key {
        path: path.to_path_buf(),
        reason,
    };
    let mut identities = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let n = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with(SECRET_KEY_PREFIX) {
            let identity = line
                .parse::<age::x25519::Identity>()
                .map_err(|e| key_error(format!("line {n}: malformed age secret key ({e})")))?;
            identities.push(identity);
        } else {
            return Err(key_error(format!(
                "line {n}: not an age identity (expected {SECRET_KEY_PREFIX}…, a # comment or a blank line)"
            )));
        }
    }
    if identities.is_empty() {
        return Err(key_error(format!(
            "no identity found (expected a line starting with {SECRET_KEY_PREFIX})"
        )));
    }
    Ok(Identities(identities))
}

/// Parse an X25519 recipient (`age1…`).
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, Error> {
    let t = s.trim();
    if t.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        // Never echo a secret key given by mistake.
        return Err(Error::Recipient {
            recipient: "AGE-SECRET-KEY-1… (redacted)".into(),
            reason: "this is a secret key, not a recipient; give its public key (age1…) instead"
                .into(),
        });
    }
    let reason = if t.starts_with("ssh-") {
        Some("SSH recipients are not supported; use an X25519 age recipient (age1…)".to_string())
    } else if !t.starts_with(RECIPIENT_PREFIX) {
        Some("not an age recipient (expected age1…)".to_string())
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(Error::Recipient {
            recipient: s.to_string(),
            reason,
        });
    }
    t.parse::<age::x25519::Recipient>()
        .map_err(|e| Error::Recipient {
            recipient: s.to_string(),
            reason: format!("not a valid X25519 age recipient ({e})"),
        })
}

/// Read a recipients file in `age -R`'s format: one `age1…` recipient per line, `#` comments and blank lines;
/// at most [`MAX_RECIPIENTS_FILE_BYTES`]. Returns the recipients as given.
pub fn read_recipients_file(path: &Path) -> Result<Vec<String>, Error> {
    let key_error = |reason: String| Error::Key {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_RECIPIENTS_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_RECIPIENTS_FILE_BYTES {
        return Err(key_error(format!(
            "too large for a recipients file (more than {MAX_RECIPIENTS_FILE_BYTES} bytes)"
        )));
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        key_error(format!(
            "not a recipients file: not UTF-8 text (at byte {})",
            e.valid_up_to()
        ))
    })?;
    let mut recipients = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_recipient(line) {
            Ok(r) => recipients.push(r.to_string()),
            // The line is not repeated: a secret file given to -R by mistake must not be printed.
            Err(Error::Recipient { reason, .. }) => {
                return Err(key_error(format!("line {}: {reason}", index + 1)))
            }
            Err(e) => return Err(e),
        }
    }
    if recipients.is_empty() {
        return Err(key_error(
            "no recipient found (expected age1… lines)".into(),
        ));
    }
    Ok(recipients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_round_trips() {
        let (secret, recipient) = generate_identity();
        assert!(secret.starts_with(SECRET_KEY_PREFIX));
        assert!(recipient.starts_with(RECIPIENT_PREFIX));
        let ids = Identities::from_secret(&secret).unwrap();
        assert_eq!(ids.recipients(), vec![recipient.clone()]);
        assert_eq!(ids.len(), 1);
        assert!(!ids.is_empty());
        assert!(parse_recipient(&recipient).is_ok());
        let debug = format!("{ids:?}");
        assert!(!debug.contains(SECRET_KEY_PREFIX), "{debug}");
    }

    #[test]
    fn identity_file_is_owner_only_and_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.txt");
        let recipient = write_identity_file(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("# created: 20") && lines[0].ends_with('Z'),
            "{text}"
        );
        assert_eq!(lines[1], format!("# public key: {recipient}"));
        assert!(lines[2].starts_with(SECRET_KEY_PREFIX));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(
            Identities::read_file(&p).unwrap().recipients(),
            vec![recipient]
        );
        assert!(write_identity_file(&p).is_err(), "never overwrites");
    }

    #[test]
    fn malformed_lines_named_without_echo() {
        let (secret, _) = generate_identity();
        let bad = format!("# c\n\n{}\nhello-secret-stuff\n", secret.as_str());
        let e = Identities::from_secret(&bad).unwrap_err().to_string();
        assert!(
            e.contains("line 4") && !e.contains("hello-secret-stuff"),
            "{e}"
        );
        // A corrupted key: its text is not echoed.
        let mut corrupt = secret.to_string();
        corrupt.pop();
        corrupt.push(if secret.ends_with('Q') { 'P' } else { 'Q' });
        let e = Identities::from_secret(&corrupt).unwrap_err().to_string();
        assert!(e.contains("line 1") && !e.contains(&corrupt[16..]), "{e}");
        let e = Identities::from_secret("# only a comment\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no identity"), "{e}");
    }

    #[test]
    fn recipients_parsed_and_refused() {
        let (secret, recipient) = generate_identity();
        assert!(parse_recipient(&format!(" {recipient}\n")).is_ok());
        let e = parse_recipient(&secret).unwrap_err().to_string();
        assert!(
            !e.contains(&secret[16..]) && e.contains("secret key"),
            "{e}"
        );
        assert!(parse_recipient("ssh-ed25519 AAAA")
            .unwrap_err()
            .to_string()
            .contains("SSH"));
        let mut broken = recipient.clone();
        broken.pop();
        assert!(matches!(
            parse_recipient(&broken),
            Err(Error::Recipient { .. })
        ));
        assert!(parse_recipient("hello").is_err());
    }

    #[test]
    fn recipients_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_, r1) = generate_identity();
        let (_, r2) = generate_identity();
        let p = dir.path().join("recipients.txt");
        std::fs::write(&p, format!("# team\n{r1}\n\n{r2}\n")).unwrap();
        assert_eq!(read_recipients_file(&p).unwrap(), vec![r1.clone(), r2]);
        std::fs::write(&p, format!("{r1}\nage1nope\n")).unwrap();
        let e = read_recipients_file(&p).unwrap_err().to_string();
        assert!(e.contains("recipients.txt") && e.contains("line 2"), "{e}");
        std::fs::write(&p, "# nothing\n").unwrap();
        assert!(read_recipients_file(&p).is_err());
        std::fs::write(&p, vec![b'#'; MAX_RECIPIENTS_FILE_BYTES as usize + 1]).unwrap();
        assert!(read_recipients_file(&p)
            .unwrap_err()
            .to_string()
            .contains("too large"));
    }
}
