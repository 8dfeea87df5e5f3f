//! The dispatch at the heart of the scanner: read a blob's head and tail, detect its format, check the name
//! against the content, and hand the blob to the format's module. Every error becomes a finding on that blob;
//! nothing here returns early to the caller.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, SeekFrom};
use std::path::Path;

use aegis_core::{Finding, Location};
use aegis_formats::sniff::{self, Format};
use aegis_formats::{Blob, Limits};
use serde_json::json;

use crate::{archive, compressed, gguf, keras, npy, onnx, pickle, safetensors, savedmodel};
use crate::{Ctx, Policy};

/// Files up to this size are read into memory once; larger ones are streamed (memory stays flat).
const IN_MEMORY_FILE: u64 = 16 << 20;

/// Scans files and blobs under a policy and limits. Cheap to share across threads.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    pub(crate) policy: Policy,
    pub(crate) limits: Limits,
}

/// Counters for one file (or a whole run when summed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Files scanned.
    pub files: u64,
    /// Bytes read (approximate: what parsers consumed).
    pub bytes: u64,
    /// Blobs seen per detected format, members included.
    pub formats: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// Add another file's counters.
    pub fn merge(&mut self, other: &Stats) {
        self.files += other.files;
        self.bytes += other.bytes;
        for (k, v) in &other.formats {
            *self.formats.entry(k).or_insert(0) += v;
        }
    }
}

/// Result of scanning one file.
#[derive(Debug, Clone, Default)]
pub struct FileOutcome {
    /// Findings, in discovery order.
    pub findings: Vec<Finding>,
    /// Counters.
    pub stats: Stats,
}

impl Scanner {
    /// A scanner with a policy and limits.
    pub fn new(policy: Policy, limits: Limits) -> Self {
        Scanner { policy, limits }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Scan one file; `display` is the path as the user should see it. IO errors become findings.
    pub fn scan_file(&self, path: &Path, display: &str) -> FileOutcome {
        let mut outcome = FileOutcome::default();
        outcome.stats.files = 1;
        let location = Location::file(display);
        let opened = File::open(path).and_then(|f| {
            let len = f.metadata()?.len();
            Ok((f, len))
        });
        match opened {
            // Small files are read once: parsers seek a lot (zip local headers, member heads and tails) and
            // every seek of a buffered file discards its buffer.
            Ok((mut file, len)) if len <= IN_MEMORY_FILE => {
                let mut bytes = Vec::with_capacity(len as usize);
                match file.read_to_end(&mut bytes) {
                    Ok(_) => {
                        let len = bytes.len() as u64;
                        let mut ctx = self.root_ctx(&mut outcome, location, path);
                        scan_blob(&mut ctx, &mut std::io::Cursor::new(bytes), len);
                    }
                    Err(err) => outcome
                        .findings
                        .push(crate::engine_rules::unreadable(location, &err.to_string())),
                }
            }
            Ok((file, len)) => {
                let mut blob = BufReader::with_capacity(16 * 1024, file);
                let mut ctx = self.root_ctx(&mut outcome, location, path);
                scan_blob(&mut ctx, &mut blob, len);
            }
            Err(err) => outcome
                .findings
                .push(crate::engine_rules::unreadable(location, &err.to_string())),
        }
        outcome
    }

    /// Scan bytes in memory as if they were a file named `name` (tests, fuzzing, payload checks).
    pub fn scan_bytes(&self, name: &str, bytes: &[u8]) -> FileOutcome {
        let mut outcome = FileOutcome::default();
        outcome.stats.files = 1;
        let mut blob = std::io::Cursor::new(bytes);
        let mut ctx = self.root_ctx(&mut outcome, Location::file(name), Path::new(name));
        scan_blob(&mut ctx, &mut blob, bytes.len() as u64);
        outcome
    }

    fn root_ctx<'a>(
        &'a self,
        outcome: &'a mut FileOutcome,
        location: Location,
        path: &Path,
    ) -> Ctx<'a> {
        Ctx {
            scanner: self,
            location,
            depth: 0,
            findings: &mut outcome.findings,
            stats: &mut outcome.stats,
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

/// Detect the format of `blob` and run its rules.
pub(crate) fn scan_blob(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let (head, tail) = match read_head_tail(blob, len) {
        Ok(parts) => parts,
        Err(err) => {
            let finding = crate::engine_rules::unreadable(ctx.location.clone(), &err.to_string());
            ctx.emit(finding);
            return;
        }
    };
    let format = sniff::sniff(&head, &tail, len);
    *ctx.stats.formats.entry(format.name()).or_insert(0) += 1;
    check_extension(ctx, format);
    if let Err(err) = blob.seek(SeekFrom::Start(0)) {
        let finding = crate::engine_rules::unreadable(ctx.location.clone(), &err.to_string());
        ctx.emit(finding);
        return;
    }
    match format {
        Format::Zip => archive::scan_zip(ctx, blob, len),
        Format::Tar => archive::scan_tar(ctx, blob, len),
        Format::Compressed(codec) => compressed::scan(ctx, blob, len, codec),
        Format::Pickle => pickle::scan(ctx, blob, len),
        Format::Npy => npy::scan(ctx, blob, len),
        Format::Gguf => gguf::scan(ctx, blob, len),
        Format::Safetensors => safetensors::scan(ctx, blob, len),
        Format::Onnx => onnx::scan(ctx, blob, len),
        Format::SavedModel => savedmodel::scan(ctx, blob, len),
        Format::Hdf5 => keras::scan_hdf5(ctx, blob, len),
        Format::Json | Format::Unknown if is_template_name(&ctx.name) => {
            scan_template_file(ctx, blob)
        }
        Format::Json => keras::scan_json(ctx, blob, len),
        Format::Unknown => scan_unknown(ctx, blob, len, &head),
    }
    // A zip is found by its end record, but torch.load, pickle and tarfile decide by the first bytes: when
    // the head is not a zip local header, scan the blob as what its head says too.
    let mut as_pickle = matches!(format, Format::Pickle | Format::Unknown)
        || format == Format::Zip && head.starts_with(b"PK\x03\x04");
    if format == Format::Zip && !head.starts_with(b"PK\x03\x04") {
        let by_head = sniff::sniff(&head, &[], len);
        as_pickle |= matches!(by_head, Format::Pickle | Format::Unknown);
        if by_head != Format::Zip && blob.seek(SeekFrom::Start(0)).is_ok() {
            match by_head {
                Format::Pickle => pickle::scan(ctx, blob, len),
                Format::Tar => archive::scan_tar(ctx, blob, len),
                Format::Compressed(codec) => compressed::scan(ctx, blob, len, codec),
                Format::Unknown => scan_unknown(ctx, blob, len, &head),
                _ => {}
            }
        }
    }
    // Every other format: `pickle.load` reads whatever bytes it is given. A file that is both is found here.
    if !as_pickle && head.first().is_some_and(|b| sniff::is_opcode(*b)) {
        pickle::scan_polyglot(ctx, blob, len, format.name());
    }
    ctx.add_bytes(len);
}

/// `chat_template.jinja` and friends: transformers renders them with Jinja.
fn is_template_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.ends_with(".jinja") || name.ends_with(".j2") || name.ends_with(".jinja2")
}

/// Check a Jinja template file (bounded by `max_header`).
fn scan_template_file(ctx: &mut Ctx<'_>, blob: &mut dyn Blob) {
    let limit = ctx.limits().max_header;
    let mut text = Vec::new();
    if blob.seek(SeekFrom::Start(0)).is_ok()
        && (&mut *blob).take(limit).read_to_end(&mut text).is_ok()
    {
        let template = String::from_utf8_lossy(&text).into_owned();
        crate::template::check(ctx, &template, None, "Jinja template file");
    }
}

/// Content no format claimed that starts like a pickle opcode: `pickle.load` reads it regardless of a
/// header, whatever it is named (the `storages` member of a legacy torch tar, a gzip member of any name, a
/// zlib stream).
///
/// A file given on its own, or a member named like a pickle, is read as the emulator reads any pickle
/// (resynchronising after garbage). Other members are read strictly, up to the first structural error as
/// `pickle.load` would: most are raw tensor storage, which fails on its first bytes.
fn scan_unknown(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64, head: &[u8]) {
    let name = ctx.name.to_ascii_lowercase();
    let pickle_name = [
        ".pkl", ".pickle", ".p", ".joblib", ".pt", ".pth", ".bin", ".dat", ".ckpt",
    ]
    .iter()
    .any(|ext| name.ends_with(ext));
    if head.first().is_some_and(|b| sniff::is_opcode(*b)) {
        let strict = ctx.depth > 0 && !pickle_name;
        pickle::scan_fallback(ctx, blob, len, strict);
    }
}

fn read_head_tail(blob: &mut dyn Blob, len: u64) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    blob.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(sniff::HEAD_LEN);
    blob.take(sniff::HEAD_LEN as u64).read_to_end(&mut head)?;
    let tail_len = len.min(sniff::TAIL_LEN as u64);
    let mut tail = Vec::with_capacity(tail_len as usize);
    if tail_len > 0 {
        blob.seek(SeekFrom::Start(len - tail_len))?;
        blob.take(tail_len).read_to_end(&mut tail)?;
    }
    Ok((head, tail))
}

/// Report a name whose extension promises another format than the content has.
fn check_extension(ctx: &mut Ctx<'_>, format: Format) {
    let Some((_, ext)) = ctx.name.rsplit_once('.') else {
        return;
    };
    let Some(expected) = Format::expected_for_extension(ext) else {
        return;
    };
    // `.bin` and `.pb` name any binary or any protobuf message (`fingerprint.pb` beside every SavedModel).
    let any_binary = ext.eq_ignore_ascii_case("bin") || ext.eq_ignore_ascii_case("pb");
    if expected.contains(&format) || format == Format::Unknown && any_binary {
        return;
    }
    // pandas' `to_pickle("x.pkl.tar.gz")` names the tar member `x.pkl.tar.gz` too: inside a container, a
    // compression extension on content that is not compressed says nothing a loader routes by.
    let compression_name = expected.iter().all(|f| matches!(f, Format::Compressed(_)));
    if ctx.depth > 0 && compression_name {
        return;
    }
    let ext = ext.to_owned();
    let names: Vec<&str> = expected.iter().map(|f| f.name()).collect();
    ctx.report(
        &crate::engine_rules::EXTENSION_MISMATCH,
        None,
        format!(
            "named `.{ext}` but the content is {}; loaders that route by name will treat it differently",
            format.name()
        ),
        json!({ "extension": ext, "detected": format.name(), "expected": names }),
    );
}

#[cfg(test)]
mod tests {
    use crate::engine_rules::EXTENSION_MISMATCH;
    use crate::Scanner;

    fn mismatch(name: &str, bytes: &[u8]) -> bool {
        Scanner::default()
            .scan_bytes(name, bytes)
            .findings
            .iter()
            .any(|f| f.rule.as_str() == EXTENSION_MISMATCH.id)
    }

    #[test]
    fn a_name_that_disagrees_with_the_content_is_reported() {
        let pickle = b"\x80\x02}q\x00.";
        assert!(mismatch("model.safetensors", pickle));
        assert!(mismatch("model.onnx", pickle));
        assert!(!mismatch("model.pkl", pickle));
        assert!(!mismatch("pytorch_model.bin", pickle));
        assert!(
            !mismatch("data.dat", pickle),
            "extensions that promise nothing are not judged"
        );
        assert!(
            !mismatch("tokenizer.bin", b"\x00\x01 plain binary"),
            "unknown content in .bin"
        );
        assert!(
            mismatch("model.pkl.gz", pickle),
            "a file named .gz must be gzip"
        );
        assert!(
            !mismatch("fingerprint.pb", b"\x08\x96\x01\x10\x02"),
            "a protobuf message that is no model"
        );
        assert!(mismatch("saved_model.pb", pickle));
        // pandas `to_pickle("x.pkl.tar.gz")`: the tar member is named like the archive.
        let member = aegis_test_support::tar::TarWriter::new()
            .file("x.pkl.tar.gz", pickle)
            .finish();
        let archive = aegis_test_support::tar::gzip(&member, None);
        assert!(!mismatch("x.pkl.tar.gz", &archive));
    }
}
