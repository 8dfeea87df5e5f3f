//! Manifests: the SHA-256 of every file of a model directory, a dataset or a single file, hashed in parallel.
//!
//! This is the "files" serialization of OpenSSF model-signing (sigstore/model-transparency): every regular file
//! under the model root is hashed whole with SHA-256 and recorded under its relative POSIX path; directories are
//! not recorded (an empty directory is invisible); a model that is a single file is one resource named `.`.
//! Resources are sorted component by component, as Python's `sorted()` orders `PurePosixPath`s, so the subject
//! digest ([`subject_digest`]) matches theirs. Ignored by default at the model root: `.git`, `.gitattributes`,
//! `.github`, `.gitignore`, and the signature file itself; an ignore path also ignores everything below it.
//!
//! The model root is followed even when it is a symbolic link (the user named it). Below it the walk is bounded
//! ([`MAX_FILES`], [`MAX_DEPTH`]); symbolic links are refused unless allowed (then followed,
//! still within those bounds), and other special files (FIFOs, sockets, devices) are always refused, since reading
//! them could block or never end. Each file is streamed through a 1 MiB buffer, one rayon task per file, so
//! memory is constant per worker whatever the file sizes; `sha2` picks SHA-NI/AVX2 code at run time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use rayon::prelude::*;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::Error;

/// Most files a manifest may hold.
pub const MAX_FILES: usize = 1_000_000;
/// Deepest directory nesting walked below the model root.
pub const MAX_DEPTH: usize = 64;
/// Most directories walked (with symbolic links allowed, two links to `.` would otherwise branch at every
/// level up to [`MAX_DEPTH`]).
pub const MAX_DIRECTORIES: usize = 100_000;
/// Paths at the model root ignored by default (as OpenSSF model-signing ignores them).
pub const DEFAULT_IGNORES: &[&str] = &[".git", ".gitattributes", ".github", ".gitignore"];
/// Read buffer per hashing task.
const BUF_BYTES: usize = 1 << 20;

/// One file of a model: its relative POSIX path (`.` for a single-file model), SHA-256 and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Relative POSIX path under the model root, or `.` when the model is a single file.
    pub name: String,
    /// SHA-256 of the file's content.
    pub digest: [u8; 32],
    /// Size in bytes; 0 when the resource was read from a signature (the bundle does not record sizes).
    pub size: u64,
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Resource", 3)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("digest", &hex::encode(self.digest))?;
        s.serialize_field("size", &self.size)?;
        s.end()
    }
}

/// The files of a model and how they were selected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// Last component of the model path (the in-toto subject name).
    pub model_name: String,
    /// The files, sorted by path components.
    pub resources: Vec<Resource>,
    /// Paths (relative to the model root, POSIX) that were ignored, sorted.
    pub ignore_paths: Vec<String>,
    /// Whether symbolic links were followed when hashing (recorded in the signature and honoured on
    /// verification).
    pub allow_symlinks: bool,
}

/// How a model is hashed.
#[derive(Debug, Clone, Default)]
pub struct HashOptions {
    /// Paths to ignore, relative to the model root (an absolute path must lie inside the model root). A directory
    /// ignores everything below it.
    pub ignore: Vec<String>,
    /// Follow symbolic links instead of refusing them.
    pub allow_symlinks: bool,
    /// The signature file, ignored when it lies inside the model directory.
    pub signature_file: Option<PathBuf>,
}

/// How the files of a model differ from its signed manifest (names as in the manifest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Files present in both whose content changed.
    pub modified: Vec<String>,
    /// Signed files that are gone.
    pub missing: Vec<String>,
    /// Files that were not signed.
    pub extra: Vec<String>,
}

impl Diff {
    /// Whether the files are exactly those signed.
    pub fn is_empty(&self) -> bool {
        self.modified.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compare a signed manifest with the manifest of the files on disk, by resource name and digest.
pub fn compare(signed: &Manifest, actual: &Manifest) -> Diff {
    let actual_map: BTreeMap<&str, &[u8; 32]> = actual
        .resources
        .iter()
        .map(|r| (r.name.as_str(), &r.digest))
        .collect();
    let signed_names: BTreeSet<&str> = signed.resources.iter().map(|r| r.name.as_str()).collect();
    let mut diff = Diff::default();
    for r in &signed.resources {
        match actual_map.get(r.name.as_str()) {
            Some(d) if **d == r.digest => {}
            Some(_) => diff.modified.push(r.name.clone()),
            None => diff.missing.push(r.name.clone()),
        }
    }
    diff.extra = actual
        .resources
        .iter()
        .filter(|r| !signed_names.contains(r.name.as_str()))
        .map(|r| r.name.clone())
        .collect();
    diff
}

/// The in-toto subject digest: SHA-256 over the raw 32-byte resource digests concatenated in resource order.
pub fn subject_digest(resources: &[Resource]) -> [u8; 32] {
    let mut h = Sha256::new();
    for r in resources {
        h.update(r.digest);
    }
    h.finalize().into()
}

/// Hash the model at `path` (a directory or a single file), calling `progress` with the number of bytes read as
/// hashing goes (from several threads).
pub fn build(
    path: &Path,
    opts: &HashOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Manifest, Error> {
    // The root is followed even when it is a symbolic link: the user named it.
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let model_name = model_name(path);
    if meta.is_file() {
        // Nothing can be ignored inside a file, but the ignore paths are recorded as model_signing does.
        let ignores = ignore_set(path, opts)?;
        let (digest, size) = hash_file(path, &mut vec![0u8; BUF_BYTES], progress)?;
        return Ok(Manifest {
            model_name,
            resources: vec![Resource {
                name: ".".into(),
                digest,
                size,
            }],
            ignore_paths: ignores.iter().map(|c| c.join("/")).collect(),
            allow_symlinks: opts.allow_symlinks,
        });
    }
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: not a regular file or directory",
            path.display()
        )));
    }
    let ignores = ignore_set(path, opts)?;
    let files = walk(path, &ignores, opts.allow_symlinks)?;
    let hashed: Vec<([u8; 32], u64)> = files
        .par_iter()
        .map_init(
            || vec![0u8; BUF_BYTES],
            |buf, (_, full)| hash_file(full, buf, progress),
        )
        .collect::<Result<_, Error>>()?;
    let resources = files
        .into_iter()
        .zip(hashed)
        .map(|((components, _), (digest, size))| Resource {
            name: components.join("/"),
            digest,
            size,
        })
        .collect();
    Ok(Manifest {
        model_name,
        resources,
        ignore_paths: ignores.iter().map(|c| c.join("/")).collect(),
        allow_symlinks: opts.allow_symlinks,
    })
}

/// The last component of the model path, resolving `.` and `..` when needed.
fn model_name(path: &Path) -> String {
    if let Some(n) = path.file_name() {
        return n.to_string_lossy().into_owned();
    }
    std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// Ignore paths as component lists relative to the model root, sorted and without duplicates.
fn ignore_set(root: &Path, opts: &HashOptions) -> Result<BTreeSet<Vec<String>>, Error> {
    let mut set: BTreeSet<Vec<String>> = DEFAULT_IGNORES
        .iter()
        .map(|s| vec![s.to_string()])
        .collect();
    let canon_root = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
    for s in &opts.ignore {
        let p = Path::new(s);
        let rel = if p.is_absolute() {
            let canon = canonical_maybe_missing(p);
            match canon.strip_prefix(&canon_root) {
                Ok(rel) => rel.to_path_buf(),
                Err(_) => {
                    return Err(Error::Invalid(format!(
                        "ignore path {s:?} is outside the model directory {}",
                        root.display()
                    )))
                }
            }
        } else {
            p.to_path_buf()
        };
        let components = relative_components(&rel).ok_or_else(|| {
            Error::Invalid(format!(
                "ignore path {s:?} must name a path inside the model directory {} (no `..`, not the root)",
                root.display()
            ))
        })?;
        set.insert(components);
    }
    if let Some(sig) = &opts.signature_file {
        let canon = canonical_maybe_missing(sig);
        if let Ok(rel) = canon.strip_prefix(&canon_root) {
            if let Some(c) = relative_components(rel) {
                set.insert(c);
            }
        }
    }
    Ok(set)
}

/// `p` canonicalised, or its parent canonicalised joined with its name when `p` does not exist yet.
fn canonical_maybe_missing(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            std::fs::canonicalize(parent)
                .map(|c| c.join(name))
                .unwrap_or_else(|_| p.to_path_buf())
        }
        _ => p.to_path_buf(),
    }
}

/// The normal components of a relative path (`./` dropped); `None` for `..`, an absolute path, a non-UTF-8
/// component or an empty path.
fn relative_components(p: &Path) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(n) => out.push(n.to_str()?.to_string()),
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

fn is_ignored(components: &[String], ignores: &BTreeSet<Vec<String>>) -> bool {
    (1..=components.len()).any(|n| ignores.contains(&components[..n]))
}

/// Every regular file under `root` not ignored, as (components, full path), sorted by components.
fn walk(
    root: &Path,
    ignores: &BTreeSet<Vec<String>>,
    allow_symlinks: bool,
) -> Result<Vec<(Vec<String>, PathBuf)>, Error> {
    let mut files = Vec::new();
    let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(root.to_path_buf(), Vec::new())];
    let mut directories = 0usize;
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let full = entry.path();
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: file name is not UTF-8 and cannot be recorded in a manifest",
                    full.display()
                ))
            })?;
            let mut components = prefix.clone();
            components.push(name.to_string());
            if is_ignored(&components, ignores) {
                continue;
            }
            let mut file_type = entry.file_type().map_err(|e| Error::io(&full, e))?;
            if file_type.is_symlink() {
                if !allow_symlinks {
                    return Err(Error::Invalid(format!(
                        "{}: is a symbolic link; refusing to follow it (allow symbolic links to hash its target)",
                        full.display()
                    )));
                }
                file_type = std::fs::metadata(&full)
                    .map_err(|e| Error::io(&full, e))?
                    .file_type();
            }
            if file_type.is_dir() {
                directories += 1;
                if directories > MAX_DIRECTORIES {
                    return Err(Error::Invalid(format!(
                        "{}: more than {MAX_DIRECTORIES} directories (a symbolic link loop?)",
                        root.display()
                    )));
                }
                if components.len() > MAX_DEPTH {
                    return Err(Error::Invalid(format!(
                        "{}: more than {MAX_DEPTH} nested directories (a symbolic link loop?)",
                        full.display()
                    )));
                }
                stack.push((full, components));
            } else if file_type.is_file() {
                if files.len() >= MAX_FILES {
                    return Err(Error::Invalid(format!(
                        "{}: more than {MAX_FILES} files; refusing to build such a manifest",
                        root.display()
                    )));
                }
                files.push((components, full));
            } else {
                return Err(Error::Invalid(format!(
                    "{}: not a regular file or directory (FIFO, socket or device); refusing to read it",
                    full.display()
                )));
            }
        }
    }
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// SHA-256 and size of a file, streamed through `buf`.
fn hash_file(
    path: &Path,
    buf: &mut [u8],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<([u8; 32], u64), Error> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        h.update(&buf[..n]);
        size += n as u64;
        progress(n as u64);
    }
    Ok((h.finalize().into(), size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    fn none(_: u64) {}

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::create_dir_all(r.join(".git/objects")).unwrap();
        fs::create_dir_all(r.join("empty")).unwrap();
        fs::write(r.join("a/b/deep.bin"), b"deep").unwrap();
        fs::write(r.join("a-b"), b"dash").unwrap();
        fs::write(r.join("a/x"), b"x").unwrap();
        fs::write(r.join(".hidden"), b"dot").unwrap();
        fs::write(r.join(".gitignore"), b"*.tmp").unwrap();
        fs::write(r.join(".git/objects/o"), b"git").unwrap();
        fs::write(r.join("model.sig"), b"old signature").unwrap();
        d
    }

    #[test]
    fn walks_sorts_by_components_and_ignores_defaults() {
        let d = tree();
        let opts = HashOptions {
            signature_file: Some(d.path().join("model.sig")),
            ..HashOptions::default()
        };
        let total = std::sync::atomic::AtomicU64::new(0);
        let m = build(d.path(), &opts, &|n| {
            total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        let names: Vec<&str> = m.resources.iter().map(|r| r.name.as_str()).collect();
        // Component order puts "a/..." before "a-b" (a plain string sort would not).
        assert_eq!(names, [".hidden", "a/b/deep.bin", "a/x", "a-b"]);
        assert_eq!(m.resources[1].digest, sha(b"deep"));
        assert_eq!(m.resources[1].size, 4);
        assert_eq!(total.into_inner(), 3 + 4 + 1 + 4);
        assert_eq!(
            m.ignore_paths,
            [
                ".git",
                ".gitattributes",
                ".github",
                ".gitignore",
                "model.sig"
            ]
        );
        // Without the signature option the old signature is an ordinary file.
        let m2 = build(d.path(), &HashOptions::default(), &none).unwrap();
        assert!(m2.resources.iter().any(|r| r.name == "model.sig"));
    }

    #[test]
    fn user_ignores_cover_subtrees_and_refuse_escapes() {
        let d = tree();
        let opts = HashOptions {
            ignore: vec!["./a/b".into(), d.path().join("a-b").display().to_string()],
            ..HashOptions::default()
        };
        let m = build(d.path(), &opts, &none).unwrap();
        let names: Vec<&str> = m.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, [".hidden", "a/x", "model.sig"]);
        assert!(m.ignore_paths.contains(&"a/b".to_string()));
        assert!(m.ignore_paths.contains(&"a-b".to_string()));
        for bad in ["../x", ".", "/etc"] {
            let opts = HashOptions {
                ignore: vec![bad.into()],
                ..HashOptions::default()
            };
            let e = build(d.path(), &opts, &none).unwrap_err().to_string();
            assert!(e.contains("ignore path"), "{bad}: {e}");
        }
    }

    #[test]
    fn single_file_is_one_resource_named_dot() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("w.safetensors");
        fs::write(&f, b"weights").unwrap();
        let m = build(&f, &HashOptions::default(), &none).unwrap();
        assert_eq!(m.model_name, "w.safetensors");
        assert_eq!(m.resources.len(), 1);
        assert_eq!(m.resources[0].name, ".");
        assert_eq!(m.resources[0].digest, sha(b"weights"));
        assert_eq!(m.ignore_paths, DEFAULT_IGNORES);
        // Empty file.
        fs::write(&f, b"").unwrap();
        let m = build(&f, &HashOptions::default(), &none).unwrap();
        assert_eq!(m.resources[0].digest, sha(b""));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_refused_unless_allowed_and_fifos_refused() {
        let d = tree();
        std::os::unix::fs::symlink(d.path().join("a/x"), d.path().join("link")).unwrap();
        let e = build(d.path(), &HashOptions::default(), &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link") && e.contains("link"), "{e}");
        let opts = HashOptions {
            allow_symlinks: true,
            ..HashOptions::default()
        };
        let m = build(d.path(), &opts, &none).unwrap();
        let link = m.resources.iter().find(|r| r.name == "link").unwrap();
        assert_eq!(link.digest, sha(b"x"));
        // A symlink loop is stopped by the depth bound.
        fs::remove_file(d.path().join("link")).unwrap();
        std::os::unix::fs::symlink(d.path(), d.path().join("a/loop")).unwrap();
        let e = build(d.path(), &opts, &none).unwrap_err().to_string();
        assert!(e.contains("nested directories"), "{e}");
        // Two links back to the root branch at every level: stopped by the directory count long before
        // 2^64 visits.
        std::os::unix::fs::symlink(d.path(), d.path().join("a/loop2")).unwrap();
        let e = build(d.path(), &opts, &none).unwrap_err().to_string();
        assert!(e.contains("directories (a symbolic link loop?)"), "{e}");
        fs::remove_file(d.path().join("a/loop2")).unwrap();
        fs::remove_file(d.path().join("a/loop")).unwrap();
        // A FIFO would block a reader forever: refused, never opened.
        let fifo = d.path().join("a/pipe");
        if std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success())
        {
            let e = build(d.path(), &opts, &none).unwrap_err().to_string();
            assert!(
                e.contains("not a regular file") && e.contains("pipe"),
                "{e}"
            );
            fs::remove_file(&fifo).unwrap();
            assert!(build(d.path(), &opts, &none).is_ok());
        }
    }

    #[test]
    fn compare_names_each_difference() {
        let r = |n: &str, b: &[u8]| Resource {
            name: n.into(),
            digest: sha(b),
            size: b.len() as u64,
        };
        let signed = Manifest {
            model_name: "m".into(),
            resources: vec![r("a", b"1"), r("b", b"2"), r("c", b"3")],
            ignore_paths: vec![],
            allow_symlinks: false,
        };
        let mut actual = signed.clone();
        assert!(compare(&signed, &actual).is_empty());
        actual.resources = vec![r("a", b"1"), r("b", b"X"), r("d", b"4")];
        let diff = compare(&signed, &actual);
        assert_eq!(diff.modified, ["b"]);
        assert_eq!(diff.missing, ["c"]);
        assert_eq!(diff.extra, ["d"]);
        assert!(!diff.is_empty());
    }

    #[test]
    fn subject_digest_is_over_raw_digests() {
        let rs = vec![
            Resource {
                name: "a".into(),
                digest: sha(b"1"),
                size: 1,
            },
            Resource {
                name: "b".into(),
                digest: sha(b"2"),
                size: 1,
            },
        ];
        let mut cat = Vec::new();
        cat.extend_from_slice(&sha(b"1"));
        cat.extend_from_slice(&sha(b"2"));
        assert_eq!(subject_digest(&rs), sha(&cat));
        assert_ne!(subject_digest(&rs[..1]), sha(&cat));
        let json = serde_json::to_value(&rs[0]).unwrap();
        assert_eq!(json["digest"], hex::encode(sha(b"1")));
    }
}
