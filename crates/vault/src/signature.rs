//! Signed manifests in the OpenSSF model-signing layout (sigstore/model-transparency, `model_signing` v1.1),
//! with offline Ed25519 keys.
//!
//! A signature file (`model.sig` by default) is a Sigstore bundle (v0.3 JSON) whose `dsseEnvelope` carries an
//! in-toto v1 statement: one subject (the model's name and the SHA-256 over its resource digests) and a
//! `https://model_signing/signature/v1.0` predicate listing every file's SHA-256 and how files were selected
//! ("files" serialization). The DSSE pre-authentication encoding (PAE) of the statement is signed with Ed25519;
//! `verificationMaterial.publicKey.hint` is the hex SHA-256 of the signer's public key PEM, as `model_signing`
//! computes it, so their tools can read our files (though their key-based verifier only accepts EC keys).
//!
//! Verification checks the signature over the *decoded payload bytes* (never a re-serialisation), then the
//! statement's types, then recomputes the subject digest from the listed resources, and only then compares the
//! resources with the files on disk, naming every modified, missing and extra file. Bundles are untrusted input:
//! at most [`MAX_BUNDLE_BYTES`], every failure an [`Error::Signature`] naming the file and what is wrong.
//!
//! Where signatures live by default ([`default_signature_path`]): `DIR/model.sig` inside a model directory (as
//! `model_signing` does; it is excluded from hashing), and `FILE.sig` beside a single-file model (a file cannot
//! contain its signature).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::manifest::{self, Diff, HashOptions, Manifest, Resource};
use crate::signing_key::{self, key_hint};
use crate::Error;

/// Default name of the signature file inside a model directory.
pub const DEFAULT_SIGNATURE_FILE: &str = "model.sig";
/// Largest signature bundle read.
pub const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;
/// Most signatures in one DSSE envelope that are tried.
const MAX_SIGNATURES: usize = 16;

const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const ACCEPTED_MEDIA_TYPES: &[&str] = &[
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];
const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

/// Where the signature of `model` goes by default: `DIR/model.sig` for a directory, `FILE.sig` for a file.
pub fn default_signature_path(model: &Path) -> PathBuf {
    if model.is_dir() {
        model.join(DEFAULT_SIGNATURE_FILE)
    } else {
        let mut name = model.as_os_str().to_owned();
        name.push(".sig");
        PathBuf::from(name)
    }
}

// ---- Output layout (field order is the order written) ----

#[derive(Serialize)]
struct BundleOut<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    #[serde(rename = "verificationMaterial")]
    verification_material: VerificationMaterialOut,
    #[serde(rename = "dsseEnvelope")]
    dsse_envelope: EnvelopeOut<'a>,
}

#[derive(Serialize)]
struct VerificationMaterialOut {
    #[serde(rename = "publicKey")]
    public_key: PublicKeyOut,
    #[serde(rename = "tlogEntries")]
    tlog_entries: [(); 0],
}

#[derive(Serialize)]
struct PublicKeyOut {
    hint: String,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: &'a str,
    signatures: [SignatureOut<'a>; 1],
}

#[derive(Serialize)]
struct SignatureOut<'a> {
    sig: String,
    keyid: &'a str,
}

#[derive(Serialize)]
struct StatementOut<'a> {
    #[serde(rename = "_type")]
    type_: &'a str,
    subject: [SubjectOut<'a>; 1],
    #[serde(rename = "predicateType")]
    predicate_type: &'a str,
    predicate: PredicateOut<'a>,
}

#[derive(Serialize)]
struct SubjectOut<'a> {
    name: &'a str,
    digest: Sha256Out,
}

#[derive(Serialize)]
struct Sha256Out {
    sha256: String,
}

#[derive(Serialize)]
struct PredicateOut<'a> {
    resources: Vec<ResourceOut<'a>>,
    serialization: SerializationOut<'a>,
}

#[derive(Serialize)]
struct ResourceOut<'a> {
    algorithm: &'a str,
    name: &'a str,
    digest: String,
}

#[derive(Serialize)]
struct SerializationOut<'a> {
    allow_symlinks: bool,
    method: &'a str,
    hash_type: &'a str,
    ignore_paths: &'a [String],
}

// ---- Input layout (lenient about fields we do not use) ----

#[derive(Deserialize)]
struct BundleIn {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "verificationMaterial")]
    verification_material: Option<VerificationMaterialIn>,
    #[serde(rename = "dsseEnvelope")]
    dsse_envelope: Option<EnvelopeIn>,
}

#[derive(Deserialize)]
struct VerificationMaterialIn {
    #[serde(rename = "publicKey")]
    public_key: Option<PublicKeyIn>,
}

#[derive(Deserialize)]
struct PublicKeyIn {
    hint: Option<String>,
    #[serde(rename = "rawBytes")]
    raw_bytes: Option<String>,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<SignatureIn>,
}

#[derive(Deserialize)]
struct SignatureIn {
    sig: String,
}

#[derive(Deserialize)]
struct StatementIn {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<SubjectIn>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: PredicateIn,
}

#[derive(Deserialize)]
struct SubjectIn {
    name: String,
    digest: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct PredicateIn {
    resources: Vec<ResourceIn>,
    serialization: SerializationIn,
}

#[derive(Deserialize)]
struct ResourceIn {
    algorithm: String,
    name: String,
    digest: String,
}

#[derive(Deserialize)]
struct SerializationIn {
    method: String,
    hash_type: Option<String>,
    #[serde(default)]
    ignore_paths: Vec<String>,
    #[serde(default)]
    allow_symlinks: bool,
}

/// The DSSE v1 pre-authentication encoding of a payload: what is actually signed.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The in-toto statement of a manifest, as bytes (the DSSE payload).
fn statement_bytes(manifest: &Manifest) -> Result<Vec<u8>, Error> {
    let allow_symlinks = manifest.allow_symlinks;
    let statement = StatementOut {
        type_: STATEMENT_TYPE,
        subject: [SubjectOut {
            name: &manifest.model_name,
            digest: Sha256Out {
                sha256: hex::encode(manifest::subject_digest(&manifest.resources)),
            },
        }],
        predicate_type: PREDICATE_TYPE,
        predicate: PredicateOut {
            resources: manifest
                .resources
                .iter()
                .map(|r| ResourceOut {
                    algorithm: "sha256",
                    name: &r.name,
                    digest: hex::encode(r.digest),
                })
                .collect(),
            serialization: SerializationOut {
                allow_symlinks,
                method: "files",
                hash_type: "sha256",
                ignore_paths: &manifest.ignore_paths,
            },
        },
    };
    serde_json::to_vec(&statement)
        .map_err(|e| Error::Invalid(format!("cannot serialise the manifest statement: {e}")))
}

/// Sign a manifest: the Sigstore bundle JSON text (one line, no trailing newline). The statement records the
/// manifest's `allow_symlinks`.
pub fn sign(manifest: &Manifest, key: &SigningKey) -> Result<String, Error> {
    let payload = statement_bytes(manifest)?;
    let signature = key.sign(&pae(PAYLOAD_TYPE, &payload));
    let pem = signing_key::public_pem(&key.verifying_key())?;
    let bundle = BundleOut {
        media_type: BUNDLE_MEDIA_TYPE,
        verification_material: VerificationMaterialOut {
            public_key: PublicKeyOut {
                hint: key_hint(&pem),
            },
            tlog_entries: [],
        },
        dsse_envelope: EnvelopeOut {
            payload: STANDARD.encode(&payload),
            payload_type: PAYLOAD_TYPE,
            signatures: [SignatureOut {
                sig: STANDARD.encode(signature.to_bytes()),
                keyid: "",
            }],
        },
    };
    serde_json::to_string(&bundle)
        .map_err(|e| Error::Invalid(format!("cannot serialise the signature bundle: {e}")))
}

/// Hash the model at `path`, sign its manifest with the Ed25519 private key in `key_file`, and write the bundle
/// to `signature` atomically (a temporary file beside it, renamed when complete; an older signature is
/// replaced). The signature file is excluded from hashing; choose its location with
/// [`default_signature_path`]. Returns the signed manifest.
pub fn sign_path(
    path: &Path,
    key_file: &Path,
    signature: &Path,
    opts: &HashOptions,
) -> Result<Manifest, Error> {
    let key = signing_key::read_signing_key(key_file)?;
    let opts = HashOptions {
        signature_file: Some(signature.to_path_buf()),
        ..opts.clone()
    };
    let manifest = manifest::build(path, &opts, &|_| {})?;
    let bundle = sign(&manifest, &key)?;
    write_atomic(signature, bundle.as_bytes())?;
    Ok(manifest)
}

fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".aegis-sig-")
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    {
        // A signature is public: readable by the service that verifies it.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// The outcome of verifying a model whose signature is good.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The manifest that was signed (resource sizes are 0: bundles do not record them).
    pub signed: Manifest,
    /// How the files on disk differ from it.
    pub diff: Diff,
    /// Hint (hex SHA-256 of the PEM) of the trusted key that verified the signature.
    pub key_hint: String,
}

impl Verification {
    /// Whether the signature is good and the files are exactly those signed.
    pub fn is_ok(&self) -> bool {
        self.diff.is_empty()
    }
}

/// Check a signature bundle (signature, statement, subject digest) against trusted keys (each a key and its PEM
/// text, as [`signing_key::read_verifying_key`] returns it), and return the signed manifest. Does not look at the
/// model's files; see [`verify_path`].
pub fn verify_bundle(
    bundle_json: &str,
    bundle_path: &Path,
    keys: &[(VerifyingKey, String)],
) -> Result<Manifest, Error> {
    verify_bundle_inner(bundle_json, bundle_path, keys).map(|(m, _)| m)
}

/// [`verify_bundle`], also returning the hint of the trusted key that verified the signature.
pub fn verify_bundle_signer(
    bundle_json: &str,
    bundle_path: &Path,
    keys: &[(VerifyingKey, String)],
) -> Result<(Manifest, String), Error> {
    verify_bundle_inner(bundle_json, bundle_path, keys)
}

fn sig_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Signature {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Hints a trusted key answers to: that of its PEM text as given and of its canonical PEM.
fn hints_of(key: &VerifyingKey, pem: &str) -> Vec<String> {
    let mut hints = vec![key_hint(pem)];
    if let Ok(canonical) = signing_key::public_pem(key) {
        hints.push(key_hint(&canonical));
    }
    hints
}

fn verify_bundle_inner(
    bundle_json: &str,
    path: &Path,
    keys: &[(VerifyingKey, String)],
) -> Result<(Manifest, String), Error> {
    if bundle_json.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(sig_err(
            path,
            format!("larger than {MAX_BUNDLE_BYTES} bytes; not a model signature"),
        ));
    }
    if keys.is_empty() {
        return Err(sig_err(path, "no trusted public key to verify with"));
    }
    let bundle: BundleIn = serde_json::from_str(bundle_json)
        .map_err(|e| sig_err(path, format!("not a Sigstore bundle (JSON): {e}")))?;
    match bundle.media_type.as_deref() {
        Some(m) if ACCEPTED_MEDIA_TYPES.contains(&m) => {}
        Some(m) => {
            return Err(sig_err(
                path,
                format!("bad mediaType {m:?}: expected {BUNDLE_MEDIA_TYPE:?}"),
            ))
        }
        None => return Err(sig_err(path, "not a Sigstore bundle: no mediaType")),
    }
    let public_key = bundle
        .verification_material
        .and_then(|v| v.public_key)
        .ok_or_else(|| {
            sig_err(
                path,
                "no verificationMaterial.publicKey: certificate (keyless) Sigstore bundles are not supported, only \
                 bundles signed with a public key",
            )
        })?;
    let envelope = bundle.dsse_envelope.ok_or_else(|| {
        sig_err(
            path,
            "no dsseEnvelope: only DSSE-signed in-toto statements (the model-signing layout) are supported",
        )
    })?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(sig_err(
            path,
            format!(
                "payloadType {:?} is not {PAYLOAD_TYPE:?}",
                envelope.payload_type
            ),
        ));
    }
    let payload = STANDARD
        .decode(envelope.payload.as_bytes())
        .map_err(|e| sig_err(path, format!("bad base64 in dsseEnvelope.payload: {e}")))?;
    if envelope.signatures.is_empty() {
        return Err(sig_err(path, "the envelope holds no signature"));
    }
    if envelope.signatures.len() > MAX_SIGNATURES {
        return Err(sig_err(
            path,
            format!("more than {MAX_SIGNATURES} signatures in the envelope"),
        ));
    }
    let mut signatures = Vec::with_capacity(envelope.signatures.len());
    for (i, s) in envelope.signatures.iter().enumerate() {
        let bytes = STANDARD
            .decode(s.sig.as_bytes())
            .map_err(|e| sig_err(path, format!("bad base64 in signature {i}: {e}")))?;
        match <[u8; 64]>::try_from(bytes.as_slice()) {
            Ok(b) => signatures.push(Signature::from_bytes(&b)),
            Err(_) => {
                let kind = if bytes.first() == Some(&0x30) {
                    " (an ASN.1 DER signature: ECDSA, as `model_signing` makes with EC keys)"
                } else {
                    ""
                };
                return Err(sig_err(
                    path,
                    format!(
                        "unsupported key type: signature {i} is {} bytes{kind}, not a 64-byte Ed25519 signature; it \
                         does not verify with any trusted key",
                        bytes.len()
                    ),
                ));
            }
        }
    }

    // Narrow the trusted keys to the one the bundle names, if it names one.
    let mut candidates: Vec<usize> = (0..keys.len()).collect();
    if let Some(raw) = public_key.raw_bytes.as_deref().filter(|s| !s.is_empty()) {
        let bytes = STANDARD
            .decode(raw.as_bytes())
            .map_err(|e| sig_err(path, format!("bad base64 in publicKey.rawBytes: {e}")))?;
        let named = parse_public_key(&bytes).ok_or_else(|| {
            sig_err(
                path,
                "unsupported key type: publicKey.rawBytes is not an Ed25519 public key; it does not verify with \
                 any trusted key",
            )
        })?;
        candidates.retain(|&i| keys[i].0 == named);
        if candidates.is_empty() {
            return Err(sig_err(
                path,
                "signed by a public key that is none of the trusted keys",
            ));
        }
    }
    if let Some(hint) = public_key.hint.as_deref().filter(|s| !s.is_empty()) {
        candidates.retain(|&i| hints_of(&keys[i].0, &keys[i].1).iter().any(|h| h == hint));
        if candidates.is_empty() {
            return Err(sig_err(
                path,
                format!(
                    "key hint mismatch: signed by the key with hint {hint}, which is none of the {} trusted key(s)",
                    keys.len()
                ),
            ));
        }
    }

    let message = pae(PAYLOAD_TYPE, &payload);
    let verified = candidates.iter().copied().find(|&i| {
        signatures
            .iter()
            .any(|s| keys[i].0.verify_strict(&message, s).is_ok())
    });
    let Some(index) = verified else {
        return Err(sig_err(
            path,
            format!(
                "bad signature: it does not verify with any trusted key ({} tried); the signature or the signed \
                 manifest was altered, or another key signed it",
                candidates.len()
            ),
        ));
    };
    let manifest = parse_statement(&payload, path)?;
    Ok((manifest, key_hint(&keys[index].1)))
}

/// An Ed25519 public key from SPKI DER or PEM bytes.
fn parse_public_key(bytes: &[u8]) -> Option<VerifyingKey> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    if let Ok(k) = VerifyingKey::from_public_key_der(bytes) {
        return Some(k);
    }
    let text = std::str::from_utf8(bytes).ok()?;
    VerifyingKey::from_public_key_pem(text).ok()
}

/// The manifest of a verified statement: types, resource algorithms and names, and the subject digest checked.
fn parse_statement(payload: &[u8], path: &Path) -> Result<Manifest, Error> {
    let st: StatementIn = serde_json::from_slice(payload).map_err(|e| {
        sig_err(
            path,
            format!("the signed payload is not an in-toto statement: {e}"),
        )
    })?;
    if st.type_ != STATEMENT_TYPE {
        return Err(sig_err(
            path,
            format!(
                "unknown statement type {:?} (expected {STATEMENT_TYPE:?})",
                st.type_
            ),
        ));
    }
    if st.predicate_type != PREDICATE_TYPE {
        return Err(sig_err(
            path,
            format!(
                "unknown predicate type {:?} (expected {PREDICATE_TYPE:?})",
                st.predicate_type
            ),
        ));
    }
    let ser = &st.predicate.serialization;
    if ser.method != "files" {
        return Err(sig_err(
            path,
            format!(
                "serialization method {:?} is not supported (only \"files\": one SHA-256 per file)",
                ser.method
            ),
        ));
    }
    if let Some(h) = ser.hash_type.as_deref().filter(|h| *h != "sha256") {
        return Err(sig_err(
            path,
            format!("hash type {h:?} is not supported (only sha256)"),
        ));
    }
    let [subject] = st.subject.as_slice() else {
        return Err(sig_err(
            path,
            format!(
                "the statement has {} subjects; a model signature has exactly one",
                st.subject.len()
            ),
        ));
    };
    if st.predicate.resources.len() > manifest::MAX_FILES {
        return Err(sig_err(
            path,
            format!("more than {} resources", manifest::MAX_FILES),
        ));
    }
    let mut resources = Vec::with_capacity(st.predicate.resources.len());
    let mut seen = std::collections::BTreeSet::new();
    for r in &st.predicate.resources {
        if r.algorithm != "sha256" {
            return Err(sig_err(
                path,
                format!(
                    "resource {:?}: algorithm {:?} is not sha256",
                    r.name, r.algorithm
                ),
            ));
        }
        if r.name.is_empty() || !seen.insert(r.name.as_str()) {
            return Err(sig_err(
                path,
                format!("resource name {:?} is empty or listed twice", r.name),
            ));
        }
        resources.push(Resource {
            name: r.name.clone(),
            digest: parse_digest(&r.digest).ok_or_else(|| {
                sig_err(
                    path,
                    format!(
                        "resource {:?}: digest is not 64 hex digits of SHA-256",
                        r.name
                    ),
                )
            })?,
            size: 0,
        });
    }
    let claimed = subject
        .digest
        .get("sha256")
        .and_then(|d| parse_digest(d))
        .ok_or_else(|| sig_err(path, "the subject has no sha256 digest"))?;
    if claimed != manifest::subject_digest(&resources) {
        return Err(sig_err(
            path,
            "subject digest mismatch: the subject digest is not the SHA-256 of the listed resource digests",
        ));
    }
    Ok(Manifest {
        model_name: subject.name.clone(),
        resources,
        ignore_paths: ser.ignore_paths.clone(),
        allow_symlinks: ser.allow_symlinks,
    })
}

fn parse_digest(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Verify the model at `path` against the signature file `signature` with any of the trusted public keys in
/// `key_files`: signature first, then re-hash the files (applying the signed manifest's ignore paths as well as
/// `opts.ignore`, and excluding the signature file) and compare. A bad signature is an error; differing files
/// are reported in [`Verification::diff`].
pub fn verify_path(
    path: &Path,
    signature: &Path,
    key_files: &[PathBuf],
    opts: &HashOptions,
) -> Result<Verification, Error> {
    if key_files.is_empty() {
        return Err(Error::Invalid(
            "no trusted public key given to verify with".into(),
        ));
    }
    let keys = key_files
        .iter()
        .map(|k| signing_key::read_verifying_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut text = String::new();
    std::fs::File::open(signature)
        .and_then(|f| f.take(MAX_BUNDLE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => {
                sig_err(signature, "not UTF-8 text: not a signature bundle")
            }
            _ => Error::io(signature, e),
        })?;
    let (signed, hint) = verify_bundle_inner(&text, signature, &keys)?;
    let mut ignore = opts.ignore.clone();
    // Signed ignore paths are trusted; any that could not name a path inside the model is skipped, which only
    // makes the comparison stricter.
    ignore.extend(
        signed
            .ignore_paths
            .iter()
            .filter(|p| is_plain_relative(p))
            .cloned(),
    );
    let hash_opts = HashOptions {
        ignore,
        // The signer's choice holds: a model signed with its symbolic links followed is verified the same way.
        allow_symlinks: opts.allow_symlinks || signed.allow_symlinks,
        signature_file: Some(signature.to_path_buf()),
    };
    let actual = manifest::build(path, &hash_opts, &|_| {})?;
    let diff = manifest::compare(&signed, &actual);
    Ok(Verification {
        signed,
        diff,
        key_hint: hint,
    })
}

fn is_plain_relative(p: &str) -> bool {
    let path = Path::new(p);
    path.components().any(|c| matches!(c, Component::Normal(_)))
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn manifest() -> Manifest {
        Manifest {
            model_name: "m".into(),
            resources: vec![Resource {
                name: "w".into(),
                digest: [1u8; 32],
                size: 3,
            }],
            ignore_paths: vec![".git".into()],
            allow_symlinks: false,
        }
    }

    fn trusted(k: &SigningKey) -> Vec<(VerifyingKey, String)> {
        let vk = k.verifying_key();
        vec![(vk, signing_key::public_pem(&vk).unwrap())]
    }

    #[test]
    fn pae_matches_dsse_spec() {
        assert_eq!(
            pae(PAYLOAD_TYPE, b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}".to_vec()
        );
    }

    #[test]
    fn sign_then_verify_bundle() {
        let k = key();
        let bundle = sign(&manifest(), &k).unwrap();
        let m = verify_bundle(&bundle, Path::new("model.sig"), &trusted(&k)).unwrap();
        assert_eq!(m.resources[0].digest, [1u8; 32]);
        assert_eq!(m.model_name, "m");
        assert_eq!(m.ignore_paths, [".git"]);
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let e = verify_bundle(&bundle, Path::new("model.sig"), &trusted(&other))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.sig") && e.contains("hint mismatch"),
            "{e}"
        );
    }

    #[test]
    fn bad_media_type_and_oversize_are_refused() {
        let k = key();
        let bundle = sign(&manifest(), &k).unwrap().replace("v0.3", "v9.9");
        let e = verify_bundle(&bundle, Path::new("s"), &trusted(&k)).unwrap_err();
        assert!(e.to_string().contains("bad mediaType"), "{e}");
        let e = verify_bundle("{", Path::new("s"), &trusted(&k)).unwrap_err();
        assert!(matches!(e, Error::Signature { .. }), "{e}");
    }
}
