//! Content-addressed files: every stored model or dataset file lives once under `objects/ab/abcdef…`, named by
//! its SHA-256, so a version is its hash and two assets sharing a file share its bytes.
//!
//! Files are streamed in with a size bound and hashed as they are written to a temporary file in the same
//! directory, which is renamed into place only when complete: a crash or an oversized upload leaves no object.
//! Nothing here parses a file; checks read objects through the pillar crates, which treat them as untrusted.
//! A directory (a SavedModel, a Hugging Face folder) is stored file by file, and its version hash is the SHA-256
//! of its manifest: one `sha256  relative/path` line per file, sorted by path.
//!
//! With [`AtRest`], objects are stored encrypted (age, X25519, through the vault crate) as `…/SHA.age`: the
//! name is still the plaintext's hash, and a check decrypts into its private work directory. A store can hold
//! both kinds (encryption turned on later); plaintext objects stay readable.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Largest file stored unless the caller gives another bound (models of a small business fit well below it).
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// Most files a directory asset may hold.
pub const MAX_DIR_FILES: usize = 100_000;

/// Encryption at rest: the identity whose recipient objects are encrypted to, and which decrypts them.
#[derive(Clone)]
pub struct AtRest {
    identities: aegis_vault::keys::Identities,
    recipients: Vec<String>,
}

impl std::fmt::Debug for AtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtRest")
            .field("recipients", &self.recipients)
            .finish()
    }
}

impl AtRest {
    /// Read the age identity file at `path`, creating it (owner-only) when absent.
    pub fn load_or_create(path: &Path) -> Result<AtRest> {
        if !path.exists() {
            aegis_vault::keys::write_identity_file(path).map_err(|e| {
                Error::Invalid(format!("creating the objects key {}: {e}", path.display()))
            })?;
        }
        let identities = aegis_vault::keys::Identities::read_file(path).map_err(|e| {
            Error::Invalid(format!("reading the objects key {}: {e}", path.display()))
        })?;
        let recipients = identities.recipients();
        if recipients.is_empty() {
            return Err(Error::Invalid(format!(
                "{} holds no age identity",
                path.display()
            )));
        }
        Ok(AtRest {
            identities,
            recipients,
        })
    }

    fn encrypt(&self, plain: &Path, sealed: &Path) -> Result<()> {
        let to = aegis_vault::crypt::EncryptTo::Recipients(self.recipients.clone());
        aegis_vault::crypt::encrypt_file(&to, false, plain, sealed)
            .map(|_| ())
            .map_err(|e| Error::Invalid(format!("encrypting {}: {e}", sealed.display())))
    }

    fn decrypt(&self, sealed: &Path, plain: &Path) -> Result<()> {
        let with = aegis_vault::crypt::DecryptWith::Identities(self.identities.clone());
        aegis_vault::crypt::decrypt_file(&with, sealed, plain)
            .map(|_| ())
            .map_err(|e| Error::Corrupt(format!("decrypting {}: {e}", sealed.display())))
    }
}

/// Objects are never written after they are complete: read-only, so a check's hard link cannot change them.
fn read_only(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400));
    }
    #[cfg(not(unix))]
    {
        let _ = path;
    }
}

fn sealed_path(plain: &Path) -> PathBuf {
    let mut name = plain.as_os_str().to_os_string();
    name.push(".age");
    PathBuf::from(name)
}

/// One stored file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// Path relative to the asset's root (`/`-separated); for a single-file asset, its file name.
    pub path: String,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The objects directory under `data_dir`.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("objects")
}

/// Where the object with this hash lives.
pub fn object_path(data_dir: &Path, sha256: &str) -> PathBuf {
    let (head, _) = sha256.split_at(2.min(sha256.len()));
    root(data_dir).join(head).join(sha256)
}

/// A file being written into the store: bytes go to a temporary file and into the hash.
#[derive(Debug)]
pub struct ObjectWriter {
    data_dir: PathBuf,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    hasher: Sha256,
    size: u64,
    max: u64,
    at_rest: Option<AtRest>,
}

impl ObjectWriter {
    /// Start a new object under `data_dir`, refusing more than `max` bytes; encrypted when `at_rest` is given.
    pub fn new(data_dir: &Path, max: u64, at_rest: Option<&AtRest>) -> Result<ObjectWriter> {
        let dir = root(data_dir).join("tmp");
        std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        let tmp = dir.join(crate::ids::new_id("upload"));
        let file = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
        Ok(ObjectWriter {
            data_dir: data_dir.to_path_buf(),
            tmp,
            file: Some(std::io::BufWriter::new(file)),
            hasher: Sha256::new(),
            size: 0,
            max,
            at_rest: at_rest.cloned(),
        })
    }

    /// Append bytes; an error past the bound (the temporary file is removed).
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.size += bytes.len() as u64;
        if self.size > self.max {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::Invalid(format!(
                "the file is larger than the {} byte limit; raise [checks] max_upload_mib in aegis.toml if this is expected",
                self.max
            )));
        }
        self.hasher.update(bytes);
        match self.file.as_mut() {
            Some(file) => file.write_all(bytes).map_err(Error::io("write", &self.tmp)),
            None => Err(Error::Invalid("the upload was finished already".into())),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.size
    }

    /// Complete the object: its hash and size. An object that exists already is kept (same bytes).
    pub fn finish(mut self) -> Result<(String, u64)> {
        let tmp = self.tmp.clone();
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::Invalid("the upload was finished already".into()))?
            .into_inner()
            .map_err(|e| Error::io("write", &tmp)(e.into_error()))?;
        file.sync_all().map_err(Error::io("sync", &tmp))?;
        drop(file);
        let sha = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let dest = object_path(&self.data_dir, &sha);
        let sealed = sealed_path(&dest);
        if !dest.exists() && !sealed.exists() {
            let parent = dest.parent().unwrap_or(&self.data_dir);
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
            match &self.at_rest {
                // A concurrent upload of the same bytes may have sealed it first: that copy is as good.
                Some(at_rest) => match at_rest.encrypt(&tmp, &sealed) {
                    Err(_) if sealed.is_file() => {}
                    other => other?,
                },
                None => std::fs::rename(&tmp, &dest).map_err(Error::io("store", &dest))?,
            }
            read_only(if dest.exists() { &dest } else { &sealed });
        }
        // An object with these bytes existed already: the temporary copy is removed by `drop`.
        Ok((sha, self.size))
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // After `finish` the temporary file is gone; otherwise (an error, an abandoned upload) remove it.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Store one file: its hash and size.
pub fn put_file(
    data_dir: &Path,
    path: &Path,
    max: u64,
    at_rest: Option<&AtRest>,
) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(Error::io("read", path))?;
    let mut writer = ObjectWriter::new(data_dir, max, at_rest)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(Error::io("read", path))?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n]).map_err(|e| match e {
            Error::Invalid(why) => Error::Invalid(format!("{}: {why}", path.display())),
            other => other,
        })?;
    }
    writer.finish()
}

/// Store a directory file by file (symbolic links are not followed: a link could point anywhere).
pub fn put_dir(
    data_dir: &Path,
    dir: &Path,
    max: u64,
    at_rest: Option<&AtRest>,
) -> Result<Vec<StoredFile>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(Error::io("read", &d))?;
        for entry in entries {
            let entry = entry.map_err(Error::io("read", &d))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(Error::io("read", &path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                if files.len() >= MAX_DIR_FILES {
                    return Err(Error::Invalid(format!(
                        "{} holds more than {MAX_DIR_FILES} files; register the model's own directory",
                        dir.display()
                    )));
                }
                let rel = relative(dir, &path)?;
                let (sha256, size) = put_file(data_dir, &path, max, at_rest)?;
                files.push(StoredFile {
                    path: rel,
                    sha256,
                    size,
                });
            }
        }
    }
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no files; nothing to register",
            dir.display()
        )));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The version hash of a directory: SHA-256 of its sorted manifest.
pub fn manifest_hash(files: &[StoredFile]) -> String {
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.sha256.as_bytes());
        hasher.update(b"  ");
        hasher.update(f.path.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

fn relative(root: &Path, path: &Path) -> Result<String> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| Error::Invalid(format!("{} is outside {}", path.display(), root.display())))?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}

/// Lay a version's files out under `dest` with their names (hard links where the file system allows, copies
/// otherwise), so a check reads `dest/model.onnx` or `dest/saved_model/…` as the user named them. Paths that
/// would leave `dest` are refused.
pub fn materialize(
    data_dir: &Path,
    files: &[StoredFile],
    dest: &Path,
    at_rest: Option<&AtRest>,
) -> Result<()> {
    for f in files {
        let rel = Path::new(&f.path);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::Corrupt(format!(
                "stored path {} is not a plain relative path",
                f.path
            )));
        }
        let target = dest.join(rel);
        if target.exists() {
            return Err(Error::Corrupt(format!(
                "{} would be laid out twice in {} (two stored files with one name)",
                f.path,
                dest.display()
            )));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        let object = object_path(data_dir, &f.sha256);
        let sealed = sealed_path(&object);
        if sealed.is_file() {
            let at_rest = at_rest.ok_or_else(|| {
                Error::Invalid(format!(
                    "{} is encrypted at rest and no objects key is configured ([checks] encrypt_objects)",
                    f.path
                ))
            })?;
            at_rest.decrypt(&sealed, &target)?;
            continue;
        }
        if !object.is_file() {
            return Err(Error::NotFound(format!(
                "the stored file {} ({}) is missing from {}; restore the data directory from a backup",
                f.path,
                f.sha256,
                root(data_dir).display()
            )));
        }
        if std::fs::hard_link(&object, &target).is_err() {
            std::fs::copy(&object, &target).map_err(Error::io("copy", &target))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_same_object_and_bound_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        let b = dir.path().join("b.bin");
        std::fs::write(&a, b"hello").unwrap();
        std::fs::write(&b, b"hello").unwrap();
        let data = dir.path().join("data");
        let (ha, sa) = put_file(&data, &a, 100, None).unwrap();
        let (hb, _) = put_file(&data, &b, 100, None).unwrap();
        assert_eq!(ha, hb);
        assert_eq!(sa, 5);
        assert_eq!(
            ha,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(object_path(&data, &ha).is_file());
        let err = put_file(&data, &a, 4, None).unwrap_err().to_string();
        assert!(err.contains("a.bin") && err.contains("limit"), "{err}");
        // No temporary file is left behind by the refused upload.
        let left: Vec<_> = std::fs::read_dir(root(&data).join("tmp"))
            .unwrap()
            .collect();
        assert!(left.is_empty());
    }

    #[test]
    fn directories_round_trip_and_hash_by_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m");
        std::fs::create_dir_all(model.join("variables")).unwrap();
        std::fs::write(model.join("saved_model.pb"), b"pb").unwrap();
        std::fs::write(model.join("variables/v.index"), b"ix").unwrap();
        let data = dir.path().join("data");
        let files = put_dir(&data, &model, 100, None).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].path, "variables/v.index");
        let h1 = manifest_hash(&files);
        let out = dir.path().join("out");
        materialize(&data, &files, &out, None).unwrap();
        assert_eq!(std::fs::read(out.join("variables/v.index")).unwrap(), b"ix");
        std::fs::write(model.join("saved_model.pb"), b"pb2").unwrap();
        assert_ne!(
            manifest_hash(&put_dir(&data, &model, 100, None).unwrap()),
            h1
        );
        let evil = vec![StoredFile {
            path: "../x".into(),
            sha256: files[0].sha256.clone(),
            size: 2,
        }];
        assert!(materialize(&data, &evil, &out, None).is_err());
        assert!(put_dir(&data, &dir.path().join("empty_missing"), 10, None).is_err());
    }

    #[test]
    fn encrypted_objects_hold_no_plaintext_and_decrypt_for_checks() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let key = data.join("objects.agekey");
        let at_rest = AtRest::load_or_create(&key).unwrap();
        let plain = dir.path().join("model.onnx");
        let secret = b"weights that must not leak 0123456789".repeat(100);
        std::fs::write(&plain, &secret).unwrap();
        let (sha, size) = put_file(&data, &plain, 1 << 20, Some(&at_rest)).unwrap();
        assert_eq!(size, secret.len() as u64);
        let object = object_path(&data, &sha);
        assert!(!object.exists(), "no plaintext object");
        let stored = std::fs::read(sealed_path(&object)).unwrap();
        assert!(stored.starts_with(b"age-encryption.org/v1"));
        assert!(!stored.windows(20).any(|w| w == &secret[..20]));
        let files = vec![StoredFile {
            path: "model.onnx".into(),
            sha256: sha.clone(),
            size,
        }];
        let out = dir.path().join("work");
        materialize(&data, &files, &out, Some(&at_rest)).unwrap();
        assert_eq!(std::fs::read(out.join("model.onnx")).unwrap(), secret);
        // Without the key the check is told what is missing; another key cannot decrypt.
        let err = materialize(&data, &files, &dir.path().join("w2"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("encrypt_objects"), "{err}");
        let other = AtRest::load_or_create(&dir.path().join("other.agekey")).unwrap();
        assert!(materialize(&data, &files, &dir.path().join("w3"), Some(&other)).is_err());
        // The same content stored again is the same object, still encrypted.
        assert_eq!(
            put_file(&data, &plain, 1 << 20, Some(&at_rest)).unwrap().0,
            sha
        );
    }
}
