//! The `storages` and `tensors` members of a legacy (pre-1.6) PyTorch tar checkpoint, read the way
//! `torch.serialization.legacy_load` reads them: pickles interleaved with raw bytes.
//!
//! - `storages`: a pickle of the count, then per storage a pickle `(key, location, storage_type)`, an 8-byte
//!   element count and that many elements of raw data, then a pickle of the storage views;
//! - `tensors`: a pickle of the count, then per tensor a pickle `(key, storage_id, tensor_type)`, a 4-byte
//!   `ndim`, 4 skipped bytes, `ndim` sizes and `ndim` strides (8 bytes each) and an 8-byte storage offset.
//!
//! `pickle.load` runs every one of those pickles, including one placed after raw bytes; a scanner that reads
//! the member as one pickle stream stops at the first raw byte. Each pickle here is judged like any other.

use std::io::Read;

use aegis_formats::pickle::Emulator;
use aegis_formats::Blob;
use serde_json::json;

use crate::Ctx;

/// Records walked per member (a checkpoint has thousands of tensors at most).
const MAX_RECORDS: u64 = 1 << 20;

/// Which member layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The `storages` member.
    Storages,
    /// The `tensors` member.
    Tensors,
}

impl Layout {
    /// The layout of a tar member named `name` (`storages`, `tensors`, or either under a directory).
    pub(crate) fn of(name: &str) -> Option<Layout> {
        match name.rsplit('/').next() {
            Some("storages") => Some(Layout::Storages),
            Some("tensors") => Some(Layout::Tensors),
            _ => None,
        }
    }
}

/// Scan a member with this layout: walk its records and judge every pickle in it. A member that does not
/// start with the layout's count pickle is scanned as any blob; one whose layout breaks part way is reported
/// and scanned as any blob too, since the loader would read what follows differently than any scan can
/// guess.
pub(crate) fn scan(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64, layout: Layout) {
    let mut walker = Walker { pos: 0, len };
    let count = walker
        .pickle(ctx, blob, true)
        .and_then(|(count, _)| count)
        .filter(|c| *c <= MAX_RECORDS);
    let Some(count) = count else {
        return generic(ctx, blob, len);
    };
    *ctx.stats.formats.entry("pickle").or_insert(0) += 1;
    ctx.add_bytes(len);
    for i in 0..count {
        let Some((_, storage_type)) = walker.pickle(ctx, blob, true) else {
            walker.broken(ctx, i);
            return generic(ctx, blob, len);
        };
        let skipped = match layout {
            Layout::Storages => walker.skip_storage(blob, storage_type.as_deref()),
            Layout::Tensors => walker.skip_tensor(blob),
        };
        if skipped.is_none() {
            walker.broken(ctx, i);
            return generic(ctx, blob, len);
        }
    }
    if layout == Layout::Storages && walker.pos < len && walker.pickle(ctx, blob, true).is_none() {
        walker.broken(ctx, count);
        generic(ctx, blob, len);
    }
}

/// The engine's own dispatch, from the start of the blob.
fn generic(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    ctx.scan_as_any_blob(blob, len);
}

struct Walker {
    pos: u64,
    len: u64,
}

impl Walker {
    /// Emulate one pickle at the current position, judge it (when `judge`), and move past it. Returns the
    /// small integer it holds, if it is one, and the name of the last global it imports.
    fn pickle(
        &mut self,
        ctx: &mut Ctx<'_>,
        blob: &mut dyn Blob,
        judge: bool,
    ) -> Option<(Option<u64>, Option<String>)> {
        let mut limits = ctx.limits().clone();
        limits.max_pickles = 1;
        blob.seek(std::io::SeekFrom::Start(self.pos)).ok()?;
        let trace = Emulator::new(&limits)
            .strict(true)
            .run((&mut *blob).take(self.len - self.pos))
            .ok()?;
        if trace.pickles != 1 || trace.bytes == 0 {
            return None;
        }
        let start = self.pos;
        let end = start + trace.bytes;
        if judge {
            crate::pickle::scan_at(ctx, blob, start, end);
        }
        let count = small_int(blob, start, end);
        self.pos = end;
        let storage_type = trace.globals.last().map(|g| g.name.clone());
        Some((count, storage_type))
    }

    /// Skip an 8-byte element count and that many elements of `storage_type`.
    fn skip_storage(&mut self, blob: &mut dyn Blob, storage_type: Option<&str>) -> Option<()> {
        let size = crate::tensors::element_size(storage_type?)?;
        let numel = self.read_u64(blob)?;
        self.advance(numel.checked_mul(size)?)
    }

    /// Skip a tensor record: `ndim`, 4 bytes, sizes, strides, storage offset.
    fn skip_tensor(&mut self, blob: &mut dyn Blob) -> Option<()> {
        let mut ndim = [0u8; 4];
        self.read_exact(blob, &mut ndim)?;
        let ndim = u64::from(u32::from_le_bytes(ndim));
        self.advance(4 + 16 * ndim + 8)
    }

    fn read_u64(&mut self, blob: &mut dyn Blob) -> Option<u64> {
        let mut raw = [0u8; 8];
        self.read_exact(blob, &mut raw)?;
        Some(u64::from_le_bytes(raw))
    }

    fn read_exact(&mut self, blob: &mut dyn Blob, buf: &mut [u8]) -> Option<()> {
        blob.seek(std::io::SeekFrom::Start(self.pos)).ok()?;
        blob.read_exact(buf).ok()?;
        self.pos += buf.len() as u64;
        Some(())
    }

    fn advance(&mut self, n: u64) -> Option<()> {
        let next = self.pos.checked_add(n)?;
        (next <= self.len).then(|| self.pos = next)
    }

    /// Report a layout that stopped making sense at record `i`.
    fn broken(&self, ctx: &mut Ctx<'_>, i: u64) {
        ctx.report(
            &crate::pickle::MALFORMED,
            Some(self.pos),
            format!(
                "legacy PyTorch records stop following their layout at record {i} (byte {}); what follows \
                 is read differently by the loader",
                self.pos
            ),
            json!({ "record": i, "offset": self.pos }),
        );
    }
}

/// The value of a pickle that is only a small integer (`PROTO`, one int opcode, `STOP`).
fn small_int(blob: &mut dyn Blob, start: u64, end: u64) -> Option<u64> {
    let n = usize::try_from(end - start).ok().filter(|n| *n <= 16)?;
    let mut bytes = vec![0u8; n];
    blob.seek(std::io::SeekFrom::Start(start)).ok()?;
    blob.read_exact(&mut bytes).ok()?;
    let body = match bytes.as_slice() {
        [0x80, _, rest @ ..] => rest,
        rest => rest,
    };
    match body {
        [b'K', v, b'.'] => Some(u64::from(*v)),
        [b'M', a, b, b'.'] => Some(u64::from(u16::from_le_bytes([*a, *b]))),
        [b'J', a, b, c, d, b'.'] => u64::try_from(i32::from_le_bytes([*a, *b, *c, *d])).ok(),
        _ => None,
    }
}
