//! Trust policy: which keys may sign the models a team runs, and the findings `aegis scan` and `aegis vault
//! verify` report when a model is unsigned, signed by no trusted key, or differs from what was signed.
//!
//! A policy is a list of trusted Ed25519 public keys (PEM files), given with `--trusted-key` or a TOML file
//! (`trusted_keys = ["keys/release.pub"]`, paths relative to the policy file). Where a target's signature lives
//! follows [`signature::default_signature_path`]: `DIR/model.sig` for a directory, `FILE.sig` for a single file, as the
//! OpenSSF model-signing tool names it (`model.sig`) for its usual target, a model directory.

use std::path::{Path, PathBuf};

use aegis_core::{Finding, Location, RuleDoc, Severity};
use serde::Deserialize;
use serde_json::json;

use crate::manifest::HashOptions;
use crate::signature::{self, Verification};
use crate::Error;

const ATLAS_SUPPLY_CHAIN: &[&str] = &["AML.T0010.003"];

/// No signature was found for a model while a trust policy is configured.
pub const UNSIGNED: RuleDoc = RuleDoc {
    id: "AEG-VAULT-001",
    name: "unsigned-model",
    severity: Severity::High,
    summary: "Model is not signed, but a trust policy requires signatures",
    why: "Without a signature nothing ties the file to the people who built and reviewed it: a model swapped on \
          disk, in a bucket or in a registry is as good as a poisoned model, and nobody can tell.",
    fix: "Sign the model where it is built (`aegis vault sign PATH --key release.key`), ship the signature with \
          it, and verify before use (`aegis vault verify PATH --key release.key.pub`).",
    atlas: ATLAS_SUPPLY_CHAIN,
    cwe: &[345],
};

/// The signature is malformed, or made by no trusted key.
pub const BAD_SIGNATURE: RuleDoc = RuleDoc {
    id: "AEG-VAULT-002",
    name: "untrusted-signature",
    severity: Severity::Critical,
    summary: "Model signature is invalid or made by an untrusted key",
    why: "A signature that does not verify with a trusted key proves nothing, and a forged or altered one is a \
          sign that someone tried to pass the file off as reviewed.",
    fix: "Do not run the model. Obtain it again from its publisher, check which key signed it, and add that key \
          to the trust policy only if it really is the publisher's.",
    atlas: ATLAS_SUPPLY_CHAIN,
    cwe: &[347],
};

/// Files differ from the signed manifest.
pub const MANIFEST_MISMATCH: RuleDoc = RuleDoc {
    id: "AEG-VAULT-003",
    name: "manifest-mismatch",
    severity: Severity::Critical,
    summary: "Model files differ from their signed manifest",
    why: "The signature is good but the files are not the ones that were signed: a file was changed, removed or \
          added after signing, which is exactly what tampering looks like.",
    fix: "Do not run the model. Compare the listed files with a known-good copy; re-sign only after the change is \
          understood and approved.",
    atlas: ATLAS_SUPPLY_CHAIN,
    cwe: &[354],
};

/// The rules of this module, for `aegis rules` and SARIF.
pub const RULES: &[RuleDoc] = &[UNSIGNED, BAD_SIGNATURE, MANIFEST_MISMATCH];

/// Largest policy file read.
const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Which keys may sign models.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustPolicy {
    /// Trusted Ed25519 public keys (PEM files).
    pub trusted_keys: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    trusted_keys: Vec<PathBuf>,
}

impl TrustPolicy {
    /// Read a policy file (TOML with `trusted_keys`, relative paths resolved against the file's directory).
    pub fn load(path: &Path) -> Result<TrustPolicy, Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.len() > MAX_POLICY_BYTES {
            return Err(Error::Invalid(format!(
                "{}: trust policy larger than {MAX_POLICY_BYTES} bytes",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file: PolicyFile = toml::from_str(&text).map_err(|e| {
            Error::Invalid(format!(
                "{}: not a trust policy (`trusted_keys = [\"release.pub\"]`): {}",
                path.display(),
                e.message()
            ))
        })?;
        if file.trusted_keys.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: trusted_keys is empty; a policy that trusts nobody fails every model",
                path.display()
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(TrustPolicy {
            trusted_keys: file
                .trusted_keys
                .into_iter()
                .map(|k| if k.is_absolute() { k } else { base.join(k) })
                .collect(),
        })
    }

    /// Whether the policy asks for anything.
    pub fn is_configured(&self) -> bool {
        !self.trusted_keys.is_empty()
    }

    /// The findings for one scan target: none when it verifies, else one per kind of problem. A failure of the
    /// tool rather than of the model (a trusted key or a file that cannot be read) is an `Err`, not a finding.
    pub fn check(&self, target: &Path, signature: Option<&Path>) -> Result<Vec<Finding>, Error> {
        let sig = signature.map_or_else(
            || signature::default_signature_path(target),
            Path::to_path_buf,
        );
        let location = Location::file(target.display().to_string());
        if !sig.exists() {
            return Ok(vec![Finding::new(
                &UNSIGNED,
                location,
                format!("no signature at {}", sig.display()),
            )
            .with_evidence(json!({ "signature": sig.display().to_string() }))]);
        }
        let opts = HashOptions {
            signature_file: Some(sig.clone()),
            ..HashOptions::default()
        };
        match signature::verify_path(target, &sig, &self.trusted_keys, &opts) {
            Ok(v) => Ok(verification_findings(target, &sig, &v)),
            Err(e @ (Error::Io { .. } | Error::Key { .. })) => Err(e),
            Err(e) => Ok(vec![Finding::new(&BAD_SIGNATURE, location, e.to_string())
                .with_evidence(json!({ "signature": sig.display().to_string() }))]),
        }
    }
}

/// A finding when the files differ from the signed manifest (none when they match).
pub fn verification_findings(target: &Path, sig: &Path, v: &Verification) -> Vec<Finding> {
    if v.diff.is_empty() {
        return Vec::new();
    }
    let d = &v.diff;
    let mut parts = Vec::new();
    for (what, names) in [
        ("modified", &d.modified),
        ("missing", &d.missing),
        ("not signed", &d.extra),
    ] {
        if !names.is_empty() {
            parts.push(format!("{what}: {}", names.join(", ")));
        }
    }
    vec![Finding::new(
        &MANIFEST_MISMATCH,
        Location::file(target.display().to_string()),
        parts.join("; "),
    )
    .with_evidence(json!({
        "signature": sig.display().to_string(),
        "key_hint": v.key_hint,
        "modified": d.modified,
        "missing": d.missing,
        "extra": d.extra,
    }))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_files_resolve_relative_keys_and_refuse_nonsense() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trust.toml");
        std::fs::write(
            &p,
            "# who may sign\ntrusted_keys = [\n  \"keys/release.pub\", # CI\n  \"/abs/other.pub\"\n]\n",
        )
        .unwrap();
        let policy = TrustPolicy::load(&p).unwrap();
        assert_eq!(
            policy.trusted_keys,
            vec![
                dir.path().join("keys/release.pub"),
                PathBuf::from("/abs/other.pub")
            ]
        );
        assert!(policy.is_configured());
        for bad in [
            "trusted_keys = []\n",
            "keys = [\"a\"]\n",
            "trusted_keys = \"a\"\n",
        ] {
            std::fs::write(&p, bad).unwrap();
            let e = TrustPolicy::load(&p).unwrap_err().to_string();
            assert!(e.contains("trust.toml"), "{bad}: {e}");
        }
        assert!(!TrustPolicy::default().is_configured());
    }

    #[test]
    fn an_unsigned_model_is_a_finding() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.onnx");
        std::fs::write(&f, b"model").unwrap();
        let policy = TrustPolicy {
            trusted_keys: vec![dir.path().join("k.pub")],
        };
        let findings = policy.check(&f, None).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].rule.as_str(), "AEG-VAULT-001");
    }
}
