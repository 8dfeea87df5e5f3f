//! Minimal HDF5 writers (Keras 2 `.h5` files and empty weight files) and their corpus cases.
//!
//! Follows the HDF5 File Format Specification 3.0 closely enough for the HDF5 library to open the result:
//! superblock version 0 with a root symbol-table entry (cache type 1), a version 1 object header for the root
//! group holding a Symbol Table message (with an empty version 1 group B-tree and a local heap), attribute
//! messages version 1 with scalar dataspaces, fixed-length strings (`h5py` writes `bytes` that way, which is
//! how Keras stores `model_config`) or variable-length strings in a global heap collection (`h5py` writes
//! `str` that way: `keras_version`, `backend`), and optionally a continuation block. [`keras_h5_v2`] writes a
//! superblock version 2 file with an `OHDR` root header and lookup3 checksums.

use crate::keras_config::{config_first, sequential_config, Variant};
use crate::Case;

const UNDEF: u64 = u64::MAX;
const SUPERBLOCK_V0_LEN: u64 = 96;
const GROUP_INTERNAL_K: u16 = 16;
const GROUP_LEAF_K: u16 = 4;

/// How the `model_config` attribute is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringKind {
    /// Fixed-length string in the root object header (what Keras 2 writes).
    Fixed,
    /// Variable-length string in a global heap collection.
    VarLen,
    /// Fixed-length string in a continuation block of the root object header.
    FixedInContinuation,
}

enum Value {
    Fixed(Vec<u8>),
    VarLen(Vec<u8>),
}

struct Attr {
    name: &'static str,
    value: Value,
}

fn pad8(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
}

fn le(v: &mut Vec<u8>, x: u64, width: usize) {
    v.extend_from_slice(&x.to_le_bytes()[..width]);
}

fn fixed_string_type(len: usize) -> Vec<u8> {
    // Class 3 (string), version 1; padding NULLPAD, charset ASCII.
    let mut dt = vec![0x13, 0x01, 0x00, 0x00];
    le(&mut dt, len as u64, 4);
    dt
}

fn vlen_string_type() -> Vec<u8> {
    // Class 9 (variable-length), version 1; type string, padding NULLTERM, charset UTF-8; size of a heap ref.
    let mut dt = vec![0x19, 0x01, 0x01, 0x00];
    le(&mut dt, 16, 4);
    // Base type: unsigned 8-bit fixed point, little-endian.
    dt.extend_from_slice(&[0x10, 0x00, 0x00, 0x00]);
    le(&mut dt, 1, 4);
    le(&mut dt, 0, 2);
    le(&mut dt, 8, 2);
    dt
}

/// Version 1 scalar dataspace.
const SCALAR_V1: [u8; 8] = [1, 0, 0, 0, 0, 0, 0, 0];

/// A version 1 attribute message body.
fn attribute_v1(name: &str, datatype: &[u8], data: &[u8]) -> Vec<u8> {
    let mut name_bytes = name.as_bytes().to_vec();
    name_bytes.push(0);
    let mut body = vec![1, 0];
    le(&mut body, name_bytes.len() as u64, 2);
    le(&mut body, datatype.len() as u64, 2);
    le(&mut body, SCALAR_V1.len() as u64, 2);
    body.extend_from_slice(&name_bytes);
    pad8(&mut body);
    body.extend_from_slice(datatype);
    pad8(&mut body);
    body.extend_from_slice(&SCALAR_V1);
    pad8(&mut body);
    body.extend_from_slice(data);
    pad8(&mut body);
    body
}

/// A version 1 header message: type, size, flags, reserved, body (padded to 8).
fn message_v1(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    pad8(&mut b);
    let mut m = Vec::new();
    le(&mut m, u64::from(kind), 2);
    le(&mut m, b.len() as u64, 2);
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&b);
    m
}

/// Attribute message for `attr`; variable-length values point at object `index` of the collection at
/// `gcol` (relative address).
fn attr_message(attr: &Attr, gcol: u64, index: u32) -> Vec<u8> {
    let body = match &attr.value {
        Value::Fixed(bytes) => attribute_v1(attr.name, &fixed_string_type(bytes.len()), bytes),
        Value::VarLen(bytes) => {
            let mut data = Vec::new();
            le(&mut data, bytes.len() as u64, 4);
            le(&mut data, gcol, 8);
            le(&mut data, u64::from(index), 4);
            attribute_v1(attr.name, &vlen_string_type(), &data)
        }
    };
    message_v1(0x0C, &body)
}

/// A global heap collection holding `objects` (indices 1..), at least 4096 bytes as the library allocates.
fn global_heap(objects: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        le(&mut body, i as u64 + 1, 2);
        le(&mut body, 1, 2);
        body.extend_from_slice(&[0, 0, 0, 0]);
        le(&mut body, obj.len() as u64, 8);
        body.extend_from_slice(obj);
        pad8(&mut body);
    }
    let used = 16 + body.len() as u64;
    let size = used.max(4096 - 16).div_ceil(8) * 8 + 16;
    let free = size - used;
    if free >= 16 {
        le(&mut body, 0, 2);
        le(&mut body, 0, 2);
        body.extend_from_slice(&[0, 0, 0, 0]);
        le(&mut body, free, 8);
    }
    let mut out = b"GCOL".to_vec();
    out.extend_from_slice(&[1, 0, 0, 0]);
    le(&mut out, size, 8);
    out.extend_from_slice(&body);
    out.resize(size as usize, 0);
    out
}

fn empty_btree() -> Vec<u8> {
    let mut b = b"TREE".to_vec();
    b.push(0); // group node
    b.push(0); // level
    le(&mut b, 0, 2); // entries used
    le(&mut b, UNDEF, 8);
    le(&mut b, UNDEF, 8);
    let k = usize::from(GROUP_INTERNAL_K);
    b.resize(b.len() + (2 * k + 1) * 8 + 2 * k * 8, 0);
    b
}

/// Local heap header at `at`, its 88-byte data segment right after.
fn local_heap(at: u64) -> Vec<u8> {
    let mut h = b"HEAP".to_vec();
    h.extend_from_slice(&[0, 0, 0, 0]);
    le(&mut h, 88, 8);
    le(&mut h, 8, 8);
    le(&mut h, at + 32, 8);
    let mut data = vec![0u8; 88];
    data[8..16].copy_from_slice(&1u64.to_le_bytes());
    data[16..24].copy_from_slice(&80u64.to_le_bytes());
    h.extend_from_slice(&data);
    h
}

/// Write a version 0 file whose root group has `attrs`; the attributes from `split` on go to a
/// continuation block. `base` is the user-block size (addresses are relative to it).
fn write_v0(attrs: &[Attr], split: usize, base: u64) -> Vec<u8> {
    let vlen: Vec<&[u8]> = attrs
        .iter()
        .filter_map(|a| match &a.value {
            Value::VarLen(b) => Some(b.as_slice()),
            Value::Fixed(_) => None,
        })
        .collect();
    // Sizes first (attribute messages have the same size whatever addresses they hold).
    let sizes: Vec<u64> = attrs
        .iter()
        .map(|a| attr_message(a, 0, 0).len() as u64)
        .collect();
    let split = split.min(attrs.len());
    let has_cont = split < attrs.len();
    let symtab_len = 8 + 16;
    let cont_msg_len = if has_cont { 8 + 16 } else { 0 };
    let header_len: u64 = symtab_len + sizes[..split].iter().sum::<u64>() + cont_msg_len;
    let cont_len: u64 = sizes[split..].iter().sum();
    let root = SUPERBLOCK_V0_LEN;
    let cont = root + 16 + header_len;
    let btree = cont + cont_len;
    let heap = btree + empty_btree().len() as u64;
    let gcol = heap + 32 + 88;
    let gcol_bytes = if vlen.is_empty() {
        Vec::new()
    } else {
        global_heap(&vlen)
    };
    let eof = gcol + gcol_bytes.len() as u64;

    let mut messages = Vec::new();
    let mut index = 0u32;
    for a in attrs {
        if matches!(a.value, Value::VarLen(_)) {
            index += 1;
            messages.push(attr_message(a, gcol, index));
        } else {
            messages.push(attr_message(a, gcol, 0));
        }
    }

    let mut out = vec![0u8; base as usize];
    // Superblock v0.
    out.extend_from_slice(b"\x89HDF\r\n\x1a\n");
    out.extend_from_slice(&[0, 0, 0, 0, 0, 8, 8, 0]);
    le(&mut out, u64::from(GROUP_LEAF_K), 2);
    le(&mut out, u64::from(GROUP_INTERNAL_K), 2);
    le(&mut out, 0, 4);
    le(&mut out, base, 8);
    le(&mut out, UNDEF, 8);
    // The library stores the end-of-file address counting the user block.
    le(&mut out, base + eof, 8);
    le(&mut out, UNDEF, 8);
    // Root group symbol table entry: link name offset, header address, cache type 1, scratch (B-tree, heap).
    le(&mut out, 0, 8);
    le(&mut out, root, 8);
    le(&mut out, 1, 4);
    le(&mut out, 0, 4);
    le(&mut out, btree, 8);
    le(&mut out, heap, 8);
    // Root object header v1.
    let total_messages = 1 + attrs.len() + usize::from(has_cont);
    out.extend_from_slice(&[1, 0]);
    le(&mut out, total_messages as u64, 2);
    le(&mut out, 1, 4);
    le(&mut out, header_len, 4);
    le(&mut out, 0, 4);
    let mut symtab = Vec::new();
    le(&mut symtab, btree, 8);
    le(&mut symtab, heap, 8);
    out.extend_from_slice(&message_v1(0x11, &symtab));
    for m in &messages[..split] {
        out.extend_from_slice(m);
    }
    if has_cont {
        let mut c = Vec::new();
        le(&mut c, cont, 8);
        le(&mut c, cont_len, 8);
        out.extend_from_slice(&message_v1(0x10, &c));
    }
    for m in &messages[split..] {
        out.extend_from_slice(m);
    }
    out.extend_from_slice(&empty_btree());
    out.extend_from_slice(&local_heap(heap));
    out.extend_from_slice(&gcol_bytes);
    debug_assert_eq!(out.len() as u64, base + eof);
    out
}

fn keras_attrs(model_config: &str, kind: StringKind) -> Vec<Attr> {
    let config = model_config.as_bytes().to_vec();
    let model_config = match kind {
        StringKind::VarLen => Value::VarLen(config),
        StringKind::Fixed | StringKind::FixedInContinuation => Value::Fixed(config),
    };
    vec![
        Attr { name: "backend", value: Value::VarLen(b"tensorflow".to_vec()) },
        Attr { name: "keras_version", value: Value::VarLen(b"2.13.1".to_vec()) },
        Attr { name: "model_config", value: model_config },
        Attr {
            name: "training_config",
            value: Value::Fixed(br#"{"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"], "optimizer_config": {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.001}}}"#.to_vec()),
        },
    ]
}

/// A Keras 2 `.h5` model file whose root group carries `model_config` (stored as `kind` says),
/// `training_config`, `keras_version` and `backend`.
pub fn keras_h5(model_config: &str, kind: StringKind) -> Vec<u8> {
    keras_h5_with_userblock(model_config, kind, 0)
}

/// [`keras_h5`] after a user block of `userblock` bytes (512, 1024, ...).
pub fn keras_h5_with_userblock(model_config: &str, kind: StringKind, userblock: u64) -> Vec<u8> {
    let attrs = keras_attrs(model_config, kind);
    let split = if kind == StringKind::FixedInContinuation {
        2
    } else {
        attrs.len()
    };
    write_v0(&attrs, split, userblock)
}

/// An HDF5 file with an empty root group (a stand-in for `model.weights.h5`).
pub fn empty_h5() -> Vec<u8> {
    write_v0(&[], 0, 0)
}

/// Corrupt the version byte of the root object header of a file from [`keras_h5`] (no user block), so
/// structured readers fail while the config bytes stay in place.
pub fn corrupt_header(file: &[u8]) -> Vec<u8> {
    let mut out = file.to_vec();
    if let Some(b) = out.get_mut(SUPERBLOCK_V0_LEN as usize) {
        *b = 7;
    }
    out
}

/// Jenkins lookup3 `hashlittle`, the checksum of HDF5 version 2 structures.
pub fn lookup3(data: &[u8], init: u32) -> u32 {
    let mut a = 0xdead_beefu32
        .wrapping_add(data.len() as u32)
        .wrapping_add(init);
    let (mut b, mut c) = (a, a);
    let word = |k: &[u8], i: usize| -> u32 {
        (0..4).fold(0u32, |acc, j| {
            acc.wrapping_add(u32::from(*k.get(i + j).unwrap_or(&0)) << (8 * j))
        })
    };
    let mut k = data;
    while k.len() > 12 {
        a = a.wrapping_add(word(k, 0));
        b = b.wrapping_add(word(k, 4));
        c = c.wrapping_add(word(k, 8));
        // mix
        a = a.wrapping_sub(c);
        a ^= c.rotate_left(4);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a);
        b ^= a.rotate_left(6);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b);
        c ^= b.rotate_left(8);
        b = b.wrapping_add(a);
        a = a.wrapping_sub(c);
        a ^= c.rotate_left(16);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a);
        b ^= a.rotate_left(19);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b);
        c ^= b.rotate_left(4);
        b = b.wrapping_add(a);
        k = &k[12..];
    }
    if k.is_empty() {
        return c;
    }
    a = a.wrapping_add(word(k, 0));
    b = b.wrapping_add(word(k, 4));
    c = c.wrapping_add(word(k, 8));
    // final
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    c
}

/// One object header message: type, size, flags, body.
fn message(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.push(0);
    out.extend_from_slice(body);
}

/// The root group's Link Info and Group Info messages (a compact, empty group).
fn group_messages() -> Vec<u8> {
    let mut messages = Vec::new();
    let mut link_info = vec![0, 0];
    le(&mut link_info, UNDEF, 8);
    le(&mut link_info, UNDEF, 8);
    message(&mut messages, 0x02, &link_info);
    message(&mut messages, 0x0A, &[0, 0]);
    messages
}

/// A version 3 attribute message body: `model_config` as a fixed-length string.
fn model_config_attribute(model_config: &str) -> Vec<u8> {
    let config = model_config.as_bytes();
    let mut attr = vec![3, 0];
    le(&mut attr, "model_config\0".len() as u64, 2);
    le(&mut attr, 8, 2);
    le(&mut attr, 4, 2);
    attr.push(0);
    attr.extend_from_slice(b"model_config\0");
    attr.extend_from_slice(&fixed_string_type(config.len()));
    attr.extend_from_slice(&[2, 0, 0, 0]);
    attr.extend_from_slice(config);
    attr
}

/// An `OHDR` version 2 header around `messages` (its checksum appended).
fn ohdr(messages: &[u8]) -> Vec<u8> {
    let mut header = b"OHDR".to_vec();
    header.extend_from_slice(&[2, 0x02]);
    le(&mut header, messages.len() as u64, 4);
    header.extend_from_slice(messages);
    header
}

/// Where a version 2 superblock puts the root object header.
const V2_ROOT: u64 = 48;

/// A superblock version 2 file: the superblock, the root object header (without its checksum, appended here),
/// then `rest`.
fn superblock_v2_file(mut header: Vec<u8>, rest: &[u8]) -> Vec<u8> {
    let sum = lookup3(&header, 0);
    header.extend_from_slice(&sum.to_le_bytes());
    let eof = V2_ROOT + header.len() as u64 + rest.len() as u64;
    let mut out = b"\x89HDF\r\n\x1a\n".to_vec();
    out.extend_from_slice(&[2, 8, 8, 0]);
    le(&mut out, 0, 8);
    le(&mut out, UNDEF, 8);
    le(&mut out, eof, 8);
    le(&mut out, V2_ROOT, 8);
    let sum = lookup3(&out, 0);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(rest);
    out
}

/// A superblock version 2 file whose root group (an `OHDR` version 2 header with Link Info and Group Info
/// messages) carries `model_config` as a version 3 attribute with a fixed-length string.
pub fn keras_h5_v2(model_config: &str) -> Vec<u8> {
    let mut messages = group_messages();
    message(&mut messages, 0x0C, &model_config_attribute(model_config));
    superblock_v2_file(ohdr(&messages), &[])
}

/// A superblock version 2 file whose root group keeps its attributes in dense storage: an Attribute Info
/// message pointing at a fractal heap, whose direct block holds the `model_config` attribute message (as h5py
/// writes once attributes outgrow the object header). The heap is laid out as bytes (`FRHP`, `FHDB`) for
/// readers that search them; it is not a complete fractal heap.
pub fn keras_h5_dense(model_config: &str) -> Vec<u8> {
    let mut messages = group_messages();
    // Attribute Info: version 0, no flags, fractal heap address (patched below), name-index B-tree address.
    let mut attr_info = vec![0, 0];
    le(&mut attr_info, 0, 8);
    le(&mut attr_info, UNDEF, 8);
    message(&mut messages, 0x15, &attr_info);
    let mut header = ohdr(&messages);
    let heap = V2_ROOT + header.len() as u64 + 4;
    let at = header.len() - 16;
    header[at..at + 8].copy_from_slice(&heap.to_le_bytes());
    let mut block = b"FRHP\x00".to_vec();
    block.resize(64, 0);
    block.extend_from_slice(b"FHDB\x00");
    block.extend_from_slice(&model_config_attribute(model_config));
    superblock_v2_file(header, &block)
}

/// Malicious and benign cases of this format.
pub fn corpus() -> Vec<Case> {
    const LAMBDA: &str = "Keras 2 .h5 model_config with a Lambda layer carrying bytecode";
    const FALLBACK: &str =
        "config JSON found by byte search when the HDF5 structure does not parse";
    let evil = sequential_config(Variant::LambdaList);
    let honest = sequential_config(Variant::Honest);
    vec![
        Case::malicious(
            "hdf5/model-config-lambda-fixed",
            "model.h5",
            keras_h5(&evil, StringKind::Fixed),
            "AEG-SCAN-600",
            LAMBDA,
        ),
        Case::benign(
            "hdf5/model-config-dense-fixed",
            "model.h5",
            keras_h5(&honest, StringKind::Fixed),
            LAMBDA,
        ),
        Case::malicious(
            "hdf5/model-config-lambda-vlen",
            "model.h5",
            keras_h5(&evil, StringKind::VarLen),
            "AEG-SCAN-600",
            LAMBDA,
        ),
        Case::benign(
            "hdf5/model-config-dense-vlen",
            "model.h5",
            keras_h5(&honest, StringKind::VarLen),
            LAMBDA,
        ),
        Case::malicious(
            "hdf5/model-config-lambda-continuation",
            "model.h5",
            keras_h5(&evil, StringKind::FixedInContinuation),
            "AEG-SCAN-600",
            LAMBDA,
        ),
        Case::benign("hdf5/weights-only", "model.weights.h5", empty_h5(), LAMBDA),
        Case::malicious(
            "hdf5/corrupt-header-lambda",
            "model.h5",
            corrupt_header(&keras_h5(&evil, StringKind::Fixed)),
            "AEG-SCAN-600",
            FALLBACK,
        ),
        Case::benign(
            "hdf5/corrupt-header-dense",
            "model.h5",
            corrupt_header(&keras_h5(&honest, StringKind::Fixed)),
            FALLBACK,
        ),
        Case::malicious(
            "hdf5/dense-attributes-config-first-lambda",
            "model.h5",
            keras_h5_dense(&config_first(&evil)),
            "AEG-SCAN-600",
            "dense attribute storage and a config whose keys put `config` before `class_name`",
        ),
        Case::benign(
            "hdf5/dense-attributes-config-first-honest",
            "model.h5",
            keras_h5_dense(&config_first(&honest)),
            "dense attribute storage and a config whose keys put `config` before `class_name`",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup3_known_vectors() {
        assert_eq!(lookup3(b"", 0), 0xdead_beef);
        assert_eq!(lookup3(b"Four score and seven years ago", 0), 0x1777_0551);
    }

    #[test]
    fn files_start_with_the_signature_and_have_consistent_eof() {
        for f in [
            keras_h5("{}", StringKind::Fixed),
            keras_h5("{}", StringKind::VarLen),
            empty_h5(),
        ] {
            assert!(f.starts_with(b"\x89HDF\r\n\x1a\n"));
            let eof = u64::from_le_bytes(f[40..48].try_into().unwrap());
            assert_eq!(eof, f.len() as u64);
        }
    }
}
