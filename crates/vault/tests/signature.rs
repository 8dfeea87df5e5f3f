//! Signed manifests end to end: sign and verify directories and single files with Ed25519 key files, detect and
//! name every kind of tampering (file contents, missing and extra files, the bundle's payload and signature,
//! the subject digest), refuse other keys and other key types, and pin the OpenSSF model-signing layout with a
//! golden statement and a bundle made by the real `model_signing` 1.1.1 tool.

use std::fs;
use std::path::{Path, PathBuf};

use aegis_vault::manifest::{self, HashOptions};
use aegis_vault::signature::{
    self, default_signature_path, verify_bundle, verify_path, DEFAULT_SIGNATURE_FILE,
};
use aegis_vault::signing_key::{self, key_hint, public_pem, read_verifying_key, write_keypair};
use aegis_vault::Error;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn none(_: u64) {}

/// A model directory with nested files, a dotfile and git metadata.
fn model_dir(root: &Path) -> PathBuf {
    let m = root.join("model");
    fs::create_dir_all(m.join("shards/nested")).unwrap();
    fs::create_dir_all(m.join(".git")).unwrap();
    fs::write(m.join("config.json"), br#"{"layers": 2}"#).unwrap();
    fs::write(m.join("shards/00.bin"), vec![1u8; 5000]).unwrap();
    fs::write(m.join("shards/nested/01.bin"), vec![2u8; 3000]).unwrap();
    fs::write(m.join(".hidden"), b"dotfile").unwrap();
    fs::write(m.join(".git/HEAD"), b"ref: refs/heads/main").unwrap();
    m
}

fn keys(root: &Path, name: &str) -> (PathBuf, PathBuf) {
    let sk = root.join(name);
    let pk = write_keypair(&sk).unwrap();
    (sk, pk)
}

fn sig_reason(e: Error) -> String {
    match e {
        Error::Signature { path, reason } => format!("{}: {reason}", path.display()),
        other => panic!("expected a signature error, got {other:?}"),
    }
}

fn pae(payload: &[u8]) -> Vec<u8> {
    let t = "application/vnd.in-toto+json";
    let mut v = format!("DSSEv1 {} {t} {} ", t.len(), payload.len()).into_bytes();
    v.extend_from_slice(payload);
    v
}

/// Replace the payload of a bundle, optionally re-signing it properly with `key`.
fn with_payload(bundle: &str, payload: &[u8], key: Option<&SigningKey>) -> String {
    let mut b: Value = serde_json::from_str(bundle).unwrap();
    b["dsseEnvelope"]["payload"] = json!(STANDARD.encode(payload));
    if let Some(k) = key {
        let sig = k.sign(&pae(payload));
        b["dsseEnvelope"]["signatures"][0]["sig"] = json!(STANDARD.encode(sig.to_bytes()));
    }
    b.to_string()
}

fn payload_of(bundle: &str) -> Value {
    let b: Value = serde_json::from_str(bundle).unwrap();
    let bytes = STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn directory_round_trip_and_every_difference_named() {
    let d = tempfile::tempdir().unwrap();
    let m = model_dir(d.path());
    let (sk, pk) = keys(d.path(), "release.key");
    let sig = default_signature_path(&m);
    assert_eq!(sig, m.join(DEFAULT_SIGNATURE_FILE));
    let signed = signature::sign_path(&m, &sk, &sig, &HashOptions::default()).unwrap();
    let names: Vec<&str> = signed.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            ".hidden",
            "config.json",
            "shards/00.bin",
            "shards/nested/01.bin"
        ]
    );
    assert!(signed.ignore_paths.contains(&"model.sig".to_string()));

    let keys = [pk.clone()];
    let opts = HashOptions::default();
    let v = verify_path(&m, &sig, &keys, &opts).unwrap();
    assert!(v.is_ok(), "{:?}", v.diff);
    let (_, pem) = read_verifying_key(&pk).unwrap();
    assert_eq!(v.key_hint, key_hint(&pem));
    assert_eq!(v.signed.resources.len(), 4);

    // Re-signing replaces the old signature, which is never hashed.
    signature::sign_path(&m, &sk, &sig, &HashOptions::default()).unwrap();
    assert!(verify_path(&m, &sig, &keys, &opts).unwrap().is_ok());

    // One byte of one signed file.
    let shard = m.join("shards/nested/01.bin");
    let mut bytes = fs::read(&shard).unwrap();
    bytes[1234] ^= 1;
    fs::write(&shard, &bytes).unwrap();
    let v = verify_path(&m, &sig, &keys, &opts).unwrap();
    assert!(!v.is_ok());
    assert_eq!(v.diff.modified, ["shards/nested/01.bin"]);
    assert!(v.diff.missing.is_empty() && v.diff.extra.is_empty());
    bytes[1234] ^= 1;
    fs::write(&shard, &bytes).unwrap();
    assert!(verify_path(&m, &sig, &keys, &opts).unwrap().is_ok());

    // A deleted file, and a new one (git metadata stays ignored).
    fs::remove_file(m.join("config.json")).unwrap();
    fs::write(m.join("shards/extra.bin"), b"new").unwrap();
    fs::write(m.join(".git/index"), b"git changes are ignored").unwrap();
    let v = verify_path(&m, &sig, &keys, &opts).unwrap();
    assert_eq!(v.diff.missing, ["config.json"]);
    assert_eq!(v.diff.extra, ["shards/extra.bin"]);
    assert!(v.diff.modified.is_empty());
}

#[test]
fn single_file_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("model.safetensors");
    fs::write(&f, vec![9u8; 10_000]).unwrap();
    let (sk, pk) = keys(d.path(), "k");
    let sig = default_signature_path(&f);
    assert_eq!(sig, d.path().join("model.safetensors.sig"));
    let signed = signature::sign_path(&f, &sk, &sig, &HashOptions::default()).unwrap();
    assert_eq!(signed.model_name, "model.safetensors");
    assert_eq!(signed.resources.len(), 1);
    assert_eq!(signed.resources[0].name, ".");
    let keys = [pk];
    assert!(verify_path(&f, &sig, &keys, &HashOptions::default())
        .unwrap()
        .is_ok());
    let mut bytes = fs::read(&f).unwrap();
    bytes[9999] ^= 0x80;
    fs::write(&f, &bytes).unwrap();
    let v = verify_path(&f, &sig, &keys, &HashOptions::default()).unwrap();
    assert_eq!(v.diff.modified, ["."]);
}

#[test]
fn signed_ignore_paths_apply_when_verifying() {
    let d = tempfile::tempdir().unwrap();
    let m = model_dir(d.path());
    fs::create_dir_all(m.join("cache")).unwrap();
    fs::write(m.join("cache/tmp"), b"volatile").unwrap();
    let (sk, pk) = keys(d.path(), "k");
    let sig = m.join("custom.sig");
    let opts = HashOptions {
        ignore: vec!["cache".into()],
        ..HashOptions::default()
    };
    let signed = signature::sign_path(&m, &sk, &sig, &opts).unwrap();
    assert!(signed
        .resources
        .iter()
        .all(|r| !r.name.starts_with("cache")));
    fs::write(m.join("cache/tmp"), b"changed").unwrap();
    fs::write(m.join("cache/more"), b"more").unwrap();
    // Verified without repeating --ignore: the signed ignore paths (and the custom signature name) apply.
    let v = verify_path(&m, &sig, std::slice::from_ref(&pk), &HashOptions::default()).unwrap();
    assert!(v.is_ok(), "{:?}", v.diff);
    fs::write(m.join("cache.bin"), b"not under cache/").unwrap();
    let v = verify_path(&m, &sig, &[pk], &HashOptions::default()).unwrap();
    assert_eq!(v.diff.extra, ["cache.bin"]);
}

#[test]
fn tampered_bundle_payload_or_signature_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let m = model_dir(d.path());
    let (sk, pk) = keys(d.path(), "k");
    let sig = default_signature_path(&m);
    signature::sign_path(&m, &sk, &sig, &HashOptions::default()).unwrap();
    let good = fs::read_to_string(&sig).unwrap();
    let trusted = vec![read_verifying_key(&pk).unwrap()];
    assert!(verify_bundle(&good, &sig, &trusted).is_ok());

    // One byte of the base64 payload (still valid base64: the statement text changes).
    let b: Value = serde_json::from_str(&good).unwrap();
    let payload = b["dsseEnvelope"]["payload"].as_str().unwrap().to_string();
    let mut chars: Vec<u8> = payload.clone().into_bytes();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == b'A' { b'B' } else { b'A' };
    let tampered = good.replace(&payload, std::str::from_utf8(&chars).unwrap());
    let e = sig_reason(verify_bundle(&tampered, &sig, &trusted).unwrap_err());
    assert!(
        e.contains("bad signature") && e.contains("model.sig"),
        "{e}"
    );

    // One bit of the signature.
    let s = b["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap();
    let mut raw = STANDARD.decode(s).unwrap();
    raw[10] ^= 1;
    let tampered = good.replace(s, &STANDARD.encode(&raw));
    let e = sig_reason(verify_bundle(&tampered, &sig, &trusted).unwrap_err());
    assert!(e.contains("bad signature"), "{e}");

    // Broken base64, truncated JSON, an unknown media type, a payload type that is not in-toto.
    let e = sig_reason(verify_bundle(&good.replace(s, "!!!!"), &sig, &trusted).unwrap_err());
    assert!(e.contains("bad base64"), "{e}");
    let e = sig_reason(verify_bundle(&good[..good.len() / 2], &sig, &trusted).unwrap_err());
    assert!(e.contains("not a Sigstore bundle"), "{e}");
    let e = sig_reason(
        verify_bundle(
            &good.replace("bundle.v0.3+json", "bundle.v0.9+json"),
            &sig,
            &trusted,
        )
        .unwrap_err(),
    );
    assert!(e.contains("bad mediaType"), "{e}");
    let e = sig_reason(
        verify_bundle(
            &good.replace("vnd.in-toto+json", "octet-stream"),
            &sig,
            &trusted,
        )
        .unwrap_err(),
    );
    assert!(e.contains("payloadType"), "{e}");

    // verify_path stops at the signature: the same tampering is an error, not a diff.
    fs::write(&sig, good.replace(s, &STANDARD.encode(&raw))).unwrap();
    let e = verify_path(&m, &sig, &[pk], &HashOptions::default()).unwrap_err();
    assert!(sig_reason(e).contains("bad signature"));
}

#[test]
fn another_key_is_refused_and_any_trusted_key_may_verify() {
    let d = tempfile::tempdir().unwrap();
    let m = model_dir(d.path());
    let (sk, pk) = keys(d.path(), "signer");
    let (_, other_pk) = keys(d.path(), "other");
    let sig = default_signature_path(&m);
    signature::sign_path(&m, &sk, &sig, &HashOptions::default()).unwrap();

    let e = sig_reason(
        verify_path(
            &m,
            &sig,
            std::slice::from_ref(&other_pk),
            &HashOptions::default(),
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("hint mismatch") && e.contains("none of the 1 trusted"),
        "{e}"
    );
    // Several trusted keys: the one that signed verifies, and is reported.
    let v = verify_path(
        &m,
        &sig,
        &[other_pk.clone(), pk.clone()],
        &HashOptions::default(),
    )
    .unwrap();
    assert!(v.is_ok());
    assert_eq!(v.key_hint, key_hint(&fs::read_to_string(&pk).unwrap()));

    // Without the hint, the other key is tried and fails the signature itself.
    let bundle = fs::read_to_string(&sig).unwrap();
    let mut b: Value = serde_json::from_str(&bundle).unwrap();
    b["verificationMaterial"]["publicKey"]["hint"] = json!("");
    let trusted = vec![read_verifying_key(&other_pk).unwrap()];
    let e = sig_reason(verify_bundle(&b.to_string(), &sig, &trusted).unwrap_err());
    assert!(e.contains("does not verify with any trusted key"), "{e}");

    // A private key is not a trusted key, and a public key cannot sign.
    let e = verify_path(&m, &sig, std::slice::from_ref(&sk), &HashOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("this is a private key"), "{e}");
    let e = signature::sign_path(&m, &pk, &sig, &HashOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("this is a public key; sign needs the private key"),
        "{e}"
    );
}

#[test]
fn subject_digest_is_checked() {
    let d = tempfile::tempdir().unwrap();
    let m = model_dir(d.path());
    let (sk_path, pk) = keys(d.path(), "k");
    let sk = signing_key::read_signing_key(&sk_path).unwrap();
    let trusted = vec![read_verifying_key(&pk).unwrap()];
    let manifest = manifest::build(&m, &HashOptions::default(), &none).unwrap();
    let good = signature::sign(&manifest, &sk).unwrap();
    let sig = Path::new("model.sig");
    let mut statement = payload_of(&good);

    // Edit a resource and the subject digest consistently, keep the old signature: the signature fails.
    let fake = hex::encode(Sha256::digest(b"evil weights"));
    statement["predicate"]["resources"][1]["digest"] = json!(fake);
    let mut concat = Vec::new();
    for r in statement["predicate"]["resources"].as_array().unwrap() {
        concat.extend(hex::decode(r["digest"].as_str().unwrap()).unwrap());
    }
    statement["subject"][0]["digest"]["sha256"] = json!(hex::encode(Sha256::digest(&concat)));
    let forged = with_payload(&good, statement.to_string().as_bytes(), None);
    let e = sig_reason(verify_bundle(&forged, sig, &trusted).unwrap_err());
    assert!(e.contains("bad signature"), "{e}");

    // Properly signed, but the subject digest does not match the resources.
    let mut statement = payload_of(&good);
    statement["subject"][0]["digest"]["sha256"] = json!(hex::encode([0u8; 32]));
    let wrong = with_payload(&good, statement.to_string().as_bytes(), Some(&sk));
    let e = sig_reason(verify_bundle(&wrong, sig, &trusted).unwrap_err());
    assert!(e.contains("subject digest"), "{e}");
    // The same re-signing with the subject left alone verifies (the check above is the digest, not the JSON).
    let statement = payload_of(&good);
    let ok = with_payload(&good, statement.to_string().as_bytes(), Some(&sk));
    assert!(verify_bundle(&ok, sig, &trusted).is_ok());

    // Other statement checks, each properly signed.
    for (field, value, expect) in [
        (
            "/predicateType",
            json!("https://example.com/other"),
            "unknown predicate type",
        ),
        (
            "/_type",
            json!("https://in-toto.io/Statement/v0.1"),
            "unknown statement type",
        ),
        (
            "/predicate/resources/0/algorithm",
            json!("sha512"),
            "not sha256",
        ),
        (
            "/predicate/serialization/method",
            json!("shards"),
            "not supported",
        ),
    ] {
        let mut statement = payload_of(&good);
        *statement.pointer_mut(field).unwrap() = value;
        let bundle = with_payload(&good, statement.to_string().as_bytes(), Some(&sk));
        let e = sig_reason(verify_bundle(&bundle, sig, &trusted).unwrap_err());
        assert!(e.contains(expect), "{field}: {e}");
    }
}

/// The statement for a fixed tiny directory, field by field, with the digests computed independently.
#[test]
fn golden_statement_layout() {
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("tiny-model");
    fs::create_dir_all(m.join("sub")).unwrap();
    fs::write(m.join("a.txt"), b"hello\n").unwrap();
    fs::write(m.join("sub/b.bin"), [0u8, 1, 2]).unwrap();
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let manifest = manifest::build(&m, &HashOptions::default(), &none).unwrap();
    let bundle = signature::sign(&manifest, &key).unwrap();

    // Known SHA-256 values (`printf 'hello\n' | sha256sum`, `printf '\x00\x01\x02' | sha256sum`).
    let a = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    let b = "ae4b3280e56e2faf83f414a6e3dabe9d5fbe18976544c05fed121accb85b53fc";
    let mut concat = hex::decode(a).unwrap();
    concat.extend(hex::decode(b).unwrap());
    let subject = hex::encode(Sha256::digest(&concat));

    let bundle_v: Value = serde_json::from_str(&bundle).unwrap();
    let keys_of = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys_of(&bundle_v),
        ["mediaType", "verificationMaterial", "dsseEnvelope"]
    );
    assert_eq!(
        bundle_v["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let pem = public_pem(&key.verifying_key()).unwrap();
    assert_eq!(
        bundle_v["verificationMaterial"],
        json!({"publicKey": {"hint": hex::encode(Sha256::digest(pem.as_bytes()))}, "tlogEntries": []})
    );
    let env = &bundle_v["dsseEnvelope"];
    assert_eq!(keys_of(env), ["payload", "payloadType", "signatures"]);
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    let sigs = env["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1);
    assert_eq!(keys_of(&sigs[0]), ["sig", "keyid"]);
    assert_eq!(sigs[0]["keyid"], "");
    let raw_sig = STANDARD.decode(sigs[0]["sig"].as_str().unwrap()).unwrap();
    assert_eq!(raw_sig.len(), 64);
    // The signature is over the DSSE PAE of the exact payload bytes.
    let payload = STANDARD.decode(env["payload"].as_str().unwrap()).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&raw_sig).unwrap();
    key.verifying_key()
        .verify_strict(&pae(&payload), &sig)
        .unwrap();

    let expected = format!(
        concat!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","#,
            r#""subject":[{{"name":"tiny-model","digest":{{"sha256":"{subject}"}}}}],"#,
            r#""predicateType":"https://model_signing/signature/v1.0","#,
            r#""predicate":{{"resources":["#,
            r#"{{"algorithm":"sha256","name":"a.txt","digest":"{a}"}},"#,
            r#"{{"algorithm":"sha256","name":"sub/b.bin","digest":"{b}"}}],"#,
            r#""serialization":{{"allow_symlinks":false,"method":"files","hash_type":"sha256","#,
            r#""ignore_paths":[".git",".gitattributes",".github",".gitignore"]}}}}}}"#
        ),
        subject = subject,
        a = a,
        b = b
    );
    assert_eq!(std::str::from_utf8(&payload).unwrap(), expected);
    // Parsed back field by field as well.
    let st: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(st["subject"][0]["digest"]["sha256"], subject.as_str());
    assert_eq!(st["predicate"]["resources"][1]["name"], "sub/b.bin");
    assert_eq!(st["predicate"]["serialization"]["method"], "files");

    // The whole bundle, byte for byte, as built independently in Python (hashlib, `cryptography`'s Ed25519 with
    // the same seed, and `model_signing` 1.1.1's own `pae()`), which `model_signing` then read back with
    // `Signature.read` and `dsse_payload_to_manifest`: Ed25519 signatures are deterministic.
    assert_eq!(bundle, GOLDEN_BUNDLE);
}

const GOLDEN_BUNDLE: &str = r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"a57b2e0aae5fb2e01af2edbcbaccd7efca7cae89a162e7835ed4461880665709"},"tlogEntries":[]},"dsseEnvelope":{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJzdWJqZWN0IjpbeyJuYW1lIjoidGlueS1tb2RlbCIsImRpZ2VzdCI6eyJzaGEyNTYiOiIyOWFlYjVmYjY0Yjg3ZGQ2Nzc1ODVlNjllYTI2MGNmM2YyNDkwNDE4NTZiNTY0YzFiMjYxYTY4YzBmNDQwNTk5In19XSwicHJlZGljYXRlVHlwZSI6Imh0dHBzOi8vbW9kZWxfc2lnbmluZy9zaWduYXR1cmUvdjEuMCIsInByZWRpY2F0ZSI6eyJyZXNvdXJjZXMiOlt7ImFsZ29yaXRobSI6InNoYTI1NiIsIm5hbWUiOiJhLnR4dCIsImRpZ2VzdCI6IjU4OTFiNWI1MjJkNWRmMDg2ZDBmZjBiMTEwZmJkOWQyMWJiNGZjNzE2M2FmMzRkMDgyODZhMmU4NDZmNmJlMDMifSx7ImFsZ29yaXRobSI6InNoYTI1NiIsIm5hbWUiOiJzdWIvYi5iaW4iLCJkaWdlc3QiOiJhZTRiMzI4MGU1NmUyZmFmODNmNDE0YTZlM2RhYmU5ZDVmYmUxODk3NjU0NGMwNWZlZDEyMWFjY2I4NWI1M2ZjIn1dLCJzZXJpYWxpemF0aW9uIjp7ImFsbG93X3N5bWxpbmtzIjpmYWxzZSwibWV0aG9kIjoiZmlsZXMiLCJoYXNoX3R5cGUiOiJzaGEyNTYiLCJpZ25vcmVfcGF0aHMiOlsiLmdpdCIsIi5naXRhdHRyaWJ1dGVzIiwiLmdpdGh1YiIsIi5naXRpZ25vcmUiXX19fQ==","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"DAtZZJsOj/xPMbVaFCl3mPidj8poDFj+CAzCm2U23b399QISeVsKmfWhE95PsJA++LCyd0qmpVY+hAnkMCB2Cw==","keyid":""}]}}"#;

/// A bundle written by the real OpenSSF tool, `model_signing` 1.1.1 (pip), with an EC P-256 key:
///
/// ```sh
/// mkdir -p m/a/b m/.git; printf deep > m/a/b/deep.bin; printf x > m/a/x; printf dash > m/a-b
/// printf dot > m/.hidden; printf '*.tmp' > m/.gitignore; printf g > m/.git/o
/// openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt > ec.pem
/// model_signing sign key m --private_key ec.pem --signature m/model.sig --ignore-paths m/a-b
/// ```
const MODEL_SIGNING_EC_BUNDLE: &str = r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"679309c51f7c9bdc0edb7ce8d4fd17a6c840ff492049390cee09681551d55bf0"},"tlogEntries":[]},"dsseEnvelope":{"payload":"ewogICJfdHlwZSI6ICJodHRwczovL2luLXRvdG8uaW8vU3RhdGVtZW50L3YxIiwKICAic3ViamVjdCI6IFsKICAgIHsKICAgICAgIm5hbWUiOiAibSIsCiAgICAgICJkaWdlc3QiOiB7CiAgICAgICAgInNoYTI1NiI6ICJiMzBkZjFhOWVmOWZjODgzYmZjYmY4NzU2MTMzYWM1OWFkM2ZlYjcyNjc1N2ZmMjcxNjY3NTA4OTBkNDVlNjI1IgogICAgICB9CiAgICB9CiAgXSwKICAicHJlZGljYXRlVHlwZSI6ICJodHRwczovL21vZGVsX3NpZ25pbmcvc2lnbmF0dXJlL3YxLjAiLAogICJwcmVkaWNhdGUiOiB7CiAgICAic2VyaWFsaXphdGlvbiI6IHsKICAgICAgImFsbG93X3N5bWxpbmtzIjogZmFsc2UsCiAgICAgICJpZ25vcmVfcGF0aHMiOiBbCiAgICAgICAgImEtYiIsCiAgICAgICAgIi5naXRodWIiLAogICAgICAgICIuZ2l0IiwKICAgICAgICAiLmdpdGF0dHJpYnV0ZXMiLAogICAgICAgICIuZ2l0aWdub3JlIiwKICAgICAgICAibW9kZWwuc2lnIgogICAgICBdLAogICAgICAiaGFzaF90eXBlIjogInNoYTI1NiIsCiAgICAgICJtZXRob2QiOiAiZmlsZXMiCiAgICB9LAogICAgInJlc291cmNlcyI6IFsKICAgICAgewogICAgICAgICJhbGdvcml0aG0iOiAic2hhMjU2IiwKICAgICAgICAibmFtZSI6ICIuaGlkZGVuIiwKICAgICAgICAiZGlnZXN0IjogImUzOTJkYWQ4YjA4NTk5Zjc0ZDQ4MTljZDI5MWZlZWY4MWFiNDM4OWUwYTZmYWUyYjEyODZmOTk0MTFiMGM3Y2EiCiAgICAgIH0sCiAgICAgIHsKICAgICAgICAiYWxnb3JpdGhtIjogInNoYTI1NiIsCiAgICAgICAgIm5hbWUiOiAiYS9iL2RlZXAuYmluIiwKICAgICAgICAiZGlnZXN0IjogIjc0NjExYzFkNjQ1NWI1MzQzMjNhMjFmODEzM2E2ZjQzZGMzYTgxODhlN2I5NDZmOTZkY2MyOGRkZTkzMmZjYjIiCiAgICAgIH0sCiAgICAgIHsKICAgICAgICAiYWxnb3JpdGhtIjogInNoYTI1NiIsCiAgICAgICAgIm5hbWUiOiAiYS94IiwKICAgICAgICAiZGlnZXN0IjogIjJkNzExNjQyYjcyNmIwNDQwMTYyN2NhOWZiYWMzMmY1Yzg1MzBmYjE5MDNjYzRkYjAyMjU4NzE3OTIxYTQ4ODEiCiAgICAgIH0KICAgIF0KICB9Cn0=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEUCIF7/olJA6ULEwHCVAaXzmReumjYqczpH5L6GnA9IewpAAiEAk2pzIo+TmZxM8sa7O5REOHgS0pszMRqVRIWsP1EUcVo=","keyid":""}]}}"#;

fn model_signing_tree(root: &Path) -> PathBuf {
    let m = root.join("m");
    fs::create_dir_all(m.join("a/b")).unwrap();
    fs::create_dir_all(m.join(".git")).unwrap();
    fs::write(m.join("a/b/deep.bin"), b"deep").unwrap();
    fs::write(m.join("a/x"), b"x").unwrap();
    fs::write(m.join("a-b"), b"dash").unwrap();
    fs::write(m.join(".hidden"), b"dot").unwrap();
    fs::write(m.join(".gitignore"), b"*.tmp").unwrap();
    fs::write(m.join(".git/o"), b"g").unwrap();
    fs::write(m.join("model.sig"), MODEL_SIGNING_EC_BUNDLE).unwrap();
    m
}

#[test]
fn ec_bundle_from_model_signing_is_read_and_refused_clearly() {
    let d = tempfile::tempdir().unwrap();
    let (_, pk) = keys(d.path(), "k");
    let trusted = vec![read_verifying_key(&pk).unwrap()];
    let e = sig_reason(
        verify_bundle(MODEL_SIGNING_EC_BUNDLE, Path::new("m/model.sig"), &trusted).unwrap_err(),
    );
    assert!(
        e.contains("unsupported key type") && e.contains("ECDSA") && e.contains("m/model.sig"),
        "{e}"
    );
    // Through verify_path as well.
    let m = model_signing_tree(d.path());
    let e = verify_path(&m, &m.join("model.sig"), &[pk], &HashOptions::default()).unwrap_err();
    assert!(sig_reason(e).contains("unsupported key type"));
}

#[test]
fn our_manifest_matches_model_signing_for_the_same_tree() {
    let d = tempfile::tempdir().unwrap();
    let m = model_signing_tree(d.path());
    let opts = HashOptions {
        ignore: vec!["a-b".into()],
        signature_file: Some(m.join("model.sig")),
        ..HashOptions::default()
    };
    let ours = manifest::build(&m, &opts, &none).unwrap();
    let theirs = payload_of(MODEL_SIGNING_EC_BUNDLE);
    assert_eq!(theirs["subject"][0]["name"], ours.model_name.as_str());
    assert_eq!(
        theirs["subject"][0]["digest"]["sha256"],
        hex::encode(manifest::subject_digest(&ours.resources)).as_str()
    );
    let their_resources: Vec<(String, String)> = theirs["predicate"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["algorithm"], "sha256");
            (
                r["name"].as_str().unwrap().to_string(),
                r["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let our_resources: Vec<(String, String)> = ours
        .resources
        .iter()
        .map(|r| (r.name.clone(), hex::encode(r.digest)))
        .collect();
    assert_eq!(our_resources, their_resources);
    let mut their_ignores: Vec<String> = theirs["predicate"]["serialization"]["ignore_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    their_ignores.sort();
    assert_eq!(ours.ignore_paths, their_ignores);

    // Their single-file layout: `model_signing sign key m/a/x` gives one resource "." and this subject.
    let single = manifest::build(&m.join("a/x"), &HashOptions::default(), &none).unwrap();
    assert_eq!(single.resources[0].name, ".");
    assert_eq!(single.ignore_paths, manifest::DEFAULT_IGNORES);
    assert_eq!(
        hex::encode(manifest::subject_digest(&single.resources)),
        "0a325ca303eb3014c43ae004970f343634db176fa1697bcc8c9efac94626488d"
    );
}

#[test]
fn v1_0_raw_bytes_public_key_form_is_accepted() {
    let d = tempfile::tempdir().unwrap();
    let m = model_dir(d.path());
    let (sk_path, pk) = keys(d.path(), "k");
    let sk = signing_key::read_signing_key(&sk_path).unwrap();
    let manifest = manifest::build(&m, &HashOptions::default(), &none).unwrap();
    let good = signature::sign(&manifest, &sk).unwrap();
    let trusted = vec![read_verifying_key(&pk).unwrap()];
    let spki_der = {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        sk.verifying_key().to_public_key_der().unwrap().into_vec()
    };
    let mut b: Value = serde_json::from_str(&good).unwrap();
    b["verificationMaterial"]["publicKey"] = json!({"rawBytes": STANDARD.encode(&spki_der)});
    b["dsseEnvelope"]["signatures"][0]
        .as_object_mut()
        .unwrap()
        .remove("keyid");
    let sig = Path::new("old.sig");
    assert!(verify_bundle(&b.to_string(), sig, &trusted).is_ok());
    b["dsseEnvelope"]["signatures"][0]["keyid"] = Value::Null;
    assert!(verify_bundle(&b.to_string(), sig, &trusted).is_ok());

    // rawBytes naming another Ed25519 key, and an EC key.
    let other = SigningKey::from_bytes(&[3u8; 32]);
    let other_der = {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        other
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .into_vec()
    };
    b["verificationMaterial"]["publicKey"] = json!({"rawBytes": STANDARD.encode(&other_der)});
    let e = sig_reason(verify_bundle(&b.to_string(), sig, &trusted).unwrap_err());
    assert!(e.contains("none of the trusted keys"), "{e}");
    b["verificationMaterial"]["publicKey"] = json!({"rawBytes": STANDARD.encode(EC_SPKI_PEM)});
    let e = sig_reason(verify_bundle(&b.to_string(), sig, &trusted).unwrap_err());
    assert!(e.contains("unsupported key type"), "{e}");
    // A keyless (certificate) bundle.
    b["verificationMaterial"] = json!({"certificate": {"rawBytes": "AAAA"}});
    let e = sig_reason(verify_bundle(&b.to_string(), sig, &trusted).unwrap_err());
    assert!(e.contains("keyless"), "{e}");
}

/// The public half of the EC key that made [`MODEL_SIGNING_EC_BUNDLE`].
const EC_SPKI_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPaS7YTddHSFqxcbg15R3MVSlqsL+
EpD7AmGx5g5PaznFe26ubxAWmO2WIQmKKHrxmfp0e7ugFfUhHQwMf2vppA==
-----END PUBLIC KEY-----
";

#[test]
fn ec_public_key_hint_matches_model_signing() {
    // model_signing's hint is sha256 of the PEM text; the fixture was made with this key.
    let b: Value = serde_json::from_str(MODEL_SIGNING_EC_BUNDLE).unwrap();
    assert_eq!(
        b["verificationMaterial"]["publicKey"]["hint"],
        key_hint(EC_SPKI_PEM).as_str()
    );
}

#[cfg(unix)]
#[test]
fn private_key_permissions_are_enforced() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let m = model_dir(d.path());
    let (sk, _) = keys(d.path(), "k");
    assert_eq!(
        fs::metadata(&sk).unwrap().permissions().mode() & 0o777,
        0o600
    );
    fs::set_permissions(&sk, fs::Permissions::from_mode(0o644)).unwrap();
    let sig = default_signature_path(&m);
    let e = signature::sign_path(&m, &sk, &sig, &HashOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("chmod 600"), "{e}");
    assert!(!sig.exists(), "no signature is written with a refused key");
    fs::set_permissions(&sk, fs::Permissions::from_mode(0o600)).unwrap();
    signature::sign_path(&m, &sk, &sig, &HashOptions::default()).unwrap();
    assert!(sig.exists());
}

#[test]
fn oversized_bundle_and_missing_signature_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (_, pk) = keys(d.path(), "k");
    let trusted = vec![read_verifying_key(&pk).unwrap()];
    let huge = " ".repeat(signature::MAX_BUNDLE_BYTES as usize + 1);
    let e = sig_reason(verify_bundle(&huge, Path::new("big.sig"), &trusted).unwrap_err());
    assert!(e.contains("larger than"), "{e}");
    let m = model_dir(d.path());
    let e = verify_path(&m, &m.join("model.sig"), &[pk], &HashOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.sig"), "{e}");
}

/// Hashing throughput on a directory named by `AEGIS_HASH_BENCH_DIR` (for `bench/`; prints MiB/s, asserts
/// nothing). Run with `AEGIS_HASH_BENCH_DIR=/path cargo test -p aegis-vault --test signature -- --ignored
/// --nocapture hashing_throughput`.
#[test]
#[ignore = "benchmark: needs AEGIS_HASH_BENCH_DIR"]
fn hashing_throughput() {
    let Ok(dir) = std::env::var("AEGIS_HASH_BENCH_DIR") else {
        eprintln!("AEGIS_HASH_BENCH_DIR not set; nothing measured");
        return;
    };
    let start = std::time::Instant::now();
    let m = manifest::build(Path::new(&dir), &HashOptions::default(), &none).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 = m.resources.iter().map(|r| r.size).sum();
    eprintln!(
        "{} files, {bytes} bytes in {secs:.3} s: {:.0} MiB/s",
        m.resources.len(),
        bytes as f64 / secs / (1024.0 * 1024.0)
    );
}

/// A model signed with its symbolic links followed records `allow_symlinks: true`, and verification honours it
/// without the verifier having to know; a model signed without links still refuses one added later.
#[cfg(unix)]
#[test]
fn the_signed_symlink_choice_is_honoured_on_verification() {
    let dir = tempfile::tempdir().unwrap();
    let m = model_dir(dir.path());
    fs::write(dir.path().join("outside.bin"), b"shared weights").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.bin"), m.join("shared.bin")).unwrap();
    let (sk, pk) = keys(dir.path(), "k");
    let sig = dir.path().join("model.sig");
    let with_links = HashOptions {
        allow_symlinks: true,
        ..HashOptions::default()
    };
    signature::sign_path(&m, &sk, &sig, &with_links).unwrap();
    let bundle = fs::read_to_string(&sig).unwrap();
    assert_eq!(
        payload_of(&bundle)["predicate"]["serialization"]["allow_symlinks"],
        true
    );
    let v = verify_path(&m, &sig, std::slice::from_ref(&pk), &HashOptions::default()).unwrap();
    assert!(v.is_ok(), "{:?}", v.diff);
    // The linked file is covered: changing its target is a modification.
    fs::write(dir.path().join("outside.bin"), b"other weights").unwrap();
    let v = verify_path(&m, &sig, std::slice::from_ref(&pk), &HashOptions::default()).unwrap();
    assert_eq!(v.diff.modified, ["shared.bin"]);
    // Signed without links: the link is refused at signing, and one added after signing fails verification.
    fs::remove_file(m.join("shared.bin")).unwrap();
    signature::sign_path(&m, &sk, &sig, &HashOptions::default()).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.bin"), m.join("late.bin")).unwrap();
    assert!(verify_path(&m, &sig, &[pk], &HashOptions::default()).is_err());
}
