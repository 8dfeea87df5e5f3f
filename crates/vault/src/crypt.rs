//! The age format (<https://age-encryption.org/v1>) on streams, files and directory trees: X25519 recipients
//! (one or several), an scrypt passphrase, and optional ASCII armor, all interoperable with the `age` CLI.
//!
//! Everything streams through fixed buffers (1 MiB around files; age's STREAM chunk is 64 KiB), so a
//! multi-gigabyte model needs constant memory; file reads and writes run on a second core ([`crate::pipe`]) and
//! the payload is sealed in parallel batches of chunks (`crate::stream`).
//! File outputs are written to a temporary file beside the target (owner-only), synced when they replace an
//! existing file, and renamed over the target only once the whole input has been processed and, when
//! decrypting, authenticated: a wrong key, a tampered or a truncated file never leaves partial plaintext, and an
//! existing output is untouched. Trees are staged in a temporary directory renamed into place at the end.
//! Rotation pipes decryption into encryption in memory, so plaintext never reaches the disk.
//!
//! The untrusted ciphertext is parsed by the `age` crate; this module bounds the header it reads (1 MiB) and
//! turns age's errors into reasons a person can act on (wrong identity, wrong passphrase, a passphrase file
//! opened with identities, tampering, truncation, not an age file).

use std::cell::Cell;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use age::armor::{ArmoredReadError, ArmoredReader, ArmoredWriter, Format};
use age::secrecy::SecretString;
use age::DecryptError;
use zeroize::Zeroizing;

use crate::keys::{self, Identities};
use crate::pipe::pipelined;
use crate::stream::{self, PayloadWriter, Sealed};
use crate::Error;

pub use crate::pipe::BUFFER_BYTES;

/// Plaintext bytes per age STREAM chunk.
pub const CHUNK_BYTES: u64 = 64 * 1024;

/// Largest age header read before giving up (a header holds one short stanza per recipient).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Suffix of encrypted files in a tree.
pub const AGE_SUFFIX: &str = ".age";

const BINARY_INTRO: &[u8] = b"age-encryption.org/";
const ARMOR_INTRO: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// Whom a file is encrypted to.
pub enum EncryptTo {
    /// X25519 recipients (`age1…`); anyone holding one of the matching identities can decrypt.
    Recipients(Vec<String>),
    /// A passphrase (scrypt); it must be the only recipient of the file.
    Passphrase(Zeroizing<String>),
}

impl fmt::Debug for EncryptTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncryptTo::Recipients(r) => f.debug_tuple("Recipients").field(r).finish(),
            EncryptTo::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

/// What decrypts a file.
pub enum DecryptWith {
    /// X25519 identities (secret keys).
    Identities(Identities),
    /// The passphrase of a file encrypted with one.
    Passphrase(Zeroizing<String>),
}

impl fmt::Debug for DecryptWith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecryptWith::Identities(i) => f.debug_tuple("Identities").field(i).finish(),
            DecryptWith::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

/// Options of the file-level functions ([`encrypt_file_with`], [`decrypt_file_with`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileOptions {
    /// Write ASCII armor when encrypting (ignored when decrypting: armor is detected).
    pub armor: bool,
    /// Replace an existing output file (atomically, only once the new one is complete).
    pub overwrite: bool,
}

/// What a tree operation processed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeSummary {
    /// Regular files processed.
    pub files: usize,
    /// Plaintext bytes.
    pub bytes: u64,
}

fn stdio() -> &'static Path {
    Path::new("-")
}

// ---------------------------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------------------------

/// Encrypt `input` to `output` in the age format (ASCII-armored when `armor`); returns the plaintext bytes.
pub fn encrypt_stream<R: Read, W: Write>(
    to: &EncryptTo,
    armor: bool,
    input: R,
    output: W,
) -> Result<u64, Error> {
    encrypt_inner(sealed_for(to)?, armor, input, output, stdio(), stdio())
}

/// Largest scrypt work factor (`log2 N`) accepted by [`encrypt_stream_scrypt`].
pub const MAX_SCRYPT_LOG_N: u8 = 30;

/// Encrypt `input` with a passphrase at a fixed scrypt work factor `N = 2^log_n` (1..=[`MAX_SCRYPT_LOG_N`]),
/// instead of the one [`EncryptTo::Passphrase`] picks (about one second of work on this machine). A low factor
/// is weak: meant for tests, or to match a slower machine that must decrypt.
pub fn encrypt_stream_scrypt<R: Read, W: Write>(
    passphrase: &Zeroizing<String>,
    log_n: u8,
    armor: bool,
    input: R,
    output: W,
) -> Result<u64, Error> {
    if !(1..=MAX_SCRYPT_LOG_N).contains(&log_n) {
        return Err(Error::Invalid(format!(
            "scrypt work factor {log_n} out of range 1..={MAX_SCRYPT_LOG_N}"
        )));
    }
    let sealed = seal_passphrase(passphrase, Some(log_n))?;
    encrypt_inner(sealed, armor, input, output, stdio(), stdio())
}

/// Decrypt an age file (binary or ASCII-armored, detected) from `input` to `output`; returns the plaintext
/// bytes. Plaintext is written as it is authenticated, chunk by chunk: on error, discard what was written (the
/// file-level functions do).
pub fn decrypt_stream<R: Read, W: Write>(
    with: &DecryptWith,
    input: R,
    output: W,
) -> Result<u64, Error> {
    let mut output = output;
    let n = decrypt_inner(with, input, &mut output, stdio(), stdio(), None)?;
    output.flush().map_err(|e| Error::io(stdio(), e))?;
    Ok(n)
}

fn sealed_for(to: &EncryptTo) -> Result<Sealed, Error> {
    match to {
        EncryptTo::Recipients(list) => {
            if list.is_empty() {
                return Err(Error::Invalid(
                    "no recipients: give at least one age1… recipient".into(),
                ));
            }
            let parsed = list
                .iter()
                .map(|r| keys::parse_recipient(r))
                .collect::<Result<Vec<_>, _>>()?;
            let dyns: Vec<&dyn age::Recipient> =
                parsed.iter().map(|r| r as &dyn age::Recipient).collect();
            stream::seal(&dyns)
                .map_err(|e| Error::Invalid(format!("cannot encrypt to these recipients: {e}")))
        }
        EncryptTo::Passphrase(p) => seal_passphrase(p, None),
    }
}

/// A header for a passphrase, at scrypt work factor `2^log_n` or the one the `age` crate calibrates.
fn seal_passphrase(passphrase: &Zeroizing<String>, log_n: Option<u8>) -> Result<Sealed, Error> {
    if passphrase.is_empty() {
        return Err(Error::Invalid("empty passphrase".into()));
    }
    let mut recipient =
        age::scrypt::Recipient::new(SecretString::from(passphrase.as_str().to_string()));
    if let Some(log_n) = log_n {
        recipient.set_work_factor(log_n);
    }
    stream::seal(&[&recipient])
        .map_err(|e| Error::Invalid(format!("cannot encrypt with this passphrase: {e}")))
}

type AgeWriter<W> = PayloadWriter<ArmoredWriter<W>>;

fn start_encrypt<W: Write>(
    sealed: Sealed,
    armor: bool,
    output: W,
    out_path: &Path,
) -> Result<AgeWriter<W>, Error> {
    let format = if armor {
        Format::AsciiArmor
    } else {
        Format::Binary
    };
    ArmoredWriter::wrap_output(output, format)
        .and_then(|a| PayloadWriter::start(sealed, a))
        .map_err(|e| Error::io(out_path, e))
}

fn finish_encrypt<W: Write>(writer: AgeWriter<W>, out_path: &Path) -> Result<W, Error> {
    writer
        .finish()
        .and_then(|a| a.finish())
        .and_then(|mut w| w.flush().map(|()| w))
        .map_err(|e| Error::io(out_path, e))
}

fn encrypt_inner<R: Read, W: Write>(
    sealed: Sealed,
    armor: bool,
    mut input: R,
    output: W,
    in_path: &Path,
    out_path: &Path,
) -> Result<u64, Error> {
    let mut writer = start_encrypt(sealed, armor, output, out_path)?;
    let mut total = 0u64;
    loop {
        // Read straight into the writer's batch: no intermediate buffer holds the plaintext.
        let n = match input.read(writer.room()) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(in_path, e)),
        };
        writer.filled(n).map_err(|e| Error::io(out_path, e))?;
        total += n as u64;
    }
    finish_encrypt(writer, out_path)?;
    Ok(total)
}

/// A reader that refuses to hand out more than a budget of bytes while the age header is parsed (age reads a
/// header line without bound), then passes everything through once the budget is lifted (`None`).
struct HeaderBound<R> {
    inner: R,
    budget: Rc<Cell<Option<u64>>>,
}

impl<R: BufRead> Read for HeaderBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.budget.get().is_none() {
            return self.inner.read(buf);
        }
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for HeaderBound<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self.budget.get() {
            None => self.inner.fill_buf(),
            Some(0) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "age header too large",
            )),
            Some(left) => {
                let avail = self.inner.fill_buf()?;
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(avail.len());
                Ok(&avail[..n])
            }
        }
    }

    fn consume(&mut self, amt: usize) {
        if let Some(left) = self.budget.get() {
            self.budget.set(Some(left.saturating_sub(amt as u64)));
        }
        self.inner.consume(amt);
    }
}

/// Longest line accepted in ASCII armor (age wraps at 64 columns; the armor reader buffers a line whole).
pub const MAX_ARMOR_LINE_BYTES: u64 = 4096;

/// A reader that fails once a line runs longer than [`MAX_ARMOR_LINE_BYTES`], so armor parsing (which reads a
/// line at a time, without bound) stays in bounded memory.
struct LineBound<R> {
    inner: R,
    since_newline: u64,
}

impl<R: Read> Read for LineBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match buf[..n].iter().rposition(|&b| b == b'\n') {
            Some(i) => self.since_newline = (n - i - 1) as u64,
            None => self.since_newline += n as u64,
        }
        if self.since_newline > MAX_ARMOR_LINE_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, ArmorLineTooLong));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct ArmorLineTooLong;

impl fmt::Display for ArmorLineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid ASCII armor: a line is longer than {MAX_ARMOR_LINE_BYTES} bytes"
        )
    }
}

impl std::error::Error for ArmorLineTooLong {}

fn decrypt_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Decrypt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn armor_error(e: &io::Error) -> Option<String> {
    let inner = e.get_ref()?;
    if let Some(a) = inner.downcast_ref::<ArmoredReadError>() {
        return Some(format!("invalid ASCII armor: {a}"));
    }
    inner
        .downcast_ref::<ArmorLineTooLong>()
        .map(ArmorLineTooLong::to_string)
}

fn header_error(e: DecryptError, path: &Path, too_large: bool) -> Error {
    if too_large {
        return decrypt_err(
            path,
            format!("not an age file: no complete header in the first {MAX_HEADER_BYTES} bytes"),
        );
    }
    let reason = match e {
        DecryptError::InvalidHeader => {
            "not an age file, or its header is damaged (the header does not parse)".to_string()
        }
        DecryptError::UnknownFormat => "unknown age format version (not an age v1 file)".into(),
        DecryptError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            "truncated header: not a complete age file".into()
        }
        DecryptError::Io(e) => match armor_error(&e) {
            Some(reason) => reason,
            None if e.kind() == io::ErrorKind::InvalidData => format!("not an age file: {e}"),
            None => return Error::io(path, e),
        },
        other => format!("cannot read the age header: {other}"),
    };
    decrypt_err(path, reason)
}

fn key_error(e: DecryptError, path: &Path, with: &DecryptWith) -> Error {
    let reason = match (e, with) {
        (DecryptError::NoMatchingKeys, DecryptWith::Identities(ids)) => {
            let recipients = ids.recipients();
            let first = recipients.first().map(String::as_str).unwrap_or("");
            format!(
                "wrong key: none of the {} identities ({first}{}) can decrypt this file; it was encrypted to \
                 other recipients, or its header was altered",
                ids.len(),
                if recipients.len() > 1 { ", …" } else { "" }
            )
        }
        (DecryptError::NoMatchingKeys, DecryptWith::Passphrase(_)) => {
            "this file is not encrypted with a passphrase".into()
        }
        (DecryptError::DecryptionFailed, DecryptWith::Passphrase(_)) => {
            "wrong passphrase (or the file's header was altered)".into()
        }
        (DecryptError::DecryptionFailed, DecryptWith::Identities(_)) => {
            "the file key does not decrypt: the header was altered".into()
        }
        (DecryptError::InvalidMac, _) => {
            "the header MAC does not verify: the header was altered (tampered file)".into()
        }
        (DecryptError::InvalidHeader, _) => {
            "the header is malformed: the file is damaged or was altered".into()
        }
        (DecryptError::ExcessiveWork { required, target }, _) => format!(
            "the passphrase work factor 2^{required} is far above this machine's 2^{target} \
             (about {}x the usual work); refusing",
            1u64 << required.saturating_sub(target).min(63)
        ),
        (DecryptError::Io(e), _) => return Error::io(path, e),
        (other, _) => other.to_string(),
    };
    decrypt_err(path, reason)
}

fn payload_error(e: io::Error, path: &Path, done: u64) -> Error {
    let chunk = done / CHUNK_BYTES;
    let reason = match e.kind() {
        io::ErrorKind::UnexpectedEof => format!(
            "truncated: the ciphertext ends before its final chunk (after {done} bytes of plaintext)"
        ),
        io::ErrorKind::InvalidData => match armor_error(&e) {
            Some(reason) => reason,
            None if e.to_string().contains("last chunk has been processed") => {
                "data follows the final chunk: the file was altered".into()
            }
            None => format!(
                "payload chunk {chunk} (plaintext from byte {}) fails authentication: the ciphertext was \
                 altered, or truncated",
                chunk * CHUNK_BYTES
            ),
        },
        _ => return Error::io(path, e),
    };
    decrypt_err(path, reason)
}

fn decrypt_inner<R: Read, W: Write>(
    with: &DecryptWith,
    input: R,
    mut output: W,
    in_path: &Path,
    out_path: &Path,
    limit: Option<u64>,
) -> Result<u64, Error> {
    let mut reader = BufReader::with_capacity(BUFFER_BYTES, input);
    let first = reader.fill_buf().map_err(|e| Error::io(in_path, e))?;
    if first.is_empty() {
        return Err(decrypt_err(in_path, "empty file: not an age file"));
    }
    let armored = first[0] == b'-';
    let intro = if armored { ARMOR_INTRO } else { BINARY_INTRO };
    {
        let n = first.len().min(intro.len());
        if first[..n] != intro[..n] {
            return Err(decrypt_err(
                in_path,
                "not an age file (it starts with neither `age-encryption.org/` nor \
                 `-----BEGIN AGE ENCRYPTED FILE-----`)",
            ));
        }
    }
    let source: Box<dyn BufRead + '_> = if armored {
        Box::new(ArmoredReader::new(LineBound {
            inner: reader,
            since_newline: 0,
        }))
    } else {
        Box::new(reader)
    };
    let budget = Rc::new(Cell::new(Some(MAX_HEADER_BYTES)));
    let bounded = HeaderBound {
        inner: source,
        budget: Rc::clone(&budget),
    };
    let decryptor = age::Decryptor::new_buffered(bounded)
        .map_err(|e| header_error(e, in_path, budget.get() == Some(0)))?;
    budget.set(None);

    let scrypt = decryptor.is_scrypt();
    let stream = match with {
        DecryptWith::Identities(ids) => {
            if scrypt {
                return Err(decrypt_err(
                    in_path,
                    "this file is encrypted with a passphrase, not to recipients: decrypt it with the \
                     passphrase (-p), not an identity",
                ));
            }
            decryptor.decrypt(ids.as_age())
        }
        DecryptWith::Passphrase(p) => {
            if !scrypt {
                return Err(decrypt_err(
                    in_path,
                    "this file is encrypted to recipients (public keys), not with a passphrase: decrypt it with \
                     an identity file (-i)",
                ));
            }
            let identity = age::scrypt::Identity::new(SecretString::from(p.as_str().to_string()));
            decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
        }
    };
    let mut stream = stream.map_err(|e| key_error(e, in_path, with))?;

    let mut buf = Zeroizing::new(vec![0u8; BUFFER_BYTES]);
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(payload_error(e, in_path, total)),
        };
        if let Some(max) = limit {
            if total + n as u64 > max {
                return Err(decrypt_err(
                    in_path,
                    format!(
                        "plaintext is larger than the limit of {max} bytes; refusing to decrypt it into memory"
                    ),
                ));
            }
        }
        output
            .write_all(&buf[..n])
            .map_err(|e| Error::io(out_path, e))?;
        total += n as u64;
    }
    // No flush here: when `output` is an age encryptor (rotation), flushing would end an armor line early.
    Ok(total)
}

// ---------------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------------

/// Encrypt the file `input` to a new file `output` (refused if it exists), atomically.
pub fn encrypt_file(
    to: &EncryptTo,
    armor: bool,
    input: &Path,
    output: &Path,
) -> Result<u64, Error> {
    let opts = FileOptions {
        armor,
        overwrite: false,
    };
    encrypt_file_with(to, &opts, input, output)
}

/// Encrypt the file `input` to `output`: written to an owner-only temporary file beside `output` (file IO on a
/// second core) and renamed into place once complete. Refuses `output == input`, and an existing output unless
/// `opts.overwrite`.
pub fn encrypt_file_with(
    to: &EncryptTo,
    opts: &FileOptions,
    input: &Path,
    output: &Path,
) -> Result<u64, Error> {
    check_paths(input, output, opts.overwrite)?;
    let src = File::open(input).map_err(|e| Error::io(input, e))?;
    let sealed = sealed_for(to)?;
    write_atomically(output, opts.overwrite, |w| {
        pipelined(
            src,
            w,
            |r, cw| encrypt_inner(sealed, opts.armor, r, cw, input, output),
            |e| Error::io(output, e),
        )
    })
}

/// Encrypt everything `reader` yields (named `source` in errors, e.g. standard input) to `output`, atomically
/// as [`encrypt_file_with`] does.
pub fn encrypt_reader_to_file<R: Read>(
    to: &EncryptTo,
    opts: &FileOptions,
    reader: R,
    source: &Path,
    output: &Path,
) -> Result<u64, Error> {
    write_atomically(output, opts.overwrite, |w| {
        encrypt_inner(sealed_for(to)?, opts.armor, reader, w, source, output)
    })
}

/// Run `body` on a buffered owner-only temporary file beside `output`, then flush, sync and rename it into
/// place; on any error the temporary file is removed and an existing output is untouched.
fn write_atomically(
    output: &Path,
    overwrite: bool,
    body: impl FnOnce(&mut BufWriter<&mut File>) -> Result<u64, Error>,
) -> Result<u64, Error> {
    check_output(output, overwrite)?;
    let mut tmp = temp_beside(output)?;
    let n = {
        let mut writer = BufWriter::with_capacity(BUFFER_BYTES, tmp.as_file_mut());
        let n = body(&mut writer)?;
        writer.flush().map_err(|e| Error::io(output, e))?;
        n
    };
    persist(tmp, output, overwrite)?;
    Ok(n)
}

/// Decrypt the age file `input` to a new file `output` (refused if it exists), atomically: no partial
/// plaintext is ever left.
pub fn decrypt_file(with: &DecryptWith, input: &Path, output: &Path) -> Result<u64, Error> {
    let opts = FileOptions::default();
    decrypt_file_with(with, &opts, input, output)
}

/// Decrypt the age file `input` to `output`: written to an owner-only temporary file beside `output`, and
/// renamed into place only once the whole stream has been authenticated; on any error the temporary file is
/// removed and an existing output is untouched. Refuses `output == input`, and an existing output unless
/// `opts.overwrite`.
pub fn decrypt_file_with(
    with: &DecryptWith,
    opts: &FileOptions,
    input: &Path,
    output: &Path,
) -> Result<u64, Error> {
    check_paths(input, output, opts.overwrite)?;
    let src = File::open(input).map_err(|e| Error::io(input, e))?;
    write_atomically(output, opts.overwrite, |w| {
        pipelined(
            src,
            w,
            |r, cw| decrypt_inner(with, r, cw, input, output, None),
            |e| Error::io(output, e),
        )
    })
}

/// Decrypt the age stream `reader` (named `source` in errors, e.g. standard input) to `output`, atomically as
/// [`decrypt_file_with`] does: nothing is left unless the whole stream was authenticated.
pub fn decrypt_reader_to_file<R: Read>(
    with: &DecryptWith,
    opts: &FileOptions,
    reader: R,
    source: &Path,
    output: &Path,
) -> Result<u64, Error> {
    write_atomically(output, opts.overwrite, |w| {
        decrypt_inner(with, reader, w, source, output, None)
    })
}

/// Decrypt the age file `input` into memory (zeroized when dropped), refusing plaintext larger than
/// `max_bytes`. Nothing is written to disk.
pub fn decrypt_to_memory(
    with: &DecryptWith,
    input: &Path,
    max_bytes: u64,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let src = File::open(input).map_err(|e| Error::io(input, e))?;
    let hint = src.metadata().map(|m| m.len()).unwrap_or(0).min(max_bytes);
    let mut out = SecretBuf(Zeroizing::new(Vec::with_capacity(
        usize::try_from(hint).unwrap_or(0),
    )));
    decrypt_inner(
        with,
        src,
        &mut out,
        input,
        Path::new("(memory)"),
        Some(max_bytes),
    )?;
    Ok(out.0)
}

/// A growable buffer that never leaves a copy of its contents behind when it grows (the old allocation is
/// zeroized).
struct SecretBuf(Zeroizing<Vec<u8>>);

impl Write for SecretBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let need = self.0.len() + buf.len();
        if need > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(need.max(self.0.capacity() * 2)));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger;
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Re-encrypt the age file `path` in place to `to`: decryption is piped into encryption in memory (plaintext
/// never reaches the disk) through a temporary file renamed over `path` at the end, keeping its permissions and
/// its armor (`armor` asks for armor even on a binary file);
/// the original stays intact on any error. Returns the plaintext bytes.
pub fn rotate_file(
    with: &DecryptWith,
    to: &EncryptTo,
    armor: bool,
    path: &Path,
) -> Result<u64, Error> {
    // Rotation replaces `path` itself: through a symbolic link it would replace the link and leave the real
    // file readable by the old keys, and a file with other hard links would keep its old contents under them.
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{}: not a regular file (symbolic links are refused: rotate the file they point to)",
            path.display()
        )));
    }
    if hard_links(&meta) > 1 {
        return Err(Error::Invalid(format!(
            "{}: has {} hard links; the others would keep the old encryption",
            path.display(),
            hard_links(&meta)
        )));
    }
    let mut src = File::open(path).map_err(|e| Error::io(path, e))?;
    // An armored file stays armored (text-only channels and tools expect it).
    let armor = armor || is_armored(&mut src).map_err(|e| Error::io(path, e))?;
    let mut tmp = temp_beside(path)?;
    tmp.as_file()
        .set_permissions(meta.permissions())
        .map_err(|e| Error::io(path, e))?;
    let n = {
        let writer = BufWriter::with_capacity(BUFFER_BYTES, tmp.as_file_mut());
        let mut enc = start_encrypt(sealed_for(to)?, armor, writer, path)?;
        let n = decrypt_inner(with, src, &mut enc, path, path, None)?;
        finish_encrypt(enc, path)?;
        n
    };
    persist(tmp, path, true)?;
    Ok(n)
}

/// Whether the file starts with age's armor line (the read position is restored to the start).
fn is_armored(file: &mut File) -> io::Result<bool> {
    use std::io::Seek;
    let mut head = [0u8; ARMOR_INTRO.len()];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    file.rewind()?;
    Ok(head[..n] == *ARMOR_INTRO)
}

#[cfg(unix)]
fn hard_links(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.nlink()
}

#[cfg(not(unix))]
fn hard_links(_meta: &std::fs::Metadata) -> u64 {
    1
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
    false
}

fn check_paths(input: &Path, output: &Path, overwrite: bool) -> Result<(), Error> {
    let in_meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
    if !in_meta.is_file() {
        return Err(Error::Invalid(format!(
            "{}: not a regular file",
            input.display()
        )));
    }
    if let Ok(out_meta) = std::fs::metadata(output) {
        let same = same_file(&in_meta, &out_meta)
            || matches!(
                (input.canonicalize(), output.canonicalize()),
                (Ok(a), Ok(b)) if a == b
            );
        if same {
            return Err(Error::Invalid(format!(
                "{}: the output is the input file; write to another file",
                output.display()
            )));
        }
        if out_meta.is_dir() {
            return Err(Error::Invalid(format!(
                "{}: is a directory; give an output file",
                output.display()
            )));
        }
        if !overwrite {
            return Err(Error::Invalid(format!(
                "{}: already exists; refusing to overwrite it",
                output.display()
            )));
        }
    }
    Ok(())
}

/// An output that is not a directory, and does not exist unless `overwrite`.
fn check_output(output: &Path, overwrite: bool) -> Result<(), Error> {
    match std::fs::metadata(output) {
        Ok(m) if m.is_dir() => Err(Error::Invalid(format!(
            "{}: is a directory; give an output file",
            output.display()
        ))),
        Ok(_) if !overwrite => Err(Error::Invalid(format!(
            "{}: already exists; refusing to overwrite it",
            output.display()
        ))),
        _ => Ok(()),
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An owner-only temporary file in `target`'s directory, removed when dropped.
fn temp_beside(target: &Path) -> Result<tempfile::NamedTempFile, Error> {
    tempfile::Builder::new()
        .prefix(".aegis-")
        .suffix(".tmp")
        .tempfile_in(parent_dir(target))
        .map_err(|e| Error::io(target, e))
}

/// Rename the finished temporary file to `output`. When that replaces an existing file (rotation, overwrite),
/// the new contents are synced to disk first and the directory after, so a crash can never leave the old data
/// gone and the new data not yet written; a brand-new output is left to the page cache, as `age` does (a crash
/// then loses only the output, never the input).
fn persist(tmp: tempfile::NamedTempFile, output: &Path, overwrite: bool) -> Result<(), Error> {
    let replaces = std::fs::symlink_metadata(output).is_ok();
    if replaces {
        tmp.as_file().sync_all().map_err(|e| Error::io(output, e))?;
    }
    let result = if overwrite {
        tmp.persist(output)
    } else {
        tmp.persist_noclobber(output)
    };
    result.map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            Error::Invalid(format!(
                "{}: already exists; refusing to overwrite it",
                output.display()
            ))
        } else {
            Error::io(output, e.error)
        }
    })?;
    if replaces {
        sync_dir(parent_dir(output));
    }
    Ok(())
}

/// Make a rename durable (best effort: not every platform can sync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Trees
// ---------------------------------------------------------------------------------------------------------------

/// Encrypt every regular file under `input_dir` to `output_dir/<same relative path>.age`. Symbolic links and
/// special files are refused by name; `output_dir` must not exist or be empty, and must not be inside
/// `input_dir`. The tree is written to a temporary directory beside `output_dir` and renamed into place at the
/// end, so an error leaves nothing. Files are processed one at a time.
pub fn encrypt_tree(
    to: &EncryptTo,
    armor: bool,
    input_dir: &Path,
    output_dir: &Path,
) -> Result<TreeSummary, Error> {
    let files = collect_files(input_dir)?;
    // Check the recipients before any work; the header made for that serves the first file.
    let mut first = Some(sealed_for(to)?);
    let staging = prepare_tree_output(input_dir, output_dir)?;
    let mut summary = TreeSummary::default();
    for rel in &files {
        let src_path = input_dir.join(rel);
        let mut name = rel.clone().into_os_string();
        name.push(AGE_SUFFIX);
        let dst_path = staging.path().join(&name);
        let src = File::open(&src_path).map_err(|e| Error::io(&src_path, e))?;
        let dst = create_owner_only(&dst_path)?;
        let mut writer = BufWriter::with_capacity(BUFFER_BYTES, &dst);
        let shown = output_dir.join(&name);
        let sealed = match first.take() {
            Some(sealed) => sealed,
            None => sealed_for(to)?,
        };
        summary.bytes += encrypt_inner(sealed, armor, src, &mut writer, &src_path, &shown)?;
        writer.flush().map_err(|e| Error::io(&shown, e))?;
        drop(writer);
        dst.sync_all().map_err(|e| Error::io(&shown, e))?;
        summary.files += 1;
    }
    finish_tree(staging, output_dir)?;
    Ok(summary)
}

/// Decrypt every `*.age` file under `input_dir` to `output_dir/<relative path without .age>` (any other file is
/// an error naming it; symbolic links are refused). Same rules for `output_dir` as [`encrypt_tree`]; the
/// plaintext tree appears only once every file has been authenticated.
pub fn decrypt_tree(
    with: &DecryptWith,
    input_dir: &Path,
    output_dir: &Path,
) -> Result<TreeSummary, Error> {
    let files = collect_files(input_dir)?;
    let mut plan = Vec::with_capacity(files.len());
    for rel in &files {
        let stripped = rel
            .to_str()
            .and_then(|s| s.strip_suffix(AGE_SUFFIX))
            .filter(|s| !s.is_empty() && !s.ends_with(std::path::MAIN_SEPARATOR))
            .map(PathBuf::from);
        match stripped {
            Some(out_rel) => plan.push((rel, out_rel)),
            None => {
                return Err(Error::Invalid(format!(
                    "{}: not an encrypted file of the tree (its name does not end in {AGE_SUFFIX})",
                    input_dir.join(rel).display()
                )))
            }
        }
    }
    let staging = prepare_tree_output(input_dir, output_dir)?;
    let mut summary = TreeSummary::default();
    for (rel, out_rel) in plan {
        let src_path = input_dir.join(rel);
        let dst_path = staging.path().join(&out_rel);
        let shown = output_dir.join(&out_rel);
        let src = File::open(&src_path).map_err(|e| Error::io(&src_path, e))?;
        let dst = create_owner_only(&dst_path)?;
        let mut writer = BufWriter::with_capacity(BUFFER_BYTES, &dst);
        summary.bytes += decrypt_inner(with, src, &mut writer, &src_path, &shown, None)?;
        writer.flush().map_err(|e| Error::io(&shown, e))?;
        drop(writer);
        dst.sync_all().map_err(|e| Error::io(&shown, e))?;
        summary.files += 1;
    }
    finish_tree(staging, output_dir)?;
    Ok(summary)
}

fn create_owner_only(path: &Path) -> Result<File, Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| Error::io(path, e))
}

/// Regular files under `root` (relative paths, sorted); symbolic links and special files are errors.
fn collect_files(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: not a directory",
            root.display()
        )));
    }
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = root.join(&rel);
        let mut entries = std::fs::read_dir(&dir)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::io(&dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            let child = rel.join(entry.file_name());
            if kind.is_symlink() {
                return Err(Error::Invalid(format!(
                    "{}: is a symbolic link; refusing to follow it (give its target instead)",
                    path.display()
                )));
            } else if kind.is_dir() {
                pending.push(child);
            } else if kind.is_file() {
                files.push(child);
            } else {
                return Err(Error::Invalid(format!(
                    "{}: not a regular file",
                    path.display()
                )));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Checks `output_dir` (absent or empty, not inside `input_dir`) and returns an owner-only staging directory
/// beside it.
fn prepare_tree_output(input_dir: &Path, output_dir: &Path) -> Result<tempfile::TempDir, Error> {
    let input_abs = input_dir
        .canonicalize()
        .map_err(|e| Error::io(input_dir, e))?;
    let parent = parent_dir(output_dir);
    let output_abs = match std::fs::symlink_metadata(output_dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(Error::Invalid(format!(
                    "{}: exists and is not a directory",
                    output_dir.display()
                )));
            }
            let mut it = std::fs::read_dir(output_dir).map_err(|e| Error::io(output_dir, e))?;
            if it.next().is_some() {
                return Err(Error::Invalid(format!(
                    "{}: exists and is not empty; refusing to write into it",
                    output_dir.display()
                )));
            }
            output_dir
                .canonicalize()
                .map_err(|e| Error::io(output_dir, e))?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let name = output_dir.file_name().ok_or_else(|| {
                Error::Invalid(format!("{}: not a directory name", output_dir.display()))
            })?;
            parent
                .canonicalize()
                .map_err(|e| Error::io(parent, e))?
                .join(name)
        }
        Err(e) => return Err(Error::io(output_dir, e)),
    };
    if output_abs.starts_with(&input_abs) {
        return Err(Error::Invalid(format!(
            "{}: the output directory is inside the input directory {}",
            output_dir.display(),
            input_dir.display()
        )));
    }
    let staging = tempfile::Builder::new()
        .prefix(".aegis-tree-")
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(staging.path(), e))?;
    }
    Ok(staging)
}

/// Rename the staging directory to `output_dir` (replacing it if it is an empty directory).
fn finish_tree(staging: tempfile::TempDir, output_dir: &Path) -> Result<(), Error> {
    let result = std::fs::rename(staging.path(), output_dir);
    match result {
        Ok(()) => {
            // The staging path no longer exists: nothing left to clean up.
            let _ = staging.keep();
            sync_dir(parent_dir(output_dir));
            Ok(())
        }
        Err(e) => Err(Error::io(output_dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (DecryptWith, EncryptTo) {
        let (secret, recipient) = keys::generate_identity();
        (
            DecryptWith::Identities(Identities::from_secret(&secret).unwrap()),
            EncryptTo::Recipients(vec![recipient]),
        )
    }

    #[test]
    fn stream_round_trip_binary_and_armored() {
        let (with, to) = pair();
        for armor in [false, true] {
            let data = b"hello vault".repeat(1000);
            let mut ct = Vec::new();
            assert_eq!(
                encrypt_stream(&to, armor, &data[..], &mut ct).unwrap(),
                data.len() as u64
            );
            assert_eq!(ct.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"), armor);
            let mut pt = Vec::new();
            decrypt_stream(&with, &ct[..], &mut pt).unwrap();
            assert_eq!(pt, data);
        }
    }

    #[test]
    fn no_recipients_and_not_age_are_refused() {
        let (with, _) = pair();
        let e = encrypt_stream(&EncryptTo::Recipients(vec![]), false, &b""[..], Vec::new());
        assert!(matches!(e, Err(Error::Invalid(_))));
        for junk in [&b"hello world"[..], b"", b"age-encryption.org/v9\nxx"] {
            let e = decrypt_stream(&with, junk, Vec::new())
                .unwrap_err()
                .to_string();
            assert!(e.contains("age"), "{e}");
        }
    }

    #[test]
    fn header_is_bounded() {
        let (with, _) = pair();
        let mut junk = b"age-encryption.org/v1\n-> X25519 ".to_vec();
        junk.extend(std::iter::repeat_n(b'A', 2 * MAX_HEADER_BYTES as usize));
        let e = decrypt_stream(&with, &junk[..], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no complete header"), "{e}");
    }

    #[test]
    fn armor_lines_are_bounded() {
        let (with, to) = pair();
        let mut junk = b"-----BEGIN AGE ENCRYPTED FILE-----\n".to_vec();
        junk.extend(std::iter::repeat_n(b'A', 1 << 20));
        let e = decrypt_stream(&with, &junk[..], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than"), "{e}");
        // Negative: long armored files (many short lines) are fine.
        let data = vec![3u8; 300_000];
        let mut ct = Vec::new();
        encrypt_stream(&to, true, &data[..], &mut ct).unwrap();
        let mut pt = Vec::new();
        decrypt_stream(&with, &ct[..], &mut pt).unwrap();
        assert_eq!(pt, data);
    }

    #[test]
    fn debug_hides_secrets() {
        let to = EncryptTo::Passphrase(Zeroizing::new("hunter2".into()));
        let with = DecryptWith::Passphrase(Zeroizing::new("hunter2".into()));
        assert!(!format!("{to:?}{with:?}").contains("hunter2"));
        let (with, _) = pair();
        assert!(!format!("{with:?}").contains("AGE-SECRET"));
    }

    #[test]
    fn memory_limit_is_enforced() {
        let (with, to) = pair();
        let dir = tempfile::tempdir().unwrap();
        let ct = dir.path().join("m.age");
        let pt = dir.path().join("m");
        std::fs::write(&pt, vec![7u8; 100_000]).unwrap();
        encrypt_file(&to, false, &pt, &ct).unwrap();
        assert_eq!(
            &decrypt_to_memory(&with, &ct, 100_000).unwrap()[..],
            &vec![7u8; 100_000][..]
        );
        let e = decrypt_to_memory(&with, &ct, 99_999)
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than the limit"), "{e}");
        let mut s = SecretBuf(Zeroizing::new(Vec::new()));
        s.write_all(&[1; 10]).unwrap();
        s.write_all(&[2; 100]).unwrap();
        assert_eq!(s.0.len(), 110);
    }
}
