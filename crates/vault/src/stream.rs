//! age's payload encryption (STREAM: ChaCha20-Poly1305 over 64 KiB chunks, nonce = 11-byte big-endian chunk
//! counter ‖ last-chunk flag, <https://age-encryption.org/v1>) on every core.
//!
//! Why: the `age` crate's `StreamWriter` seals one chunk at a time on one core (about 0.87 s per GiB on this
//! machine), slower than the Go `age` CLI. Chunks are independent once their counter is known, so a batch of
//! them is sealed in parallel here. Everything else stays with the `age` crate: it wraps the file key for the
//! recipients, writes the header and its MAC and picks the payload nonce ([`seal`] watches the file key go by
//! through the crate's public `Recipient` trait). Only the payload is ours, and the tests check it byte for byte
//! against the crate's own `StreamWriter` on the same header; decryption stays entirely with the crate.
//!
//! The ciphers are the audited RustCrypto `chacha20poly1305` and `age-core`'s HKDF, the same the crate uses.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{self, Write};

use age::Recipient;
use age_core::format::{FileKey, Stanza, FILE_KEY_BYTES};
use age_core::secrecy::ExposeSecret;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rayon::prelude::*;
use zeroize::Zeroizing;

/// Plaintext bytes per STREAM chunk (fixed by the age format).
const CHUNK: usize = 64 * 1024;
/// Poly1305 tag bytes after each chunk.
const TAG: usize = 16;
/// Chunks sealed per parallel batch (2 MiB of plaintext in memory, another 2 MiB sealed).
const BATCH_CHUNKS: usize = 32;
const BATCH: usize = CHUNK * BATCH_CHUNKS;
/// Bytes of the payload nonce that follows the header.
const NONCE_BYTES: usize = 16;
/// HKDF label of the payload key.
const PAYLOAD_KEY_LABEL: &[u8] = b"payload";

/// The start of an age file (header and payload nonce, written by the `age` crate) and the key of its payload.
pub(crate) struct Sealed {
    /// Header, MAC line and payload nonce, ready to be written.
    pub(crate) head: Vec<u8>,
    /// Boxed so that moves copy a pointer, not the key.
    key: Box<Zeroizing<[u8; 32]>>,
}

/// A recipient that lends the file key to [`seal`] while the real recipient wraps it.
struct KeyTap<'a> {
    inner: &'a dyn Recipient,
    key: &'a RefCell<Option<Box<Zeroizing<[u8; FILE_KEY_BYTES]>>>>,
}

impl Recipient for KeyTap<'_> {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        self.key
            .borrow_mut()
            .get_or_insert_with(|| Box::new(Zeroizing::new(*file_key.expose_secret())));
        self.inner.wrap_file_key(file_key)
    }
}

/// Let the `age` crate build a header for `recipients` (it refuses an empty or incompatible set, e.g. a
/// passphrase mixed with recipients), and derive the payload key from the file key it chose and the nonce it
/// wrote.
pub(crate) fn seal(recipients: &[&dyn Recipient]) -> Result<Sealed, age::EncryptError> {
    let file_key = RefCell::new(None);
    let taps: Vec<KeyTap<'_>> = recipients
        .iter()
        .map(|&inner| KeyTap {
            inner,
            key: &file_key,
        })
        .collect();
    let encryptor = age::Encryptor::with_recipients(taps.iter().map(|t| t as &dyn Recipient))?;
    let mut head = Vec::new();
    // `wrap_output` writes the header and the payload nonce, then hands back a writer for the payload that
    // has written nothing yet; it is dropped unused.
    drop(
        encryptor
            .wrap_output(&mut head)
            .map_err(age::EncryptError::Io)?,
    );
    let file_key = file_key
        .into_inner()
        .ok_or(age::EncryptError::MissingRecipients)?;
    let nonce = head
        .len()
        .checked_sub(NONCE_BYTES)
        .map(|at| &head[at..])
        .ok_or(age::EncryptError::MissingRecipients)?;
    let key = Box::new(Zeroizing::new(age_core::primitives::hkdf(
        nonce,
        PAYLOAD_KEY_LABEL,
        file_key.as_slice(),
    )));
    Ok(Sealed { head, key })
}

/// Seals age's payload in parallel batches as it is written; [`PayloadWriter::finish`] seals the last chunk.
/// Memory is one batch (about 2 MiB) whatever the input size, allocated once and zeroized when dropped.
///
/// Plaintext is laid out chunk by chunk with room for each tag after it, so a batch is sealed in place and
/// written with one call; readers can fill it directly ([`PayloadWriter::room`], [`PayloadWriter::filled`]).
pub(crate) struct PayloadWriter<W: Write> {
    aead: ChaCha20Poly1305,
    /// Counter of the next chunk.
    counter: u64,
    /// `BATCH_CHUNKS + 1` slots of `SLOT` bytes: a chunk of plaintext, then room for its tag.
    slots: Zeroizing<Vec<u8>>,
    /// Plaintext bytes held: up to one batch plus one byte, so a full batch is sealed only once more data
    /// shows it is not the last one (age's last chunk is flagged, and only an empty payload has an empty one).
    held: usize,
    /// Set by any error: the batch may be half sealed in place, so nothing more may be sealed or written.
    failed: bool,
    inner: W,
}

/// A chunk and its tag.
const SLOT: usize = CHUNK + TAG;

impl<W: Write> PayloadWriter<W> {
    /// Write `sealed.head` to `inner`, and return a writer for the payload after it. `sealed` is consumed: its
    /// payload key never seals two outputs.
    pub(crate) fn start(sealed: Sealed, mut inner: W) -> io::Result<Self> {
        inner.write_all(&sealed.head)?;
        Ok(Self::new(&sealed.key, inner))
    }

    fn new(key: &[u8; 32], inner: W) -> Self {
        Self {
            aead: ChaCha20Poly1305::new(Key::from_slice(key)),
            counter: 0,
            slots: Zeroizing::new(vec![0; (BATCH_CHUNKS + 1) * SLOT]),
            held: 0,
            failed: false,
            inner,
        }
    }

    /// Where the next plaintext bytes go (never empty); report how many were put there with
    /// [`PayloadWriter::filled`].
    pub(crate) fn room(&mut self) -> &mut [u8] {
        let (slot, offset) = (self.held / CHUNK, self.held % CHUNK);
        let len = (CHUNK - offset).min(BATCH + 1 - self.held);
        let at = slot * SLOT + offset;
        &mut self.slots[at..at + len]
    }

    /// `n` bytes (at most `room().len()`) were written into [`PayloadWriter::room`]; seals and writes a batch
    /// once it is full and followed by more data.
    pub(crate) fn filled(&mut self, n: usize) -> io::Result<()> {
        self.usable()?;
        if n > self.room().len() {
            self.failed = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a reader reported more bytes than it was given room for",
            ));
        }
        self.held += n;
        if self.held == BATCH + 1 {
            self.seal(BATCH, false)?;
            self.slots[0] = self.slots[BATCH_CHUNKS * SLOT];
            self.held = 1;
        }
        Ok(())
    }

    fn usable(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("the encryption already failed"));
        }
        Ok(())
    }

    /// Seal what is held as the last chunk(s) and return the inner writer (not flushed).
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.usable()?;
        self.seal(self.held, true)?;
        Ok(self.inner)
    }

    /// Seal the first `len` plaintext bytes held, in place (the final chunk flagged when `last`), and write them.
    fn seal(&mut self, len: usize, last: bool) -> io::Result<()> {
        // Whatever happens below, these slots are not plaintext any more: no second attempt.
        self.failed = true;
        // An empty payload is a single empty chunk.
        let chunks = len.div_ceil(CHUNK).max(1);
        let tail = len - (chunks - 1) * CHUNK;
        let (aead, base) = (&self.aead, self.counter);
        self.slots
            .par_chunks_mut(SLOT)
            .take(chunks)
            .enumerate()
            .try_for_each(|(i, slot)| {
                let size = if i + 1 == chunks { tail } else { CHUNK };
                let is_last = last && i + 1 == chunks;
                seal_chunk(aead, base + i as u64, is_last, &mut slot[..size + TAG])
            })?;
        // age's counter has 88 bits; 2^64 chunks (a zettabyte) is far beyond any file, but never wrap.
        self.counter = base
            .checked_add(chunks as u64)
            .ok_or_else(|| io::Error::other("age STREAM chunk counter exhausted"))?;
        self.inner
            .write_all(&self.slots[..(chunks - 1) * SLOT + tail + TAG])?;
        self.failed = false;
        Ok(())
    }
}

/// Seal in place the chunk in `slot` (all but its last `TAG` bytes), which then receive the tag.
fn seal_chunk(
    aead: &ChaCha20Poly1305,
    counter: u64,
    last: bool,
    slot: &mut [u8],
) -> io::Result<()> {
    let (body, tag) = slot.split_at_mut(slot.len() - TAG);
    let sealed_tag = aead
        .encrypt_in_place_detached(&chunk_nonce(counter, last), b"", body)
        .map_err(|_| io::Error::other("ChaCha20-Poly1305 refused a chunk"))?;
    tag.copy_from_slice(&sealed_tag);
    Ok(())
}

/// STREAM nonce: the counter as 11 big-endian bytes, then 1 for the last chunk or 0.
fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    Nonce::from(nonce)
}

impl<W: Write> Write for PayloadWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.usable()?;
        let room = self.room();
        let n = room.len().min(buf.len());
        room[..n].copy_from_slice(&buf[..n]);
        self.filled(n)?;
        Ok(n)
    }

    /// Flushes the inner writer; held plaintext stays until a whole batch (or [`PayloadWriter::finish`]).
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn recipient() -> (age::x25519::Identity, age::x25519::Recipient) {
        let id = age::x25519::Identity::generate();
        let r = id.to_public();
        (id, r)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    /// Ciphertext bytes of a payload of `len` plaintext bytes.
    fn payload_len(len: usize) -> usize {
        len + len.div_ceil(CHUNK).max(1) * TAG
    }

    /// Encrypt `plain` with the crate's own writer, capturing the file key, and return (file, file key).
    fn age_reference(r: &age::x25519::Recipient, plain: &[u8]) -> (Vec<u8>, [u8; 16]) {
        let key = RefCell::new(None);
        let tap = KeyTap {
            inner: r,
            key: &key,
        };
        let enc = age::Encryptor::with_recipients(std::iter::once(&tap as &dyn Recipient)).unwrap();
        let mut file = Vec::new();
        let mut w = enc.wrap_output(&mut file).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap();
        let k = ***key.borrow().as_ref().unwrap();
        (file, k)
    }

    fn decrypt(id: &age::x25519::Identity, file: &[u8]) -> Vec<u8> {
        let d = age::Decryptor::new(file).unwrap();
        let mut r = d
            .decrypt(std::iter::once(id as &dyn age::Identity))
            .unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    const SIZES: &[usize] = &[
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        3 * CHUNK,
        BATCH - 1,
        BATCH,
        BATCH + 1,
        2 * BATCH,
        2 * BATCH + CHUNK + 17,
    ];

    #[test]
    fn payload_is_byte_identical_to_the_age_crate() {
        let (_, r) = recipient();
        for &len in SIZES {
            let plain = pattern(len);
            let (reference, file_key) = age_reference(&r, &plain);
            let head_len = reference.len() - payload_len(len);
            let nonce = &reference[head_len - NONCE_BYTES..head_len];
            let key = age_core::primitives::hkdf(nonce, PAYLOAD_KEY_LABEL, &file_key);
            let mut ours = reference[..head_len].to_vec();
            let mut w = PayloadWriter::new(&key, &mut ours);
            // Odd write sizes cross chunk and batch boundaries at every offset.
            for piece in plain.chunks(CHUNK / 3 + 5) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap();
            assert_eq!(ours.len(), reference.len(), "length at {len} bytes");
            assert!(ours == reference, "payload differs at {len} bytes");
            // Filled in place, as a reader does: the same bytes.
            let mut direct = reference[..head_len].to_vec();
            let mut w = PayloadWriter::new(&key, &mut direct);
            let mut rest = &plain[..];
            while !rest.is_empty() {
                let n = rest.read(w.room()).unwrap();
                w.filled(n).unwrap();
            }
            w.finish().unwrap();
            assert!(
                direct == reference,
                "in-place payload differs at {len} bytes"
            );
        }
    }

    #[test]
    fn random_lengths_and_write_splits_match_the_age_crate() {
        let (_, r) = recipient();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for _ in 0..12 {
            let plain = pattern(next(3 * BATCH));
            let (reference, file_key) = age_reference(&r, &plain);
            let head_len = reference.len() - payload_len(plain.len());
            let nonce = &reference[head_len - NONCE_BYTES..head_len];
            let key = age_core::primitives::hkdf(nonce, PAYLOAD_KEY_LABEL, &file_key);
            let mut ours = reference[..head_len].to_vec();
            let mut w = PayloadWriter::new(&key, &mut ours);
            let mut rest = &plain[..];
            while !rest.is_empty() {
                let n = (1 + next(2 * CHUNK)).min(rest.len());
                w.write_all(&rest[..n]).unwrap();
                rest = &rest[n..];
            }
            w.finish().unwrap();
            assert!(
                ours == reference,
                "payload differs at {} bytes",
                plain.len()
            );
        }
    }

    #[test]
    fn sealed_files_decrypt_with_the_age_crate_and_tampering_fails() {
        let (id, r) = recipient();
        for &len in &[0, 1, CHUNK, BATCH + 1] {
            let plain = pattern(len);
            let sealed = seal(&[&r]).unwrap();
            let head_len = sealed.head.len();
            let mut file = Vec::new();
            let mut w = PayloadWriter::start(sealed, &mut file).unwrap();
            w.write_all(&plain).unwrap();
            w.finish().unwrap();
            assert_eq!(decrypt(&id, &file), plain, "{len} bytes");
            // Flip one payload byte: the crate must refuse the file.
            let at = head_len + len / 2;
            file[at] ^= 1;
            let d = age::Decryptor::new(&file[..]).unwrap();
            let mut rd = d
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .unwrap();
            assert!(rd.read_to_end(&mut Vec::new()).is_err(), "{len} bytes");
        }
    }

    #[test]
    fn another_identity_cannot_open_it_and_incompatible_recipients_are_refused() {
        let (_, r) = recipient();
        let (other, _) = recipient();
        let sealed = seal(&[&r]).unwrap();
        let mut file = Vec::new();
        PayloadWriter::start(sealed, &mut file)
            .unwrap()
            .finish()
            .unwrap();
        let d = age::Decryptor::new(&file[..]).unwrap();
        assert!(d
            .decrypt(std::iter::once(&other as &dyn age::Identity))
            .is_err());
        assert!(matches!(
            seal(&[]),
            Err(age::EncryptError::MissingRecipients)
        ));
        let pass = age::scrypt::Recipient::new("pass".to_string().into());
        assert!(seal(&[&r, &pass]).is_err());
    }

    /// A writer that fails once, to check that a failed batch is never sealed or written again.
    struct FailOnce(bool, Vec<u8>);
    impl Write for FailOnce {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if std::mem::take(&mut self.0) {
                return Err(io::Error::other("disk full"));
            }
            self.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn after_an_error_nothing_more_is_sealed_or_written() {
        let key = [7u8; 32];
        let mut w = PayloadWriter::new(&key, FailOnce(true, Vec::new()));
        let plain = pattern(BATCH + 1);
        assert!(w.write_all(&plain).is_err());
        assert!(w.write(b"more").is_err());
        assert!(w.finish().is_err());
        // A reader claiming more bytes than its room is refused, not trusted.
        let mut w = PayloadWriter::new(&key, Vec::new());
        let room = w.room().len();
        assert!(w.filled(room + 1).is_err());
        assert!(w.finish().is_err());
        // Control: the same writes succeed on a healthy writer.
        let mut w = PayloadWriter::new(&key, FailOnce(false, Vec::new()));
        w.write_all(&plain).unwrap();
        assert_eq!(w.finish().unwrap().1.len(), payload_len(plain.len()));
    }

    #[test]
    fn nonce_layout() {
        let n = chunk_nonce(0x0102_0304_0506_0708, true);
        assert_eq!(&n[..], &[0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1]);
        assert_eq!(chunk_nonce(0, false)[11], 0);
    }
}
