//! Content-addressed files: every stored model or dataset file lives once under `objects/ab/abcdef…`, named by
//! its SHA-256, so a version is its hash and two assets sharing a file share its bytes.
//!
//! Files are streamed in with a size bound and hashed as they are written to a temporary file in the same
//! directory, which is renamed into place only when complete: a crash or an oversized upload leaves no object.
//! Nothing here parses a file; checks read objects through the pillar crates, which treat them as untrusted.
//! A directory (a SavedModel, a Hugging Face folder) is stored file by file, and its version hash is the SHA-256
//! of its manifest: one `sha256  relative/path` line per file, sorted by path.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Largest file stored unless the caller gives another bound (models of a small business fit well below it).
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// Most files a directory asset may hold.
pub const MAX_DIR_FILES: usize = 100_000;

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
}

impl ObjectWriter {
    /// Start a new object under `data_dir`, refusing more than `max` bytes.
    pub fn new(data_dir: &Path, max: u64) -> Result<ObjectWriter> {
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
        })
    }

    /// Append bytes; an error past the bound (the temporary file is removed).
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.size += bytes.len() as u64;
        if self.size > self.max {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::Invalid(format!(
                "the file is larger than the {} byte limit; raise [store] max_upload_bytes if this is expected",
                self.max
            )));
        }
        self.hasher.update(bytes);
        match self.file.as_mut() {
            Some(file) => file.write_all(bytes).map_err(Error::io("write", &self.tmp)),
            None => Err(Error::Invalid("the upload was finished already".into())),
        }
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
        if !dest.exists() {
            let parent = dest.parent().unwrap_or(&self.data_dir);
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
            std::fs::rename(&tmp, &dest).map_err(Error::io("store", &dest))?;
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
pub fn put_file(data_dir: &Path, path: &Path, max: u64) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(Error::io("read", path))?;
    let mut writer = ObjectWriter::new(data_dir, max)?;
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
pub fn put_dir(data_dir: &Path, dir: &Path, max: u64) -> Result<Vec<StoredFile>> {
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
                let (sha256, size) = put_file(data_dir, &path, max)?;
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
pub fn materialize(data_dir: &Path, files: &[StoredFile], dest: &Path) -> Result<()> {
    for f in files {
        let rel = Path::new(&f.path);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::Corrupt(format!(
                "stored path {} is not a plain relative path",
                f.path
            )));
        }
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        let object = object_path(data_dir, &f.sha256);
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
        let (ha, sa) = put_file(&data, &a, 100).unwrap();
        let (hb, _) = put_file(&data, &b, 100).unwrap();
        assert_eq!(ha, hb);
        assert_eq!(sa, 5);
        assert_eq!(
            ha,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(object_path(&data, &ha).is_file());
        let err = put_file(&data, &a, 4).unwrap_err().to_string();
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
        let files = put_dir(&data, &model, 100).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].path, "variables/v.index");
        let h1 = manifest_hash(&files);
        let out = dir.path().join("out");
        materialize(&data, &files, &out).unwrap();
        assert_eq!(std::fs::read(out.join("variables/v.index")).unwrap(), b"ix");
        std::fs::write(model.join("saved_model.pb"), b"pb2").unwrap();
        assert_ne!(manifest_hash(&put_dir(&data, &model, 100).unwrap()), h1);
        let evil = vec![StoredFile {
            path: "../x".into(),
            sha256: files[0].sha256.clone(),
            size: 2,
        }];
        assert!(materialize(&data, &evil, &out).is_err());
        assert!(put_dir(&data, &dir.path().join("empty_missing"), 10).is_err());
    }
}
