//! Ed25519 key files for signing and verifying model manifests.
//!
//! The private key is a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey -algorithm ed25519`
//! writes it) created owner-only through [`crate::secret_file`] and refused when others can read it; the public
//! key is an SPKI PEM file (`-----BEGIN PUBLIC KEY-----`) beside it, `<private>.pub`. Standard PEM keeps the keys
//! usable by other tools (OpenSSL, the OpenSSF `model_signing` key hint, which is the SHA-256 of this PEM text).
//! The seed is drawn from the operating system (`getrandom`) and held in zeroized memory.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{
    spki::der::pem::LineEnding, DecodePrivateKey, DecodePublicKey, EncodePrivateKey,
    EncodePublicKey,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{secret_file, Error};

/// Largest public key file read, in bytes (an Ed25519 SPKI PEM is 113 bytes).
const MAX_PUBLIC_BYTES: u64 = 64 * 1024;

/// The public key file beside a private key file: `<private_path>.pub`.
pub fn public_path(private_path: &Path) -> PathBuf {
    let mut s = private_path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Create a new random Ed25519 key pair: the private key as PKCS#8 PEM at `private_path` (owner-only, never
/// overwriting) and the public key as SPKI PEM at `<private_path>.pub` (also never overwriting). Returns the
/// public key's path.
pub fn write_keypair(private_path: &Path) -> Result<PathBuf, Error> {
    let pub_path = public_path(private_path);
    if pub_path.exists() {
        return Err(Error::Key {
            path: pub_path,
            reason: "already exists; refusing to overwrite a key file".into(),
        });
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(&mut seed[..]).map_err(|e| Error::Key {
        path: private_path.to_path_buf(),
        reason: format!("the operating system gave no random bytes: {e}"),
    })?;
    let key = SigningKey::from_bytes(&seed);
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| Error::Key {
        path: private_path.to_path_buf(),
        reason: format!("cannot encode the private key as PKCS#8: {e}"),
    })?;
    let public = public_pem(&key.verifying_key())?;
    secret_file::write_new(private_path, private_pem.as_bytes())?;
    crate::secret_file::create_key_file(&pub_path, public.as_bytes(), 0o644)?;
    Ok(pub_path)
}

/// Read an Ed25519 private key (PKCS#8 PEM) for signing; refuses a file others can read, and says so plainly
/// when given a public key, an encrypted key, an age identity or a key of another type.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, Error> {
    let bytes = match secret_file::read(path) {
        Ok(b) => b,
        Err(e) => {
            // A public key is not secret: say what it is rather than complain about its permissions.
            if matches!(e, Error::Key { .. }) && starts_with(path, b"-----BEGIN PUBLIC KEY-----") {
                return Err(key_err(path, PUBLIC_GIVEN));
            }
            return Err(e);
        }
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        key_err(
            path,
            "not a PEM text file (expected an Ed25519 PKCS#8 private key)",
        )
    })?;
    let trimmed = text.trim_start();
    if trimmed.starts_with("-----BEGIN PUBLIC KEY-----") {
        return Err(key_err(path, PUBLIC_GIVEN));
    }
    if trimmed.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(key_err(
            path,
            "encrypted PKCS#8 keys are not supported; protect the key with file permissions or `aegis vault encrypt`",
        ));
    }
    if trimmed.starts_with("AGE-SECRET-KEY-") || trimmed.starts_with("# created:") {
        return Err(key_err(
            path,
            "this is an age identity (for encryption), not an Ed25519 signing key; create one with `aegis vault keygen --signing`",
        ));
    }
    if !trimmed.starts_with("-----BEGIN PRIVATE KEY-----") {
        return Err(key_err(
            path,
            "not an Ed25519 PKCS#8 private key (expected `-----BEGIN PRIVATE KEY-----`)",
        ));
    }
    SigningKey::from_pkcs8_pem(text).map_err(|e| {
        key_err(
            path,
            &format!("not an Ed25519 PKCS#8 private key ({e}); EC and RSA keys are not supported"),
        )
    })
}

const PUBLIC_GIVEN: &str = "this is a public key; sign needs the private key";

/// Read an Ed25519 public key (SPKI PEM) for verifying. Returns the key and its canonical PEM text (as
/// [`public_pem`] writes it), from which the bundle's key hint is computed.
pub fn read_verifying_key(path: &Path) -> Result<(VerifyingKey, String), Error> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PUBLIC_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_PUBLIC_BYTES {
        return Err(key_err(path, "too large for a public key file"));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| key_err(path, "not a PEM text file (expected an Ed25519 public key)"))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with("-----BEGIN PRIVATE KEY-----")
        || trimmed.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || trimmed.starts_with("-----BEGIN EC PRIVATE KEY-----")
    {
        return Err(key_err(
            path,
            "this is a private key; verify needs the public key (the `.pub` file written beside it)",
        ));
    }
    if !trimmed.starts_with("-----BEGIN PUBLIC KEY-----") {
        return Err(key_err(
            path,
            "not an Ed25519 public key (expected `-----BEGIN PUBLIC KEY-----`)",
        ));
    }
    let key = VerifyingKey::from_public_key_pem(text).map_err(|e| {
        key_err(
            path,
            &format!("not an Ed25519 public key ({e}); EC and RSA keys are not supported"),
        )
    })?;
    let pem = public_pem(&key).map_err(|e| key_err(path, &e.to_string()))?;
    Ok((key, pem))
}

/// The SPKI PEM text of a public key (LF line endings, final newline), as written to `<key>.pub`.
pub fn public_pem(key: &VerifyingKey) -> Result<String, Error> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::Invalid(format!("cannot encode the public key as PEM: {e}")))
}

/// The key hint of a Sigstore bundle: hex SHA-256 of the public key's PEM text (BEGIN/END lines and final
/// newline included), as OpenSSF `model_signing` computes it.
pub fn key_hint(pem: &str) -> String {
    hex::encode(Sha256::digest(pem.as_bytes()))
}

fn key_err(path: &Path, reason: &str) -> Error {
    Error::Key {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Whether the file at `path` begins with `prefix` (reads only that many bytes).
fn starts_with(path: &Path, prefix: &[u8]) -> bool {
    use std::io::Read;
    let mut buf = vec![0u8; prefix.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
        && buf == prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, Verifier};

    #[test]
    fn keypair_round_trip_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let sk_path = dir.path().join("sign.key");
        let pk_path = write_keypair(&sk_path).unwrap();
        assert_eq!(pk_path, dir.path().join("sign.key.pub"));
        let sk = read_signing_key(&sk_path).unwrap();
        let (vk, pem) = read_verifying_key(&pk_path).unwrap();
        assert_eq!(vk, sk.verifying_key());
        assert_eq!(pem, std::fs::read_to_string(&pk_path).unwrap());
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\n")
                && pem.ends_with("-----END PUBLIC KEY-----\n")
        );
        let private = std::fs::read_to_string(&sk_path).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let sig = sk.sign(b"m");
        assert!(vk.verify(b"m", &sig).is_ok());
        assert_eq!(key_hint(&pem).len(), 64);
        // Neither file is overwritten.
        let e = write_keypair(&sk_path).unwrap_err().to_string();
        assert!(e.contains("refusing to overwrite"), "{e}");
        assert_eq!(std::fs::read_to_string(&sk_path).unwrap(), private);
        // A second key pair differs (random seed).
        let other = dir.path().join("other.key");
        write_keypair(&other).unwrap();
        assert_ne!(read_signing_key(&other).unwrap().to_bytes(), sk.to_bytes());
    }

    #[cfg(unix)]
    #[test]
    fn private_key_is_owner_only_and_loose_permissions_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sk_path = dir.path().join("k");
        write_keypair(&sk_path).unwrap();
        let mode = std::fs::metadata(&sk_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(read_signing_key(&sk_path).is_ok());
        std::fs::set_permissions(&sk_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_signing_key(&sk_path).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("k"), "{e}");
    }

    #[test]
    fn wrong_kinds_of_key_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let sk_path = dir.path().join("k");
        let pk_path = write_keypair(&sk_path).unwrap();
        // Public key given to sign (its permissions are 0644 by default umask; either way it is named).
        let e = read_signing_key(&pk_path).unwrap_err().to_string();
        assert!(
            e.contains("this is a public key") && e.contains("k.pub"),
            "{e}"
        );
        // Private key given to verify.
        let e = read_verifying_key(&sk_path).unwrap_err().to_string();
        assert!(e.contains("this is a private key"), "{e}");
        // Garbage and an EC key.
        let junk = dir.path().join("junk");
        crate::secret_file::write_new(&junk, b"hello").unwrap();
        let e = read_signing_key(&junk).unwrap_err().to_string();
        assert!(
            e.contains("not an Ed25519 PKCS#8 private key") && e.contains("junk"),
            "{e}"
        );
        let ec = dir.path().join("ec.pem");
        crate::secret_file::write_new(&ec, EC_P256_PKCS8.as_bytes()).unwrap();
        let e = read_signing_key(&ec).unwrap_err().to_string();
        assert!(e.contains("not an Ed25519 PKCS#8 private key"), "{e}");
        let ec_pub = dir.path().join("ec.pub");
        std::fs::write(&ec_pub, EC_P256_SPKI).unwrap();
        let e = read_verifying_key(&ec_pub).unwrap_err().to_string();
        assert!(e.contains("not an Ed25519 public key"), "{e}");
        let age = dir.path().join("age.txt");
        crate::secret_file::write_new(&age, b"AGE-SECRET-KEY-1QQQ\n").unwrap();
        let e = read_signing_key(&age).unwrap_err().to_string();
        assert!(e.contains("age identity"), "{e}");
    }

    #[test]
    fn hint_is_sha256_of_pem_text() {
        // sha256("") is well known; the hint is over the exact text.
        assert_eq!(
            key_hint(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// An EC P-256 key pair (generated with `openssl ecparam -name prime256v1 -genkey | openssl pkcs8 -topk8
    /// -nocrypt`), used only to check that other key types are refused clearly.
    const EC_P256_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKd5+84GLk1DtJeu1
tiGW6Do8apjTAyZUrcOiclTYBmehRANCAAQ9pLthN10dIWrFxuDXlHcxVKWqwv4S
kPsCYbHmDk9rOcV7bq5vEBaY7ZYhCYooevGZ+nR7u6AV9SEdDAx/a+mk
-----END PRIVATE KEY-----
";
    const EC_P256_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPaS7YTddHSFqxcbg15R3MVSlqsL+
EpD7AmGx5g5PaznFe26ubxAWmO2WIQmKKHrxmfp0e7ugFfUhHQwMf2vppA==
-----END PUBLIC KEY-----
";
}
