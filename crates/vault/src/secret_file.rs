//! Secret key files: created with owner-only permissions (never overwriting), and refused when others can read
//! them, as `ssh` refuses a private key with loose permissions. A secret is held in [`Zeroizing`] memory.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use crate::Error;

/// Largest secret key file read, in bytes (identity files hold a few keys; PEM keys are a few hundred bytes).
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Create `path` with `contents`, readable and writable by the owner only; refuses an existing file.
pub fn write_new(path: &Path, contents: &[u8]) -> Result<(), Error> {
    create_key_file(path, contents, 0o600)
}

/// Create a key file with Unix permissions `mode` (a public key: 0o644), refusing an existing file.
pub(crate) fn create_key_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Key {
                path: path.to_path_buf(),
                reason: "already exists; refusing to overwrite a key file".into(),
            }
        } else {
            Error::io(path, e)
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Read a secret file after checking that only its owner can read or write it (on Unix: no group or other
/// permission bits); at most [`MAX_SECRET_BYTES`].
pub fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Key {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    check_owner_only(path, &meta)?;
    if meta.len() > MAX_SECRET_BYTES {
        return Err(Error::Key {
            path: path.to_path_buf(),
            reason: format!(
                "{} bytes is too large for a key file (at most {MAX_SECRET_BYTES})",
                meta.len()
            ),
        });
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_BYTES).read_to_end(&mut buf))
        .map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

#[cfg(unix)]
fn check_owner_only(path: &Path, meta: &std::fs::Metadata) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Key {
            path: path.to_path_buf(),
            reason: format!(
                "permissions {mode:03o} let others read this secret key; run `chmod 600 {}`",
                path.display()
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), Error> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write_new(&p, b"secret").unwrap();
        assert_eq!(&read(&p).unwrap()[..], b"secret");
        let e = write_new(&p, b"other").unwrap_err();
        assert!(e.to_string().contains("refusing to overwrite"), "{e}");
        assert_eq!(&read(&p).unwrap()[..], b"secret");
    }

    #[cfg(unix)]
    #[test]
    fn readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write_new(&p, b"secret").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read(&p).unwrap_err().to_string();
            assert!(e.contains("chmod 600") && !e.contains("secret\""), "{e}");
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read(&p).is_ok());
    }

    #[test]
    fn missing_and_oversized_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none");
        assert!(read(&p).unwrap_err().to_string().contains("none"));
        let big = dir.path().join("big");
        write_new(&big, &vec![b'x'; MAX_SECRET_BYTES as usize + 1]).unwrap();
        assert!(read(&big).unwrap_err().to_string().contains("too large"));
    }
}
