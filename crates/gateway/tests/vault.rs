//! Models at rest: the gateway serves an age-encrypted model decrypted in memory only, verifies its Ed25519
//! signature against the model's trusted keys before the scan, refuses (with an event the server audits) a
//! model it cannot decrypt or verify, and serves an unverified one only under the explicit, reported
//! `allow_unverified` override.

use std::path::{Path, PathBuf};

use aegis_gateway::config::{Config, ModelConfig};
use aegis_gateway::models::{LocalModels, ModelEvent};
use aegis_vault::crypt::{self, EncryptTo};
use aegis_vault::manifest::HashOptions;
use aegis_vault::{keys, signature, signing_key};

fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// A directory with the demo model (plain and encrypted), its signature, a signing key pair and an identity.
struct Fixture {
    dir: tempfile::TempDir,
    recipient: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::copy(assets().join("demo-fraud.onnx"), d.join("fraud.onnx")).unwrap();
        let recipient = keys::write_identity_file(&d.join("gateway.agekey")).unwrap();
        signing_key::write_keypair(&d.join("release.key")).unwrap();
        signature::sign_path(
            &d.join("fraud.onnx"),
            &d.join("release.key"),
            &d.join("fraud.onnx.sig"),
            &HashOptions::default(),
        )
        .unwrap();
        crypt::encrypt_file(
            &EncryptTo::Recipients(vec![recipient.clone()]),
            false,
            &d.join("fraud.onnx"),
            &d.join("fraud.onnx.age"),
        )
        .unwrap();
        Fixture { dir, recipient }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn model(&self, file: &str, tweak: impl FnOnce(&mut ModelConfig)) -> ModelConfig {
        let mut m = ModelConfig::new(
            "fraud",
            self.path(file),
            assets().join("demo-fraud.schema.toml"),
        );
        tweak(&mut m);
        m
    }
}

fn load(config: ModelConfig) -> (bool, ModelEvent) {
    let (models, mut events) = LocalModels::load(&[config]);
    (models.get("fraud").is_some(), events.remove(0))
}

#[test]
fn an_encrypted_signed_model_is_decrypted_in_memory_and_verified() {
    let f = Fixture::new();
    let (served, event) = load(f.model("fraud.onnx.age", |m| {
        m.identity = Some(f.path("gateway.agekey"));
        m.trusted_keys = vec![f.path("release.key.pub")];
    }));
    assert!(served, "{event:?}");
    assert_eq!(event.decision, "loaded");
    assert!(
        event.detail.contains("decrypted in memory"),
        "{}",
        event.detail
    );
    assert!(
        event.detail.contains("signature verified"),
        "{}",
        event.detail
    );
    // The same digest as the plaintext file: what was signed is what runs.
    let (models, _) = LocalModels::load(&[f.model("fraud.onnx", |_| {})]);
    let plain = models.get("fraud").unwrap().digest.clone();
    assert!(event.detail.contains(&plain), "{}", event.detail);
    // Nothing was written beside the encrypted file.
    let names: Vec<String> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(!f.recipient.is_empty());
}

#[test]
fn a_plain_signed_model_is_verified_and_a_tampered_one_refused() {
    let f = Fixture::new();
    let with_keys = |m: &mut ModelConfig| m.trusted_keys = vec![f.path("release.key.pub")];
    let (served, event) = load(f.model("fraud.onnx", with_keys));
    assert!(
        served && event.detail.contains("signature verified"),
        "{event:?}"
    );

    // One byte changed after signing (inside an initializer: the ONNX still parses).
    let mut bytes = std::fs::read(f.path("fraud.onnx")).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x01;
    std::fs::write(f.path("fraud.onnx"), &bytes).unwrap();
    let (served, event) = load(f.model("fraud.onnx", with_keys));
    assert!(!served);
    assert_eq!(event.decision, "refused");
    assert!(
        event.detail.contains("is not the signed"),
        "{}",
        event.detail
    );
    assert!(
        event.detail.contains("allow_unverified"),
        "{}",
        event.detail
    );

    // The explicit override serves it, and says so in the (audited) event.
    let (served, event) = load(f.model("fraud.onnx", |m| {
        with_keys(m);
        m.allow_unverified = true;
    }));
    assert!(served);
    assert_eq!(event.decision, "loaded-unverified");
    assert!(
        event.detail.contains("is not the signed"),
        "{}",
        event.detail
    );
}

#[test]
fn missing_or_untrusted_signatures_and_wrong_keys_are_refused() {
    let f = Fixture::new();
    // No signature file.
    std::fs::rename(f.path("fraud.onnx.sig"), f.path("moved.sig")).unwrap();
    let (served, event) = load(f.model("fraud.onnx", |m| {
        m.trusted_keys = vec![f.path("release.key.pub")]
    }));
    assert!(
        !served && event.detail.contains("no readable signature"),
        "{event:?}"
    );
    // A signature by a key that is not trusted.
    signing_key::write_keypair(&f.path("other.key")).unwrap();
    let (served, event) = load(f.model("fraud.onnx", |m| {
        m.trusted_keys = vec![f.path("other.key.pub")];
        m.signature = Some(f.path("moved.sig"));
    }));
    assert!(!served, "{event:?}");
    assert_eq!(event.decision, "refused");
    // An encrypted model without an identity, and with the wrong one.
    let (served, event) = load(f.model("fraud.onnx.age", |_| {}));
    assert!(!served && event.detail.contains("identity"), "{event:?}");
    keys::write_identity_file(&f.path("other.agekey")).unwrap();
    let (served, event) = load(f.model("fraud.onnx.age", |m| {
        m.identity = Some(f.path("other.agekey"))
    }));
    assert!(
        !served && event.detail.contains("cannot decrypt"),
        "{event:?}"
    );
    // Secrets never appear in an event.
    let secret = std::fs::read_to_string(f.path("other.agekey")).unwrap();
    let line = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY"))
        .unwrap();
    assert!(!event.detail.contains(line));
}

#[test]
fn a_signature_for_another_model_is_refused_and_unsigned_encryption_is_flagged() {
    let f = Fixture::new();
    // The same key signed another file: its signature does not vouch for this model, even with equal bytes.
    std::fs::copy(f.path("fraud.onnx"), f.path("other.onnx")).unwrap();
    signature::sign_path(
        &f.path("other.onnx"),
        &f.path("release.key"),
        &f.path("other.onnx.sig"),
        &HashOptions::default(),
    )
    .unwrap();
    let (served, event) = load(f.model("fraud.onnx", |m| {
        m.trusted_keys = vec![f.path("release.key.pub")];
        m.signature = Some(f.path("other.onnx.sig"));
    }));
    assert!(!served, "{event:?}");
    assert!(
        event.detail.contains("signs a model named \"other.onnx\""),
        "{}",
        event.detail
    );
    // Encrypted but no trusted_keys: served, and the event says its origin was not verified.
    let (served, event) = load(f.model("fraud.onnx.age", |m| {
        m.identity = Some(f.path("gateway.agekey"))
    }));
    assert!(served && event.decision == "loaded", "{event:?}");
    assert!(
        event.detail.contains("origin not verified"),
        "{}",
        event.detail
    );
}

#[cfg(unix)]
#[test]
fn an_identity_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    std::fs::set_permissions(
        f.path("gateway.agekey"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (served, event) = load(f.model("fraud.onnx.age", |m| {
        m.identity = Some(f.path("gateway.agekey"))
    }));
    assert!(!served && event.detail.contains("chmod 600"), "{event:?}");
}

#[test]
fn config_paths_resolve_and_nonsense_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.toml");
    let load = |extra: &str| {
        std::fs::write(
            &path,
            format!(
                "[[model]]\nname = \"fraud\"\npath = \"m.onnx.age\"\nschema = \"s.toml\"\n{extra}"
            ),
        )
        .unwrap();
        Config::load(&path).map_err(|e| e.to_string())
    };
    let c = load("identity = \"k/id.agekey\"\ntrusted_keys = [\"k/release.pub\"]\n").unwrap();
    let m = &c.models[0];
    assert_eq!(
        m.identity.as_deref(),
        Some(dir.path().join("k/id.agekey").as_path())
    );
    assert_eq!(m.trusted_keys, vec![dir.path().join("k/release.pub")]);
    assert_eq!(
        aegis_gateway::signature_path(m),
        dir.path().join("m.onnx.sig")
    );
    let e = load("signature = \"m.sig\"\n").unwrap_err();
    assert!(e.contains("\"fraud\"") && e.contains("trusted_keys"), "{e}");
    let e = load("allow_unverified = true\n").unwrap_err();
    assert!(e.contains("allow_unverified"), "{e}");
    let e = load("sha256 = \"abc\"\n").unwrap_err();
    assert!(e.contains("sha256") && e.contains("64 hexadecimal"), "{e}");
    let pin = "ab".repeat(32);
    let c = load(&format!("sha256 = \"{pin}\"\n")).unwrap();
    assert_eq!(c.models[0].sha256.as_deref(), Some(pin.as_str()));
    assert!(Path::new(&path).exists());
}

#[test]
fn a_pinned_digest_refuses_another_release_even_when_signed() {
    let f = Fixture::new();
    let digest = |p: &Path| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
    };
    let release_1 = digest(&f.path("fraud.onnx"));
    // Pinned to this release: served, decrypted in memory, signature verified, pin reported.
    let (served, event) = load(f.model("fraud.onnx.age", |m| {
        m.identity = Some(f.path("gateway.agekey"));
        m.trusted_keys = vec![f.path("release.key.pub")];
        m.sha256 = Some(release_1.to_uppercase());
    }));
    assert!(served, "{event:?}");
    assert!(
        event.detail.contains("signature verified") && event.detail.contains("SHA-256 pinned"),
        "{}",
        event.detail
    );
    // Another release, validly signed by the same trusted key under the same name, but not the pinned one (a
    // rollback, or an unplanned upgrade): refused before anything else, and allow_unverified (an override for
    // signatures) does not lift the pin.
    let v2 = f.path("v2");
    std::fs::create_dir(&v2).unwrap();
    let mut bytes = std::fs::read(f.path("fraud.onnx")).unwrap();
    bytes.extend_from_slice(b"\0");
    std::fs::write(v2.join("fraud.onnx"), &bytes).unwrap();
    signature::sign_path(
        &v2.join("fraud.onnx"),
        &f.path("release.key"),
        &v2.join("fraud.onnx.sig"),
        &HashOptions::default(),
    )
    .unwrap();
    let release_2 = digest(&v2.join("fraud.onnx"));
    for allow_unverified in [false, true] {
        let (served, event) = load(f.model("v2/fraud.onnx", |m| {
            m.trusted_keys = vec![f.path("release.key.pub")];
            m.sha256 = Some(release_1.clone());
            m.allow_unverified = allow_unverified;
        }));
        assert!(!served, "{event:?}");
        assert!(
            event.detail.contains(&release_2) && event.detail.contains("pinned"),
            "{}",
            event.detail
        );
    }
}
