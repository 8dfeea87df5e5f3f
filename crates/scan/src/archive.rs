//! Archive rules: zip (PyTorch checkpoints, `.keras`, `.npz`, bundles) and tar (legacy PyTorch checkpoints,
//! bundles).
//!
//! Every member is scanned as a blob of its own through [`Ctx::scan_member`], in directory order, so a
//! pickle anywhere, a zip in a zip or an `.npy` in an `.npz` gets its own format's rules. Stored members are
//! windows over the outer blob (never copied); deflated members are decompressed into memory up to a bound
//! that halves with each nesting level (so nested archives cannot multiply memory), and larger ones are
//! decompressed as they are read. Members whose bytes sniff as nothing known (raw tensor storage) cost a
//! head and tail read only.
//!
//! Structure is judged against what real loaders do (`aegis_formats::zip` reads like PyTorch's miniz and
//! Python's `zipfile`): where two loaders would see different files, or a scanner would give up while the
//! loader goes on, there is a finding, one per kind of problem per member, naming the member.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use aegis_core::{Finding, RuleDoc, Severity};
use aegis_formats::sniff::{self, Format};
use aegis_formats::tar::{TarAnomaly, TarArchive, TarEntry, TarKind};
use aegis_formats::zip::{
    name_issues, Anomaly, Check, Window, ZipArchive, ZipEntry, METHOD_DEFLATED, METHOD_STORED,
};
use aegis_formats::Blob;
use serde_json::{json, Value};

use crate::{engine_rules, Ctx};

const ATLAS_SUPPLY: &str = "AML.T0010.003";
const ATLAS_USER_EXEC: &str = "AML.T0011.000";

/// Data before the first member.
pub(crate) const PREPENDED_DATA: RuleDoc = RuleDoc {
    id: "AEG-SCAN-200",
    name: "archive-prepended-data",
    severity: Severity::Medium,
    summary: "Bytes precede the first member of a zip archive",
    why: "Zip readers find an archive from its end, so PyTorch and Python still load a zip with data in front \
          of it, while scanners that require `PK` at offset 0 treat the file as something else and miss its \
          members. The prepended bytes can also be a second format (a pickle that `torch.load` runs through \
          its legacy path).",
    fix: "Re-save the model with its own library so the archive starts at offset 0; find out what wrote the \
          leading bytes.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[20, 436],
};

/// Local and central names differ.
pub(crate) const NAME_MISMATCH: RuleDoc = RuleDoc {
    id: "AEG-SCAN-201",
    name: "zip-local-name-mismatch",
    severity: Severity::High,
    summary: "A zip member has different names in its local header and the central directory",
    why: "PyTorch (miniz) finds members by their central-directory name and never looks at the local name, \
          Python's zipfile refuses the member, and stream readers use the local name: each tool sees a \
          different file under a given name. Attackers use it to make scanners skip the `data.pkl` that \
          PyTorch will unpickle.",
    fix: "Do not load the file. Re-create the archive with a standard writer.",
    atlas: &[ATLAS_SUPPLY, ATLAS_USER_EXEC],
    cwe: &[436, 20],
};

/// Two members with one name.
pub(crate) const DUPLICATE_MEMBER: RuleDoc = RuleDoc {
    id: "AEG-SCAN-202",
    name: "archive-duplicate-member",
    severity: Severity::High,
    summary: "Two archive members have the same name",
    why: "Loaders disagree on which of two same-named members they read (Python's zipfile and tarfile take the \
          last, miniz's sorted lookup may take either), so a scanner that checks one copy can be shown a \
          benign file while the loader runs the other.",
    fix: "Do not load the file. Re-create the archive so every name is unique.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[436],
};

/// Encryption flag on a member.
pub(crate) const ENCRYPTED_FLAG: RuleDoc = RuleDoc {
    id: "AEG-SCAN-203",
    name: "zip-encryption-flag",
    severity: Severity::Medium,
    summary: "A zip member is flagged as encrypted",
    why: "PyTorch's reader ignores the encryption flag and reads the data as plain, while Python's zipfile \
          asks for a password: scanners built on zipfile cannot open the member that PyTorch will load. \
          Aegis read it as plain data, like PyTorch does.",
    fix: "Re-save the archive without the encryption flag; do not load models that hide members from scanners.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[436],
};

/// CRC mismatch.
pub(crate) const CRC_MISMATCH: RuleDoc = RuleDoc {
    id: "AEG-SCAN-204",
    name: "zip-crc-mismatch",
    severity: Severity::Medium,
    summary: "A zip member's content does not match its CRC-32",
    why: "Python's zipfile raises on a bad CRC, so zipfile-based scanners abort on the member, while readers \
          that skip the check (PyTorch can) load it. A corrupted or edited member is also a sign of tampering.",
    fix: "Download the file again and compare its hash with the publisher's; re-save it with its library.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[354],
};

/// Method other than stored/deflate.
pub(crate) const UNSUPPORTED_METHOD: RuleDoc = RuleDoc {
    id: "AEG-SCAN-205",
    name: "zip-unsupported-compression",
    severity: Severity::High,
    summary: "A zip member uses a compression method that was not inspected",
    why: "Only stored and deflate members are decompressed. Python's zipfile also reads bzip2 and LZMA \
          (and zstd from Python 3.14) members, so numpy or Keras may load content the scanner could not \
          examine: the member fails the scan.",
    fix: "Re-save the archive with stored or deflate members so it can be scanned.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[20],
};

/// Path traversal names.
pub(crate) const PATH_TRAVERSAL: RuleDoc = RuleDoc {
    id: "AEG-SCAN-206",
    name: "archive-path-traversal",
    severity: Severity::High,
    summary: "An archive member name is absolute or climbs out of the extraction directory",
    why: "Extracting the archive (unzip, tar, `extractall`, hub download helpers) writes the member outside \
          the target directory: over shell start-up files, SSH keys or Python packages, which runs code later.",
    fix: "Do not extract the archive. Rebuild it with relative member names without `..`.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[22],
};

/// Backslashes, NUL or control characters in names.
pub(crate) const SUSPICIOUS_NAME: RuleDoc = RuleDoc {
    id: "AEG-SCAN-207",
    name: "archive-suspicious-member-name",
    severity: Severity::Medium,
    summary: "An archive member name holds backslashes, NUL or control characters",
    why: "Backslashes are directory separators on Windows only, and Python's zipfile cuts names at the first \
          NUL while miniz keeps the whole name: tools disagree on what the member is called and where it is \
          extracted.",
    fix: "Rebuild the archive with plain `/`-separated names.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[22, 436],
};

/// Symlink or hard-link members.
pub(crate) const LINK_MEMBER: RuleDoc = RuleDoc {
    id: "AEG-SCAN-208",
    name: "archive-link-member",
    severity: Severity::High,
    summary: "An archive member is a link pointing outside the archive",
    why: "Extracting a symbolic or hard link whose target is absolute or climbs with `..` lets later members \
          or the model loader read or overwrite files outside the extraction directory (credentials, \
          configuration, code). Links that stay inside the archive are reported as low.",
    fix: "Do not extract the archive; rebuild it without links, or with links to siblings only.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[22, 59],
};

/// Overlapping members.
pub(crate) const OVERLAPPING_MEMBERS: RuleDoc = RuleDoc {
    id: "AEG-SCAN-209",
    name: "zip-overlapping-members",
    severity: Severity::High,
    summary: "Zip members share or overlap their compressed data",
    why: "Overlapping members are the construction of non-recursive zip bombs (one compressed stream expanded \
          once per member, exhausting disk and memory) and a way to give one content several names. No \
          honest writer produces them; Python 3.12 refuses them.",
    fix: "Do not extract or load the file.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[400, 409],
};

/// Extreme compression ratio.
pub(crate) const EXTREME_RATIO: RuleDoc = RuleDoc {
    id: "AEG-SCAN-210",
    name: "zip-extreme-compression-ratio",
    severity: Severity::Low,
    summary: "A zip member expands more than 1000:1",
    why: "Ratios near deflate's maximum mean long runs of identical bytes: zero-filled tensors, or a \
          decompression bomb meant to exhaust memory or disk of whoever extracts it.",
    fix: "Check that the member is expected to be this compressible (for example, zero-initialised weights).",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[409],
};

/// Local header fields or actual sizes disagree with the directory.
pub(crate) const HEADER_MISMATCH: RuleDoc = RuleDoc {
    id: "AEG-SCAN-211",
    name: "zip-header-mismatch",
    severity: Severity::Medium,
    summary: "A zip member's local header or content disagrees with its central-directory entry",
    why: "Readers that trust the central directory (PyTorch, zipfile) and readers that stream local headers \
          see different sizes or methods, so they read different bytes for the same member.",
    fix: "Re-create the archive with a standard writer.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[436, 20],
};

/// Data descriptors.
pub(crate) const DATA_DESCRIPTOR: RuleDoc = RuleDoc {
    id: "AEG-SCAN-212",
    name: "zip-data-descriptor",
    severity: Severity::Info,
    summary: "A zip member keeps its sizes in a data descriptor",
    why: "Streaming writers legitimately put CRC and sizes after the data; readers that walk local headers \
          must then guess where the data ends, which crafted archives exploit.",
    fix: "Nothing to do unless other findings accompany it.",
    atlas: &[],
    cwe: &[],
};

/// No central directory.
pub(crate) const NO_CENTRAL_DIRECTORY: RuleDoc = RuleDoc {
    id: "AEG-SCAN-213",
    name: "zip-no-central-directory",
    severity: Severity::Medium,
    summary: "A zip archive has no central directory; members were found by walking local headers",
    why: "PyTorch and Python's zipfile refuse such a file, but stream readers accept it. A truncated or \
          deliberately broken archive is a classic way to make scanners give up.",
    fix: "Download the file again; a complete archive ends with an end-of-central-directory record.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[20],
};

/// Member cannot be located.
pub(crate) const MEMBER_UNREADABLE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-214",
    name: "archive-member-unreadable",
    severity: Severity::Medium,
    summary: "An archive member's header or data could not be read",
    why: "A member whose header is missing or whose data runs past the end of the file could not be scanned; \
          loaders may still read part of it.",
    fix: "Download the file again and compare its hash with the publisher's.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[20],
};

/// Central directory inconsistencies.
pub(crate) const DIRECTORY_INCONSISTENT: RuleDoc = RuleDoc {
    id: "AEG-SCAN-215",
    name: "zip-directory-inconsistent",
    severity: Severity::Medium,
    summary: "A zip archive's end records and central directory disagree",
    why: "miniz trusts the entry count and directory offset, Python's zipfile the directory's size and \
          position: when they disagree the two list different members.",
    fix: "Re-create the archive with a standard writer.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[436, 20],
};

/// Tar header problems.
pub(crate) const TAR_HEADER_INVALID: RuleDoc = RuleDoc {
    id: "AEG-SCAN-216",
    name: "tar-header-invalid",
    severity: Severity::Medium,
    summary: "A tar header has a bad checksum or inconsistent fields",
    why: "Python's tarfile stops at the first bad header, so members after it are invisible to tarfile-based \
          scanners while GNU tar or lenient readers still extract them.",
    fix: "Download the file again; re-create the archive with a standard tool.",
    atlas: &[ATLAS_SUPPLY],
    cwe: &[20, 436],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[
    &PREPENDED_DATA,
    &NAME_MISMATCH,
    &DUPLICATE_MEMBER,
    &ENCRYPTED_FLAG,
    &CRC_MISMATCH,
    &UNSUPPORTED_METHOD,
    &PATH_TRAVERSAL,
    &SUSPICIOUS_NAME,
    &LINK_MEMBER,
    &OVERLAPPING_MEMBERS,
    &EXTREME_RATIO,
    &HEADER_MISMATCH,
    &DATA_DESCRIPTOR,
    &NO_CENTRAL_DIRECTORY,
    &MEMBER_UNREADABLE,
    &DIRECTORY_INCONSISTENT,
    &TAR_HEADER_INVALID,
];

/// Stored members up to this size always have their CRC verified (larger ones only when they sniff as a
/// known format), so multi-GiB tensor storage is not read end to end.
const CRC_VERIFY_MAX: u64 = 8 << 20;
/// Overlapping members larger than this are not decompressed (zip bomb).
const OVERLAP_MEMBER_MAX: u64 = 1 << 20;
/// Total bytes decompressed from overlapping members of one archive.
const OVERLAP_TOTAL_MAX: u64 = 64 << 20;
/// Backward seeks allowed over a member decompressed on the fly.
const MAX_RESTARTS: u32 = 4;
/// Bytes of a symlink member read as its target.
const LINK_TARGET_MAX: u64 = 4096;

/// One finding about a member, before grouping by rule.
struct Hit {
    rule: &'static RuleDoc,
    severity: Severity,
    message: String,
    evidence: Value,
}

impl Hit {
    fn new(rule: &'static RuleDoc, message: String, evidence: Value) -> Hit {
        Hit {
            rule,
            severity: rule.severity,
            message,
            evidence,
        }
    }

    fn at(mut self, severity: Severity) -> Hit {
        self.severity = severity;
        self
    }
}

/// Emit hits about `member` (or the archive itself when `None`), one finding per rule: the first hit's
/// message, the highest severity, and later hits' evidence under `also`.
fn emit_grouped(ctx: &mut Ctx<'_>, member: Option<&str>, hits: Vec<Hit>) {
    let mut grouped: BTreeMap<&'static str, (Hit, Vec<Value>)> = BTreeMap::new();
    for hit in hits {
        match grouped.get_mut(hit.rule.id) {
            Some((first, also)) => {
                first.severity = first.severity.max(hit.severity);
                also.push(hit.evidence);
            }
            None => {
                grouped.insert(hit.rule.id, (hit, Vec::new()));
            }
        }
    }
    for (_, (hit, also)) in grouped {
        let location = match member {
            Some(name) => ctx.location().clone().member(name),
            None => ctx.location().clone(),
        };
        let mut finding = Finding::new(hit.rule, location, hit.message)
            .with_evidence(hit.evidence)
            .with_severity(hit.severity);
        if !also.is_empty() {
            finding = finding.with_evidence_field("also", also);
        }
        ctx.emit(finding);
    }
}

fn limit_hit(ctx: &mut Ctx<'_>, member: Option<&str>, message: String, evidence: Value) {
    emit_grouped(
        ctx,
        member,
        vec![Hit::new(&engine_rules::LIMIT_HIT, message, evidence)],
    );
}

// ---------------------------------------------------------------------------------------------------------
// Zip.

/// Per-archive budgets while scanning members.
#[derive(Default)]
struct Budget {
    expanded: u64,
    overlapping: u64,
    skipped: Vec<String>,
    /// Data ranges already scanned (offset, compressed size, method): members that share their bytes
    /// exactly (an overlapping bomb repeats one range thousands of times) are scanned once.
    scanned: std::collections::HashSet<(u64, u64, u16)>,
}

/// Scan a zip archive: structure findings, then every member through the engine.
pub(crate) fn scan_zip(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let limits = ctx.limits().clone();
    let archive = match ZipArchive::open(blob, len, &limits) {
        Ok(archive) => archive,
        Err(err) => {
            let finding = crate::engine_rules::unreadable(ctx.location().clone(), &err.to_string());
            ctx.emit(finding);
            scan_by_head(ctx, blob, len);
            return;
        }
    };
    report_archive(ctx, &archive);
    scan_prepended(ctx, blob, &archive);
    let mut budget = Budget::default();
    let mark = ctx.findings_len();
    for entry in &archive.entries {
        scan_zip_entry(ctx, blob, len, entry, &mut budget);
    }
    crate::tensors::check_archive(ctx, blob, &archive);
    crate::torchscript::check_archive(ctx, blob, &archive);
    ctx.cap_findings(mark, "AEG-SCAN-2", MAX_FINDINGS_PER_RULE);
    if let Some(first) = budget.skipped.first() {
        let limit = limits.max_expanded_bytes;
        let message = format!(
            "{} compressed member(s) not scanned, starting with `{first}`: more than {limit} bytes \
             would be decompressed from this archive",
            budget.skipped.len()
        );
        let evidence = json!({ "limit": "max_expanded_bytes", "value": limit,
                               "members_skipped": budget.skipped.len(), "first": first });
        limit_hit(ctx, None, message, evidence);
    }
}

/// The archive could not be opened as a zip (its tail merely looked like one): scan it as what its head
/// says it is, since a loader that checks the first bytes (`torch.load`) would.
fn scan_by_head(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let mut head = Vec::new();
    let read = blob
        .seek(SeekFrom::Start(0))
        .and_then(|_| blob.take(sniff::HEAD_LEN as u64).read_to_end(&mut head))
        .and_then(|_| blob.seek(SeekFrom::Start(0)));
    if read.is_err() {
        return;
    }
    match sniff::sniff(&head, &[], len) {
        Format::Pickle => crate::pickle::scan(ctx, blob, len),
        Format::Tar => scan_tar(ctx, blob, len),
        Format::Compressed(codec) => crate::compressed::scan(ctx, blob, len, codec),
        _ => {}
    }
}

fn report_archive(ctx: &mut Ctx<'_>, archive: &ZipArchive) {
    let mut hits = Vec::new();
    for anomaly in &archive.anomalies {
        let hit = match anomaly {
            Anomaly::PrependedData { bytes, relative } => Hit::new(
                &PREPENDED_DATA,
                format!(
                    "{bytes} bytes precede the first zip member; loaders still open the archive, \
                     scanners expecting `PK` at offset 0 do not"
                ),
                json!({ "bytes": bytes, "offsets_relative_to_archive": relative }),
            ),
            Anomaly::NoCentralDirectory => Hit::new(
                &NO_CENTRAL_DIRECTORY,
                "no end-of-central-directory record; members found by walking local headers".into(),
                json!({ "members": archive.entries.len() }),
            ),
            Anomaly::TwoCentralDirectories { .. } => Hit::new(
                &DIRECTORY_INCONSISTENT,
                format!(
                    "two central directories: {}; members of both are scanned",
                    describe(anomaly)
                ),
                json!({ "kind": anomaly.kind(), "detail": describe(anomaly) }),
            )
            .at(Severity::High),
            Anomaly::TooManyMembers { limit } => Hit::new(
                &engine_rules::LIMIT_HIT,
                format!("more than {limit} members; the rest were not scanned"),
                json!({ "limit": "max_members", "value": limit }),
            ),
            Anomaly::ExpandedSizeOverLimit { declared, limit } => Hit::new(
                &engine_rules::LIMIT_HIT,
                format!(
                    "members declare {declared} bytes once decompressed, over the limit of {limit}"
                ),
                json!({ "limit": "max_expanded_bytes", "value": limit, "declared": declared }),
            ),
            other => Hit::new(
                &DIRECTORY_INCONSISTENT,
                format!("central directory inconsistent: {}", describe(other)),
                json!({ "kind": other.kind(), "detail": describe(other) }),
            ),
        };
        hits.push(hit);
    }
    emit_grouped(ctx, None, hits);
}

fn describe(anomaly: &Anomaly) -> String {
    match anomaly {
        Anomaly::CentralDirectoryMoved { declared, actual } => {
            format!("directory declared at {declared} but found at {actual}")
        }
        Anomaly::TwoCentralDirectories {
            python,
            miniz,
            extra_members,
        } => format!(
            "zipfile reads the directory at {python}, miniz (PyTorch) the one at {miniz}, which lists \
             {extra_members} other member(s)"
        ),
        Anomaly::Zip64RecordMissing => "ZIP64 locator without a ZIP64 end record".into(),
        Anomaly::CentralDirectoryCorrupt { offset, detail } => format!("{detail} at {offset}"),
        Anomaly::EntryCountMismatch { declared, found } => {
            format!("end record declares {declared} entries, directory holds {found}")
        }
        other => other.kind().to_owned(),
    }
}

/// Scan the bytes before the first member as a blob of their own (a pickle there runs under
/// `torch.load`'s legacy path, which checks the first bytes only).
fn scan_prepended(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, archive: &ZipArchive) {
    if archive.prepended == 0 {
        return;
    }
    match Window::new(blob, 0, archive.prepended) {
        Ok(mut window) => {
            ctx.scan_member("<prepended data>", &mut window, archive.prepended);
        }
        Err(err) => unreadable_member(ctx, "<prepended data>", &err.to_string()),
    }
}

fn unreadable_member(ctx: &mut Ctx<'_>, name: &str, error: &str) {
    let finding = crate::engine_rules::unreadable(ctx.location().clone().member(name), error);
    ctx.emit(finding);
}

fn scan_zip_entry(
    ctx: &mut Ctx<'_>,
    blob: &mut dyn Blob,
    len: u64,
    entry: &ZipEntry,
    budget: &mut Budget,
) {
    let overlapping = entry.has("overlap");
    let scan_content = !overlapping || overlap_allowed(entry, budget);
    let mut hits = entry_hits(entry, scan_content);
    if entry.has("symlink") {
        hits.push(symlink_hit(blob, entry));
        emit_grouped(ctx, Some(&entry.name), hits);
        return;
    }
    emit_grouped(ctx, Some(&entry.name), hits);
    let readable = entry.data_offset.is_some() && !entry.has("data-out-of-bounds");
    if !scan_content || !readable || (entry.is_dir() && entry.uncompressed_size == 0) {
        return;
    }
    let range = (
        entry.data_offset.unwrap_or_default(),
        entry.compressed_size,
        entry.method,
    );
    if !budget.scanned.insert(range) {
        return;
    }
    match entry.method {
        METHOD_STORED => scan_stored(ctx, blob, len, entry),
        METHOD_DEFLATED => scan_deflated(ctx, blob, entry, budget),
        _ => {}
    }
}

/// Whether an overlapping member is small enough to decompress anyway (within the per-archive allowance).
fn overlap_allowed(entry: &ZipEntry, budget: &mut Budget) -> bool {
    let size = entry.uncompressed_size;
    if size > OVERLAP_MEMBER_MAX || budget.overlapping.saturating_add(size) > OVERLAP_TOTAL_MAX {
        return false;
    }
    budget.overlapping += size;
    true
}

/// Findings for a member's recorded anomalies.
fn entry_hits(entry: &ZipEntry, content_scanned: bool) -> Vec<Hit> {
    let name = &entry.name;
    let base = json!({ "member": name, "header_offset": entry.header_offset });
    let with = |extra: Value| merge(&base, extra);
    let mut hits = Vec::new();
    for anomaly in &entry.anomalies {
        let hit = match anomaly {
            Anomaly::NameMismatch { local } => Hit::new(
                &NAME_MISMATCH,
                format!(
                    "member `{name}` is called `{local}` in its local header: PyTorch reads it by the \
                     central name, zipfile refuses it"
                ),
                with(json!({ "central_name": name, "local_name": local })),
            ),
            Anomaly::HeaderMismatch {
                field,
                local,
                central,
            } => Hit::new(
                &HEADER_MISMATCH,
                format!("member `{name}`: local header {field} is {local}, central directory says {central}"),
                with(json!({ "field": field, "local": local, "central": central })),
            ),
            Anomaly::StoredSizeMismatch {
                compressed,
                uncompressed,
            } => Hit::new(
                &HEADER_MISMATCH,
                format!("stored member `{name}` declares {compressed} bytes stored but {uncompressed} expanded"),
                with(json!({ "field": "stored_size", "compressed": compressed, "uncompressed": uncompressed })),
            ),
            Anomaly::Encrypted => Hit::new(
                &ENCRYPTED_FLAG,
                format!(
                    "member `{name}` is flagged encrypted; PyTorch reads it as plain data (so did Aegis), \
                     zipfile-based tools cannot open it"
                ),
                with(json!({ "flags": entry.flags, "method": entry.method })),
            ),
            Anomaly::DataDescriptor => Hit::new(
                &DATA_DESCRIPTOR,
                format!("member `{name}` keeps its CRC and sizes in a data descriptor"),
                with(json!({ "flags": entry.flags })),
            ),
            Anomaly::UnsupportedMethod { method } => Hit::new(
                &UNSUPPORTED_METHOD,
                format!("member `{name}` uses compression method {method}; its content was not scanned"),
                with(json!({ "method": method, "compressed_size": entry.compressed_size })),
            ),
            Anomaly::DuplicateName { first } => Hit::new(
                &DUPLICATE_MEMBER,
                format!("member `{name}` (entry {}) repeats the name of entry {first}", entry.index),
                with(json!({ "index": entry.index, "first_index": first })),
            ),
            Anomaly::UnsafeName { issues } => name_hit(name, issues, &base),
            Anomaly::Overlap { with: other } => Hit::new(
                &OVERLAPPING_MEMBERS,
                format!("member `{name}` overlaps the data of entry {other} (zip bomb construction)"),
                with(json!({ "overlaps_index": other, "compressed_size": entry.compressed_size,
                              "uncompressed_size": entry.uncompressed_size,
                              "content_scanned": content_scanned })),
            ),
            Anomaly::DataOutOfBounds { end, len } => Hit::new(
                &MEMBER_UNREADABLE,
                format!("member `{name}` data ends at {end}, past the end of the file ({len} bytes)"),
                with(json!({ "data_end": end, "file_len": len })),
            ),
            Anomaly::LocalHeaderInvalid { offset, detail } => Hit::new(
                &MEMBER_UNREADABLE,
                format!("member `{name}`: local header at {offset} unusable: {detail}"),
                with(json!({ "detail": detail })),
            ),
            Anomaly::ExtremeRatio {
                compressed,
                uncompressed,
            } => Hit::new(
                &EXTREME_RATIO,
                format!("member `{name}` expands {compressed} bytes to {uncompressed}"),
                with(json!({ "compressed_size": compressed, "uncompressed_size": uncompressed,
                              "ratio": uncompressed / (*compressed).max(1) })),
            ),
            // Symlinks need their content (handled by the caller); archive-level kinds do not occur here.
            _ => continue,
        };
        hits.push(hit);
    }
    hits
}

fn merge(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    if let (Value::Object(out), Value::Object(extra)) = (&mut out, extra) {
        out.extend(extra);
    }
    out
}

/// A finding for an unsafe member name: traversal is high, NUL high (loaders disagree on the name),
/// backslashes and control characters medium.
fn name_hit(name: &str, issues: &[&'static str], base: &Value) -> Hit {
    let evidence = merge(base, json!({ "issues": issues }));
    let traversal = issues
        .iter()
        .any(|i| matches!(*i, "absolute" | "drive" | "parent"));
    if traversal {
        return Hit::new(
            &PATH_TRAVERSAL,
            format!(
                "member `{name}` would be extracted outside the target directory ({})",
                issues.join(", ")
            ),
            evidence,
        );
    }
    let hit = Hit::new(
        &SUSPICIOUS_NAME,
        format!(
            "member name `{}` is ambiguous ({})",
            name.escape_debug(),
            issues.join(", ")
        ),
        evidence,
    );
    if issues.contains(&"nul") {
        hit.at(Severity::High)
    } else {
        hit
    }
}

/// Read a zip symlink's target (its content) and judge it.
fn symlink_hit(blob: &mut dyn Blob, entry: &ZipEntry) -> Hit {
    let mut target = Vec::new();
    let read = entry
        .reader(blob, LINK_TARGET_MAX)
        .map_err(|e| e.to_string())
        .and_then(|mut r| r.read_to_end(&mut target).map_err(|e| e.to_string()));
    let target = String::from_utf8_lossy(&target).into_owned();
    let mut hit = link_hit(&entry.name, &target, true, "symlink");
    if let Err(err) = read {
        hit.evidence = merge(&hit.evidence, json!({ "read_error": err }));
    }
    hit
}

/// A finding for a link member: high when the target escapes the extraction directory, low otherwise.
/// Symlink targets are relative to the member's directory, hard-link targets to the archive root.
fn link_hit(name: &str, target: &str, relative_to_member: bool, kind: &str) -> Hit {
    let escapes = link_escapes(name, target, relative_to_member);
    let evidence =
        json!({ "member": name, "link_type": kind, "target": target, "escapes": escapes });
    let hit = Hit::new(
        &LINK_MEMBER,
        format!("{kind} member `{name}` points to `{target}`"),
        evidence,
    );
    if escapes {
        hit
    } else {
        hit.at(Severity::Low)
    }
}

/// Whether `target` resolves outside the extraction root.
pub(crate) fn link_escapes(member: &str, target: &str, relative_to_member: bool) -> bool {
    let issues = name_issues(target.as_bytes());
    if issues.iter().any(|i| matches!(*i, "absolute" | "drive")) || target.is_empty() {
        return !target.is_empty();
    }
    let mut depth: i64 = 0;
    let mut walk = |path: &str| {
        for part in path.split(['/', '\\']) {
            match part {
                "" | "." => {}
                ".." => depth -= 1,
                _ => depth += 1,
            }
            if depth < 0 {
                return false;
            }
        }
        true
    };
    if relative_to_member {
        let dir = member.rsplit_once('/').map_or("", |(dir, _)| dir);
        if !walk(dir) {
            return true;
        }
    }
    !walk(target)
}

fn scan_stored(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64, entry: &ZipEntry) {
    let Some(offset) = entry.data_offset else {
        return;
    };
    let size = entry.stored_len().min(len.saturating_sub(offset));
    if size <= SMALL_MEMBER {
        // One read, then every parser works on memory: far fewer syscalls than seeking a buffered file
        // for each member's head and tail (a checkpoint holds hundreds of small tensors).
        let mut bytes = Vec::with_capacity(size as usize);
        let read = blob
            .seek(SeekFrom::Start(offset))
            .and_then(|_| (&mut *blob).take(size).read_to_end(&mut bytes));
        if let Err(err) = read {
            unreadable_member(ctx, &entry.name, &err.to_string());
            return;
        }
        ctx.scan_member_bytes(&entry.name, &bytes);
        // Raw tensor storage is never executed; its CRC is an integrity question, not a security one, and
        // PyTorch does not check it either. Members in a format we parse are verified.
        let head = &bytes[..bytes.len().min(sniff::HEAD_LEN)];
        if sniff::sniff(head, &[], size) != Format::Unknown {
            verify_crc(ctx, blob, entry, offset);
        }
        return;
    }
    let known = match Window::new(blob, offset, size) {
        Ok(mut window) => {
            let known = sniffs_known(&mut window, size);
            let _ = window.seek(SeekFrom::Start(0));
            ctx.scan_member(&entry.name, &mut window, size);
            known
        }
        Err(err) => {
            unreadable_member(ctx, &entry.name, &err.to_string());
            return;
        }
    };
    if size <= CRC_VERIFY_MAX || known {
        verify_crc(ctx, blob, entry, offset);
    }
}

/// Archive findings listed per rule per archive; further ones are counted in one summary finding.
const MAX_FINDINGS_PER_RULE: usize = 16;

/// Stored members up to this size are read into memory once and scanned from there.
const SMALL_MEMBER: u64 = 1 << 20;

/// Read a member to its end and report what that showed (CRC, actual size).
fn verify_crc(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, entry: &ZipEntry, offset: u64) {
    match entry.reader(blob, u64::MAX).and_then(|r| {
        r.finish()
            .map_err(|e| aegis_formats::Error::io("zip", offset, e))
    }) {
        Ok(check) => report_check(ctx, entry, &check),
        Err(err) => unreadable_member(ctx, &entry.name, &err.to_string()),
    }
}

/// Whether the first bytes of a member sniff as a format we parse.
fn sniffs_known(window: &mut Window<'_>, size: u64) -> bool {
    let mut head = Vec::new();
    if window
        .take(sniff::HEAD_LEN as u64)
        .read_to_end(&mut head)
        .is_err()
    {
        return true;
    }
    sniff::sniff(&head, &[], size) != Format::Unknown
}

/// Decompress a deflated member into memory when small enough (the bound halves per nesting level),
/// otherwise scan it through a decompress-as-you-read view.
fn scan_deflated(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, entry: &ZipEntry, budget: &mut Budget) {
    let limits = ctx.limits().clone();
    let declared = entry.uncompressed_size;
    if budget.expanded.saturating_add(declared) > limits.max_expanded_bytes {
        budget.skipped.push(entry.name.clone());
        return;
    }
    let in_memory = limits.max_in_memory >> ctx.depth().min(63);
    if declared <= in_memory {
        budget.expanded += declared;
        return scan_deflated_in_memory(ctx, blob, entry, declared);
    }
    if entry.has("extreme-ratio") {
        // A bomb: scan a prefix only, never inflate it end to end.
        budget.expanded += in_memory;
        let message = format!(
            "member `{}` expands to {declared} bytes at an extreme ratio; only the first {in_memory} \
             were scanned",
            entry.name
        );
        let evidence =
            json!({ "limit": "max_in_memory", "value": in_memory, "declared": declared });
        limit_hit(ctx, Some(&entry.name), message, evidence);
        return scan_deflated_in_memory(ctx, blob, entry, in_memory);
    }
    budget.expanded += declared;
    match entry.inflated_blob(blob, MAX_RESTARTS) {
        Ok(mut view) => {
            ctx.scan_member(&entry.name, &mut view, declared);
        }
        Err(err) => unreadable_member(ctx, &entry.name, &err.to_string()),
    }
}

fn scan_deflated_in_memory(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, entry: &ZipEntry, cap: u64) {
    let mut reader = match entry.reader(blob, cap) {
        Ok(reader) => reader,
        Err(err) => return unreadable_member(ctx, &entry.name, &err.to_string()),
    };
    let mut bytes = Vec::new();
    let read = reader.read_to_end(&mut bytes);
    let check = read.and_then(|_| reader.finish());
    ctx.scan_member_bytes(&entry.name, &bytes);
    match check {
        Ok(check) => report_check(ctx, entry, &check),
        Err(err) => unreadable_member(
            ctx,
            &entry.name,
            &format!("deflate stream broken after {} bytes: {err}", bytes.len()),
        ),
    }
}

/// Findings for what reading a member to its end showed (CRC, actual size).
fn report_check(ctx: &mut Ctx<'_>, entry: &ZipEntry, check: &Check) {
    let name = &entry.name;
    let mut hits = Vec::new();
    if check.crc_mismatch() {
        hits.push(Hit::new(
            &CRC_MISMATCH,
            format!(
                "member `{name}`: CRC-32 is {:08x}, the directory says {:08x}",
                check.crc32, check.expected_crc32
            ),
            json!({ "member": name, "expected_crc32": format!("{:08x}", check.expected_crc32),
                    "actual_crc32": format!("{:08x}", check.crc32),
                    "crc_not_recorded": check.expected_crc32 == 0 }),
        ));
    }
    if check.size_mismatch() {
        let actual = if check.longer {
            format!("more than {}", check.bytes)
        } else {
            check.bytes.to_string()
        };
        hits.push(Hit::new(
            &HEADER_MISMATCH,
            format!(
                "member `{name}` holds {actual} bytes, the directory says {}; loaders stop at the \
                 declared size",
                check.declared
            ),
            json!({ "member": name, "field": "actual_size", "declared": check.declared,
                    "read": check.bytes, "longer": check.longer }),
        ));
    }
    emit_grouped(ctx, Some(name), hits);
}

// ---------------------------------------------------------------------------------------------------------
// Tar.

/// Scan a tar archive: header findings, links, names, then every regular member through the engine.
pub(crate) fn scan_tar(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let limits = ctx.limits().clone();
    let archive = match TarArchive::open(blob, len, &limits) {
        Ok(archive) => archive,
        Err(err) => {
            let finding = crate::engine_rules::unreadable(ctx.location().clone(), &err.to_string());
            ctx.emit(finding);
            return;
        }
    };
    let mut hits = Vec::new();
    for anomaly in &archive.anomalies {
        hits.push(tar_archive_hit(anomaly));
    }
    emit_grouped(ctx, None, hits);
    for entry in &archive.entries {
        let hits = tar_entry_hits(entry);
        emit_grouped(ctx, Some(&entry.name), hits);
        // tarfile reads unknown type flags as regular files; only links, devices, directories and FIFOs
        // carry no data.
        if !matches!(entry.kind, TarKind::Regular | TarKind::Other(_)) {
            continue;
        }
        match Window::new(blob, entry.data_offset, entry.size) {
            Ok(mut window) => match crate::legacy::Layout::of(&entry.name) {
                Some(layout) => {
                    ctx.scan_member_with(&entry.name, &mut window, entry.size, |ctx, blob, len| {
                        crate::legacy::scan(ctx, blob, len, layout)
                    });
                }
                None => {
                    ctx.scan_member(&entry.name, &mut window, entry.size);
                }
            },
            Err(err) => unreadable_member(ctx, &entry.name, &err.to_string()),
        }
    }
}

fn tar_archive_hit(anomaly: &TarAnomaly) -> Hit {
    match anomaly {
        TarAnomaly::TooManyMembers { limit } => Hit::new(
            &engine_rules::LIMIT_HIT,
            format!("more than {limit} members; the rest were not scanned"),
            json!({ "limit": "max_members", "value": limit }),
        ),
        TarAnomaly::Truncated { offset } => Hit::new(
            &MEMBER_UNREADABLE,
            format!("the archive ends inside a header or member at {offset}"),
            json!({ "offset": offset }),
        ),
        other => Hit::new(
            &TAR_HEADER_INVALID,
            format!("tar header unusable: {other:?}"),
            json!({ "kind": other.kind(), "detail": format!("{other:?}") }),
        ),
    }
}

fn tar_entry_hits(entry: &TarEntry) -> Vec<Hit> {
    let name = &entry.name;
    let base = json!({ "member": name, "header_offset": entry.header_offset });
    let mut hits = Vec::new();
    for anomaly in &entry.anomalies {
        let hit = match anomaly {
            TarAnomaly::ChecksumMismatch { stored, computed } => Hit::new(
                &TAR_HEADER_INVALID,
                format!(
                    "header of `{name}` has checksum {stored}, its bytes sum to {computed}; tarfile stops here"
                ),
                merge(&base, json!({ "stored": stored, "computed": computed })),
            ),
            TarAnomaly::NonRegularWithData { size } => Hit::new(
                &TAR_HEADER_INVALID,
                format!("non-regular member `{name}` declares {size} bytes of data; tools disagree on the next header"),
                merge(&base, json!({ "size": size })),
            ),
            TarAnomaly::DuplicateName { first } => Hit::new(
                &DUPLICATE_MEMBER,
                format!("member `{name}` (entry {}) repeats the name of entry {first}", entry.index),
                merge(&base, json!({ "index": entry.index, "first_index": first })),
            )
            // Appending to a tar legitimately repeats names; tarfile takes the last, and both are scanned.
            .at(Severity::Medium),
            TarAnomaly::UnsafeName { issues } => name_hit(name, issues, &base),
            other => Hit::new(
                &TAR_HEADER_INVALID,
                format!("member `{name}`: {other:?}"),
                merge(&base, json!({ "kind": other.kind() })),
            ),
        };
        hits.push(hit);
    }
    match (entry.kind, &entry.link_target) {
        (TarKind::Symlink, Some(target)) => hits.push(link_hit(name, target, true, "symlink")),
        (TarKind::Hardlink, Some(target)) => hits.push(link_hit(name, target, false, "hard link")),
        _ => {}
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, Scanner};
    use aegis_formats::Limits;
    use aegis_test_support::tar::{self as t, TarMember, TarWriter};
    use aegis_test_support::zip::{self as z, Member, Method, ZipWriter};

    fn scan(name: &str, bytes: &[u8]) -> crate::FileOutcome {
        Scanner::default().scan_bytes(name, bytes)
    }

    fn rules_of(outcome: &crate::FileOutcome) -> Vec<(&str, Severity)> {
        outcome
            .findings
            .iter()
            .map(|f| (f.rule.as_str(), f.severity))
            .collect()
    }

    fn has(outcome: &crate::FileOutcome, rule: &RuleDoc) -> bool {
        outcome.findings.iter().any(|f| f.rule.as_str() == rule.id)
    }

    fn has_rule(outcome: &crate::FileOutcome, id: &str) -> bool {
        outcome.findings.iter().any(|f| f.rule.as_str() == id)
    }

    fn max_severity(outcome: &crate::FileOutcome) -> Option<Severity> {
        outcome.findings.iter().map(|f| f.severity).max()
    }

    fn pickles_seen(outcome: &crate::FileOutcome) -> u64 {
        outcome.stats.formats.get("pickle").copied().unwrap_or(0)
    }

    #[test]
    fn honest_pytorch_zip_is_quiet_and_its_pickle_is_scanned() {
        let out = scan("model.pt", &z::pytorch_zip(&z::state_dict_pickle()));
        assert!(out.findings.is_empty(), "{:?}", rules_of(&out));
        assert_eq!(pickles_seen(&out), 1);
        assert_eq!(out.stats.formats.get("zip"), Some(&1));
    }

    #[test]
    fn every_member_is_scanned_wherever_it_is() {
        let zip = ZipWriter::from_members(z::pytorch_members("archive", z::BENIGN_PICKLE))
            .stored("archive/extra/evil.pkl", z::PAYLOAD_PICKLE)
            .deflated("archive/deflated.pkl", z::PAYLOAD_PICKLE)
            .finish();
        assert_eq!(pickles_seen(&scan("model.pt", &zip)), 3);
        let nested = z::nested(3, &zip);
        assert_eq!(pickles_seen(&scan("bundle.zip", &nested)), 3);
        let npz = scan("a.npz", &z::npz(true));
        assert_eq!(npz.stats.formats.get("npy"), Some(&2));
        let keras = scan("m.keras", &z::keras_zip());
        assert_eq!(keras.stats.formats.get("json"), Some(&2));
    }

    #[test]
    fn prepended_data_is_reported_and_scanned() {
        let zip = ZipWriter::from_members(z::pytorch_members("archive", z::BENIGN_PICKLE))
            .prepend(z::PAYLOAD_PICKLE)
            .finish();
        let out = scan("model.pt", &zip);
        assert!(has(&out, &PREPENDED_DATA));
        assert_eq!(pickles_seen(&out), 2, "the prepended pickle is scanned too");
        let plain = scan("model.pt", &z::pytorch_zip(z::BENIGN_PICKLE));
        assert!(!has(&plain, &PREPENDED_DATA));
    }

    #[test]
    fn loader_confusion_is_high() {
        let mismatch = ZipWriter::new()
            .member(
                Member::stored("archive/readme.txt", z::PAYLOAD_PICKLE)
                    .central_name("archive/data.pkl"),
            )
            .finish();
        let out = scan("model.pt", &mismatch);
        assert!(out
            .findings
            .iter()
            .any(|f| f.rule.as_str() == NAME_MISMATCH.id && f.severity == Severity::High));
        assert_eq!(pickles_seen(&out), 1);
        let dup = ZipWriter::new()
            .stored("a/data.pkl", z::BENIGN_PICKLE)
            .stored("a/data.pkl", z::PAYLOAD_PICKLE)
            .finish();
        let out = scan("model.pt", &dup);
        assert!(has(&out, &DUPLICATE_MEMBER));
        assert_eq!(pickles_seen(&out), 2);
        let unique = ZipWriter::new()
            .stored("a/data.pkl", z::BENIGN_PICKLE)
            .stored("a/other.pkl", z::BENIGN_PICKLE)
            .finish();
        let out = scan("model.pt", &unique);
        assert!(!has(&out, &DUPLICATE_MEMBER) && !has(&out, &NAME_MISMATCH));
    }

    #[test]
    fn two_central_directories_are_high_and_both_are_scanned() {
        let out = scan("model.pt", &z::two_directories(z::PAYLOAD_PICKLE));
        assert!(has_rule(&out, "AEG-SCAN-101"), "{:?}", rules_of(&out));
        assert!(out
            .findings
            .iter()
            .any(|f| f.rule.as_str() == DIRECTORY_INCONSISTENT.id && f.severity == Severity::High));
        let honest = ZipWriter::from_members(z::pytorch_members("archive", z::BENIGN_PICKLE))
            .comment(b"exported by trainer v1.2")
            .finish();
        let out = scan("model.pt", &honest);
        assert!(!has(&out, &DIRECTORY_INCONSISTENT), "{:?}", rules_of(&out));
        assert!(max_severity(&out).is_none_or(|s| s < Severity::High));
    }

    #[test]
    fn encryption_flag_crc_and_method_are_medium_and_content_still_scanned() {
        let zip = ZipWriter::new()
            .member(Member::deflated("a/data.pkl", z::PAYLOAD_PICKLE).encrypted())
            .member(Member::stored("a/x.pkl", z::PAYLOAD_PICKLE).bad_crc())
            .member(Member::stored("a/y.pkl", z::PAYLOAD_PICKLE).method(Method::Other(12)))
            .finish();
        let out = scan("model.pt", &zip);
        for rule in [&ENCRYPTED_FLAG, &CRC_MISMATCH, &UNSUPPORTED_METHOD] {
            assert!(has(&out, rule), "{}: {:?}", rule.id, rules_of(&out));
        }
        let ours = out.findings.iter().filter(|f| {
            f.rule.as_str().starts_with("AEG-SCAN-2") && f.rule.as_str() != UNSUPPORTED_METHOD.id
        });
        assert_eq!(ours.map(|f| f.severity).max(), Some(Severity::Medium));
        assert_eq!(
            pickles_seen(&out),
            2,
            "encrypted and bad-CRC members are still read"
        );
        assert!(has_rule(&out, "AEG-SCAN-101"));
        let clean = ZipWriter::new()
            .deflated("a/data.pkl", z::BENIGN_PICKLE)
            .stored("a/x.pkl", z::BENIGN_PICKLE)
            .finish();
        assert!(scan("model.pt", &clean).findings.is_empty());
    }

    #[test]
    fn traversal_names_and_links_are_judged() {
        let zip = ZipWriter::new()
            .stored("../../.bashrc", b"echo pwned")
            .stored("dir\\file", b"x")
            .stored("a.pkl\0.txt", z::BENIGN_PICKLE)
            .member(Member::stored("m/link", b"../../etc/passwd").symlink())
            .member(Member::stored("m/ok", b"sibling").symlink())
            .finish();
        let out = scan("bundle.zip", &zip);
        let find = |rule: &RuleDoc, member: &str| {
            out.findings
                .iter()
                .find(|f| f.rule.as_str() == rule.id && f.location.to_string().contains(member))
                .map(|f| f.severity)
        };
        assert_eq!(find(&PATH_TRAVERSAL, ".bashrc"), Some(Severity::High));
        assert_eq!(find(&SUSPICIOUS_NAME, "dir\\file"), Some(Severity::Medium));
        assert_eq!(find(&SUSPICIOUS_NAME, "a.pkl"), Some(Severity::High));
        assert_eq!(find(&LINK_MEMBER, "m/link"), Some(Severity::High));
        assert_eq!(find(&LINK_MEMBER, "m/ok"), Some(Severity::Low));
        assert!(!link_escapes("a/b/c", "../x", true));
        assert!(link_escapes("a/c", "../../x", true));
        assert!(link_escapes("a/c", "/x", true));
        assert!(link_escapes("c", "a/../../x", false));
    }

    #[test]
    fn overlapping_bomb_is_reported_and_bounded() {
        let out = scan("bomb.zip", &z::overlapping_bomb(2000, 8 << 20));
        assert!(has(&out, &OVERLAPPING_MEMBERS));
        let overlap: Vec<_> = out
            .findings
            .iter()
            .filter(|f| f.rule.as_str() == OVERLAPPING_MEMBERS.id)
            .collect();
        // 1999 overlapping members: 16 listed, the rest counted in one summary.
        assert_eq!(overlap.len(), MAX_FINDINGS_PER_RULE + 1);
        assert_eq!(
            overlap.last().unwrap().evidence["omitted"],
            1999 - MAX_FINDINGS_PER_RULE
        );
        // The 2000 names share one data range, which is scanned once.
        let members_scanned: u64 = out.stats.formats.values().sum::<u64>() - 1;
        assert_eq!(members_scanned, 1, "{:?}", out.stats.formats);
        let honest = scan(
            "z.zip",
            &ZipWriter::new()
                .deflated("zeros", &vec![0u8; 2 << 20])
                .finish(),
        );
        assert!(!has(&honest, &OVERLAPPING_MEMBERS));
        assert!(
            max_severity(&honest) <= Some(Severity::Low),
            "{:?}",
            rules_of(&honest)
        );
    }

    #[test]
    fn deep_nesting_and_many_members_are_bounded() {
        let deep = z::nested(200, z::PAYLOAD_PICKLE);
        let out = scan("deep.zip", &deep);
        assert!(has(&out, &engine_rules::LIMIT_HIT));
        assert_eq!(pickles_seen(&out), 0);
        let mut w = ZipWriter::new();
        for i in 0..50 {
            w = w.stored(&format!("m{i}.pkl"), z::BENIGN_PICKLE);
        }
        let limits = Limits {
            max_members: 10,
            ..Limits::default()
        };
        let out = Scanner::new(Policy::default(), limits).scan_bytes("many.zip", &w.finish());
        assert!(has(&out, &engine_rules::LIMIT_HIT));
        assert_eq!(pickles_seen(&out), 10);
    }

    #[test]
    fn expanded_budget_and_large_members_are_bounded() {
        let zip = ZipWriter::new()
            .deflated("a.pkl", z::BENIGN_PICKLE)
            .deflated("big.bin", &vec![7u8; 3 << 20])
            .deflated("c.pkl", z::BENIGN_PICKLE)
            .finish();
        let limits = Limits {
            max_expanded_bytes: 1 << 20,
            max_in_memory: 1 << 10,
            ..Limits::default()
        };
        let out = Scanner::new(Policy::default(), limits).scan_bytes("x.zip", &zip);
        assert!(has(&out, &engine_rules::LIMIT_HIT), "{:?}", rules_of(&out));
        assert_eq!(pickles_seen(&out), 2);
        let limits = Limits {
            max_in_memory: 1 << 10,
            ..Limits::default()
        };
        let big = ZipWriter::new()
            .deflated("big.pkl", &[z::PAYLOAD_PICKLE, &[b'N'; 5000]].concat())
            .finish();
        let out = Scanner::new(Policy::default(), limits).scan_bytes("x.zip", &big);
        assert_eq!(pickles_seen(&out), 1, "streamed through the inflating view");
    }

    #[test]
    fn no_central_directory_is_reported() {
        let full = z::pytorch_zip(z::BENIGN_PICKLE);
        let cut = full.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        let out = scan("model.pt", &full[..cut]);
        assert!(has(&out, &NO_CENTRAL_DIRECTORY));
        assert_eq!(pickles_seen(&out), 1);
    }

    #[test]
    fn fake_end_record_on_a_pickle_still_scans_the_pickle() {
        let mut bytes = z::PAYLOAD_PICKLE.to_vec();
        bytes.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0\x2e\0\0\0\x00\x10\0\0\0\0");
        let out = scan("model.pkl", &bytes);
        assert!(has(&out, &engine_rules::UNREADABLE));
        assert_eq!(pickles_seen(&out), 0, "routed directly, not as a member");
        assert!(has_rule(&out, "AEG-SCAN-101"), "{:?}", rules_of(&out));
    }

    #[test]
    fn tar_members_links_and_checksums() {
        let tar = TarWriter::new()
            .member(TarMember::file("pickle", z::PAYLOAD_PICKLE).bad_checksum())
            .member(
                TarMember::file(&format!("{}/x.pkl", "d".repeat(120)), z::BENIGN_PICKLE)
                    .gnu_long_name(),
            )
            .member(TarMember::symlink("m/w", "../../../etc/shadow"))
            .member(TarMember::hardlink("m/h", "pickle"))
            .member(TarMember::file("../escape", b"x"))
            .finish();
        let out = scan("model.tar", &tar);
        assert_eq!(pickles_seen(&out), 2);
        assert!(has(&out, &TAR_HEADER_INVALID) && has(&out, &PATH_TRAVERSAL));
        let links: Vec<_> = out
            .findings
            .iter()
            .filter(|f| f.rule.as_str() == LINK_MEMBER.id)
            .map(|f| f.severity)
            .collect();
        assert_eq!(links, [Severity::High, Severity::Low]);
        let honest = scan("model.tar", &t::legacy_torch_tar(&z::state_dict_pickle()));
        assert!(honest.findings.is_empty(), "{:?}", rules_of(&honest));
        assert_eq!(pickles_seen(&honest), 4);
    }

    /// Timing smoke test: `cargo test -p aegis-scan --release --lib -- --ignored big_pytorch_zip`.
    #[test]
    #[ignore]
    fn big_pytorch_zip_is_fast() {
        let storage: Vec<u8> = (0..(256u32 << 20) / 4)
            .flat_map(|i| (i as f32 * 0.001).to_le_bytes())
            .collect();
        let mut members = z::pytorch_members("archive", &z::state_dict_pickle());
        for i in 1..=4 {
            members.push(Member::stored(&format!("archive/data/{i}"), &storage).align(64));
        }
        let bytes = ZipWriter::from_members(members).finish();
        drop(storage);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pt");
        std::fs::write(&path, &bytes).unwrap();
        drop(bytes);
        let start = std::time::Instant::now();
        let out = Scanner::default().scan_file(&path, "big.pt");
        let took = start.elapsed();
        eprintln!(
            "scanned 1 GiB PyTorch zip in {took:?}: {:?}",
            rules_of(&out)
        );
        assert!(out.findings.is_empty());
    }
}
