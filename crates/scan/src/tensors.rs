//! Memory-safety primitives built from allowed names: a PyTorch pickle uses only `torch._utils` rebuilders and
//! storage classes, so the allow-list passes it, but the numbers it gives them can make the loader read or
//! write outside a tensor's memory. Three checks:
//! - an item opcode (`SETITEM(S)`, `APPEND(S)`) applied to a tensor: `torch.load`'s weights-only unpickler
//!   executes `tensor[key] = value`, an indexed write no writer ever emits;
//! - a view (`_rebuild_tensor_v2(storage, offset, size, stride)`) that reaches past the elements its storage
//!   declares;
//! - in a checkpoint archive, a storage that declares more elements than its `data/<key>` member holds (the
//!   CVE-2026-24747 class: torch < 2.10 trusted the declared count).

use aegis_core::{RuleDoc, Severity};
use aegis_formats::pickle::tensors::StorageDecl;
use aegis_formats::pickle::{Emulator, Trace};
use aegis_formats::zip::ZipArchive;
use aegis_formats::Blob;
use serde_json::json;

use crate::Ctx;

/// A tensor primitive outside what any writer produces.
pub(crate) const TENSOR_PRIMITIVE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-111",
    name: "pickle-tensor-memory-primitive",
    severity: Severity::High,
    summary: "Pickle builds a tensor that reaches outside its memory",
    why: "PyTorch checkpoints use only allowed rebuild functions, but the sizes, strides, offsets and element \
          counts they pass are data. A view that reaches past its storage, a storage that declares more \
          elements than the file holds, or an indexed write into a tensor during unpickling make the loader \
          read or write memory outside the tensor (older torch trusted the declared counts): a memory-corruption \
          primitive assembled entirely from allowed names. No writer produces one.",
    fix: "Do not load this file. Obtain the checkpoint again from its source, or a safetensors export, whose \
          offsets are checked against the file.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[787, 125, 502],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[&TENSOR_PRIMITIVE];

/// Report item writes into tensors and views past their storage in one pickle's trace (`base`: the stream's
/// offset in the blob).
pub(crate) fn judge(ctx: &mut Ctx<'_>, trace: &Trace, base: u64) {
    if let Some(write) = trace.tensor_writes.first() {
        ctx.report(
            &TENSOR_PRIMITIVE,
            Some(base + write.offset),
            format!(
                "{} writes items into a tensor made by `{}` during unpickling ({} such write(s))",
                write.opcode,
                write.target,
                trace.tensor_writes.len()
            ),
            json!({ "primitive": "item-write", "opcode": write.opcode, "target": write.target,
                    "count": trace.tensor_writes.len() }),
        );
    }
    let outside: Vec<_> = trace
        .tensor_views
        .iter()
        .filter(|v| v.extent().is_none_or(|end| end > v.numel))
        .collect();
    if let Some(view) = outside.first() {
        let end = view
            .extent()
            .map_or_else(|| "beyond 2^64".to_owned(), |e| e.to_string());
        ctx.report(
            &TENSOR_PRIMITIVE,
            Some(base + view.offset),
            format!(
                "a tensor view over storage `{}` reaches element {end}, past the {} its storage declares \
                 (offset {}, size {:?}, stride {:?}; {} such view(s))",
                view.key,
                view.numel,
                view.storage_offset,
                view.size,
                view.stride,
                outside.len()
            ),
            json!({ "primitive": "view-past-storage", "storage": view.key, "numel": view.numel,
                    "storage_offset": view.storage_offset, "size": view.size, "stride": view.stride,
                    "count": outside.len() }),
        );
    }
}

/// Bytes per element of a storage class, when known.
pub(crate) fn element_size(storage_type: &str) -> Option<u64> {
    let name = storage_type.strip_suffix("Storage")?;
    Some(match name {
        "Double" | "Long" | "ComplexFloat" | "UInt64" => 8,
        "Float" | "Int" | "QInt32" | "UInt32" => 4,
        "Half" | "BFloat16" | "Short" | "UInt16" => 2,
        "ComplexDouble" => 16,
        "Char" | "Byte" | "Bool" | "QInt8" | "QUInt8" | "QUInt4x2" | "QUInt2x4" | "Untyped" => 1,
        n if n.starts_with("Float8") => 1,
        _ => return None,
    })
}

/// In a PyTorch zip checkpoint, check each storage `prefix/data.pkl` declares against the size of its
/// `prefix/data/<key>` member.
pub(crate) fn check_archive(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, archive: &ZipArchive) {
    let limits = ctx.limits().clone();
    for entry in archive
        .entries
        .iter()
        .filter(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"))
    {
        let prefix = &entry.name[..entry.name.len() - "data.pkl".len()];
        let Ok(mut reader) = entry.reader(blob, limits.max_in_memory) else {
            continue;
        };
        let mut bytes = Vec::new();
        if std::io::Read::read_to_end(&mut reader, &mut bytes).is_err() {
            continue; // the member's own scan reported it
        }
        let Ok(trace) = Emulator::new(&limits).run(bytes.as_slice()) else {
            continue;
        };
        let short: Vec<(&StorageDecl, u64, u64)> = trace
            .storages
            .iter()
            .filter_map(|decl| {
                let needed = decl.numel.checked_mul(element_size(&decl.storage_type)?);
                let member = format!("{prefix}data/{}", decl.key);
                let held = archive
                    .entries
                    .iter()
                    .find(|e| e.name == member)?
                    .uncompressed_size;
                needed
                    .is_none_or(|n| n > held)
                    .then_some((decl, needed.unwrap_or(u64::MAX), held))
            })
            .collect();
        if let Some((decl, needed, held)) = short.first() {
            let location = ctx.location().clone().member(&entry.name);
            ctx.emit(
                aegis_core::Finding::new(
                    &TENSOR_PRIMITIVE,
                    location.at_offset(decl.offset),
                    format!(
                        "storage `{}` declares {} {} elements ({needed} bytes) but `{prefix}data/{}` holds \
                         {held} bytes ({} such storage(s))",
                        decl.key,
                        decl.numel,
                        decl.storage_type,
                        decl.key,
                        short.len()
                    ),
                )
                .with_evidence(json!({ "primitive": "storage-past-data", "storage": decl.key,
                    "storage_type": decl.storage_type, "numel": decl.numel, "bytes_needed": needed,
                    "bytes_held": held, "count": short.len() })),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_sizes_follow_the_storage_class() {
        assert_eq!(element_size("FloatStorage"), Some(4));
        assert_eq!(element_size("BFloat16Storage"), Some(2));
        assert_eq!(element_size("Float8_e4m3fnStorage"), Some(1));
        assert_eq!(element_size("UntypedStorage"), Some(1));
        assert_eq!(element_size("Mystery"), None);
    }
}
