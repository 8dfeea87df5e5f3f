//! A zip writer written from the specification (APPNOTE), independent of `aegis-formats`, with knobs to
//! build the archives attackers build: bad CRCs, the encryption flag on plain data, local names that differ
//! from central ones, prepended bytes, duplicate names, data descriptors, ZIP64 records, unusual method
//! numbers, Unix symlinks and overlapping members. Also PyTorch-, Keras- and numpy-shaped archives and the
//! zip corpus cases.
//!
//! Payloads are harmless (`echo pwned`); nothing here is ever loaded by Python or PyTorch.

use std::io::Write;

use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};

use crate::Case;

/// A benign protocol-2 pickle: an empty dict.
pub const BENIGN_PICKLE: &[u8] = b"\x80\x02}q\x00.";

/// A protocol-2 pickle calling `os.system("echo pwned")` when loaded.
pub const PAYLOAD_PICKLE: &[u8] =
    b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";

/// How a member's data is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Method 0.
    Stored,
    /// Method 8, raw deflate via flate2.
    Deflated,
    /// Any other method number; the data is written as is.
    Other(u16),
}

/// One member and how to (mis)write it.
#[derive(Debug, Clone)]
pub struct Member {
    /// Name in the local header (and in the central directory unless `central_name` is set).
    pub name: String,
    /// Uncompressed content.
    pub data: Vec<u8>,
    /// Compression.
    pub method: Method,
    /// A different name for the central directory.
    pub central_name: Option<String>,
    /// Write a wrong CRC-32 (both headers).
    pub bad_crc: bool,
    /// Set the encryption flag (bit 0) on plain data.
    pub encrypted: bool,
    /// Put CRC and sizes in a data descriptor after the data (bit 3).
    pub data_descriptor: bool,
    /// Lie about (compressed, uncompressed) sizes in the local header.
    pub local_sizes: Option<(u32, u32)>,
    /// Align the data to this many bytes with a padding extra field, like PyTorch's writer (`FB` field).
    pub align: Option<u64>,
    /// Unix mode in the external attributes (e.g. `0o120777` for a symlink).
    pub unix_mode: Option<u32>,
}

impl Member {
    /// A stored member.
    pub fn stored(name: &str, data: &[u8]) -> Member {
        Member {
            name: name.to_owned(),
            data: data.to_vec(),
            method: Method::Stored,
            central_name: None,
            bad_crc: false,
            encrypted: false,
            data_descriptor: false,
            local_sizes: None,
            align: None,
            unix_mode: None,
        }
    }

    /// A deflated member.
    pub fn deflated(name: &str, data: &[u8]) -> Member {
        Member {
            method: Method::Deflated,
            ..Member::stored(name, data)
        }
    }

    /// Use another method number (data written as is).
    pub fn method(mut self, method: Method) -> Member {
        self.method = method;
        self
    }

    /// Name the member differently in the central directory.
    pub fn central_name(mut self, name: &str) -> Member {
        self.central_name = Some(name.to_owned());
        self
    }

    /// Write a wrong CRC-32.
    pub fn bad_crc(mut self) -> Member {
        self.bad_crc = true;
        self
    }

    /// Set the encryption flag on plain data.
    pub fn encrypted(mut self) -> Member {
        self.encrypted = true;
        self
    }

    /// Use a data descriptor.
    pub fn data_descriptor(mut self) -> Member {
        self.data_descriptor = true;
        self
    }

    /// Lie about sizes in the local header.
    pub fn local_sizes(mut self, compressed: u32, uncompressed: u32) -> Member {
        self.local_sizes = Some((compressed, uncompressed));
        self
    }

    /// Align the data like PyTorch does.
    pub fn align(mut self, to: u64) -> Member {
        self.align = Some(to);
        self
    }

    /// Make it a Unix symlink whose content is the target.
    pub fn symlink(mut self) -> Member {
        self.unix_mode = Some(0o120_777);
        self
    }

    fn encoded(&self) -> (Vec<u8>, u16) {
        match self.method {
            Method::Stored => (self.data.clone(), 0),
            Method::Deflated => (deflate(&self.data), 8),
            Method::Other(n) => (self.data.clone(), n),
        }
    }
}

/// Builds a zip archive from [`Member`]s.
#[derive(Debug, Clone, Default)]
pub struct ZipWriter {
    members: Vec<Member>,
    prepend: Vec<u8>,
    absolute: bool,
    zip64: bool,
    comment: Vec<u8>,
}

impl ZipWriter {
    /// An empty archive.
    pub fn new() -> ZipWriter {
        ZipWriter::default()
    }

    /// An archive of these members.
    pub fn from_members(members: Vec<Member>) -> ZipWriter {
        ZipWriter {
            members,
            ..ZipWriter::default()
        }
    }

    /// Add a member.
    pub fn member(mut self, member: Member) -> ZipWriter {
        self.members.push(member);
        self
    }

    /// Add a stored member.
    pub fn stored(self, name: &str, data: &[u8]) -> ZipWriter {
        self.member(Member::stored(name, data))
    }

    /// Add a deflated member.
    pub fn deflated(self, name: &str, data: &[u8]) -> ZipWriter {
        self.member(Member::deflated(name, data))
    }

    /// Put bytes before the archive without adjusting its offsets (`cat junk a.zip`).
    pub fn prepend(mut self, bytes: &[u8]) -> ZipWriter {
        self.prepend = bytes.to_vec();
        self.absolute = false;
        self
    }

    /// Put bytes before the archive and account for them in the offsets (self-extracting style).
    pub fn prepend_absolute(mut self, bytes: &[u8]) -> ZipWriter {
        self.prepend = bytes.to_vec();
        self.absolute = true;
        self
    }

    /// Write ZIP64 extra fields and end records.
    pub fn zip64(mut self) -> ZipWriter {
        self.zip64 = true;
        self
    }

    /// Set the archive comment.
    pub fn comment(mut self, comment: &[u8]) -> ZipWriter {
        self.comment = comment.to_vec();
        self
    }

    /// The archive's bytes.
    pub fn finish(&self) -> Vec<u8> {
        let base = if self.absolute { self.prepend.len() } else { 0 };
        let mut body = Vec::new();
        let mut central = Vec::new();
        for m in &self.members {
            let offset = (base + body.len()) as u64;
            write_member(&mut body, &mut central, m, offset, self.zip64);
        }
        let count = self.members.len() as u64;
        let cd_offset = (base + body.len()) as u64;
        let cd_size = central.len() as u64;
        body.extend_from_slice(&central);
        if self.zip64 {
            let record_at = (base + body.len()) as u64;
            body.extend_from_slice(b"PK\x06\x06");
            body.extend_from_slice(&44u64.to_le_bytes());
            body.extend_from_slice(&45u16.to_le_bytes());
            body.extend_from_slice(&45u16.to_le_bytes());
            body.extend_from_slice(&[0; 8]);
            for v in [count, count, cd_size, cd_offset] {
                body.extend_from_slice(&v.to_le_bytes());
            }
            body.extend_from_slice(b"PK\x06\x07");
            body.extend_from_slice(&0u32.to_le_bytes());
            body.extend_from_slice(&record_at.to_le_bytes());
            body.extend_from_slice(&1u32.to_le_bytes());
        }
        body.extend_from_slice(b"PK\x05\x06");
        body.extend_from_slice(&[0; 4]);
        let (n16, size32, off32) = if self.zip64 {
            (0xFFFF, u32::MAX, u32::MAX)
        } else {
            (count as u16, cd_size as u32, cd_offset as u32)
        };
        body.extend_from_slice(&n16.to_le_bytes());
        body.extend_from_slice(&n16.to_le_bytes());
        body.extend_from_slice(&size32.to_le_bytes());
        body.extend_from_slice(&off32.to_le_bytes());
        body.extend_from_slice(&(self.comment.len() as u16).to_le_bytes());
        body.extend_from_slice(&self.comment);
        let mut out = self.prepend.clone();
        out.extend_from_slice(&body);
        out
    }
}

fn write_member(body: &mut Vec<u8>, central: &mut Vec<u8>, m: &Member, offset: u64, zip64: bool) {
    let (payload, method) = m.encoded();
    let mut crc = crc32(&m.data);
    if m.bad_crc {
        crc ^= 0xDEAD_BEEF;
    }
    let flags: u16 = u16::from(m.encrypted) | if m.data_descriptor { 8 } else { 0 };
    let (csize, usize_) = (payload.len() as u64, m.data.len() as u64);
    let mut local_extra = Vec::new();
    if zip64 {
        push_extra(
            &mut local_extra,
            1,
            &[usize_.to_le_bytes(), csize.to_le_bytes()].concat(),
        );
    }
    if let Some(align) = m.align {
        let before = offset + 30 + m.name.len() as u64 + local_extra.len() as u64 + 4;
        let pad = (align - before % align) % align;
        push_extra(&mut local_extra, 0x4246, &vec![b'Z'; pad as usize]);
    }
    let (lc, lu) = match (m.local_sizes, m.data_descriptor, zip64) {
        (Some((c, u)), _, _) => (c, u),
        (None, true, _) => (0, 0),
        (None, false, true) => (u32::MAX, u32::MAX),
        (None, false, false) => (csize as u32, usize_ as u32),
    };
    let local_crc = if m.data_descriptor { 0 } else { crc };
    body.extend_from_slice(b"PK\x03\x04");
    push16(body, if zip64 { 45 } else { 20 });
    push16(body, flags);
    push16(body, method);
    push16(body, 0x6000); // 12:00
    push16(body, 0x58e1); // 2024-07-01
    push32(body, local_crc);
    push32(body, lc);
    push32(body, lu);
    push16(body, m.name.len() as u16);
    push16(body, local_extra.len() as u16);
    body.extend_from_slice(m.name.as_bytes());
    body.extend_from_slice(&local_extra);
    body.extend_from_slice(&payload);
    if m.data_descriptor {
        body.extend_from_slice(b"PK\x07\x08");
        push32(body, crc);
        if zip64 {
            body.extend_from_slice(&csize.to_le_bytes());
            body.extend_from_slice(&usize_.to_le_bytes());
        } else {
            push32(body, csize as u32);
            push32(body, usize_ as u32);
        }
    }
    let name = m.central_name.as_deref().unwrap_or(&m.name);
    let mut extra = Vec::new();
    let (c32, u32_, o32) = if zip64 {
        let fields = [
            usize_.to_le_bytes(),
            csize.to_le_bytes(),
            offset.to_le_bytes(),
        ]
        .concat();
        push_extra(&mut extra, 1, &fields);
        (u32::MAX, u32::MAX, u32::MAX)
    } else {
        (csize as u32, usize_ as u32, offset as u32)
    };
    central.extend_from_slice(b"PK\x01\x02");
    push16(
        central,
        if m.unix_mode.is_some() {
            0x031e
        } else {
            0x0014
        },
    );
    push16(central, if zip64 { 45 } else { 20 });
    push16(central, flags);
    push16(central, method);
    push16(central, 0x6000);
    push16(central, 0x58e1);
    push32(central, crc);
    push32(central, c32);
    push32(central, u32_);
    push16(central, name.len() as u16);
    push16(central, extra.len() as u16);
    push16(central, 0);
    push16(central, 0);
    push16(central, 0);
    push32(central, m.unix_mode.map_or(0, |mode| mode << 16));
    push32(central, o32);
    central.extend_from_slice(name.as_bytes());
    central.extend_from_slice(&extra);
}

fn push16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn push32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn push_extra(out: &mut Vec<u8>, id: u16, data: &[u8]) {
    push16(out, id);
    push16(out, data.len() as u16);
    out.extend_from_slice(data);
}

/// CRC-32 (IEEE) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = Crc::new();
    crc.update(data);
    crc.sum()
}

/// Raw deflate of `data`.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// A realistic PyTorch `data.pkl`: `OrderedDict(weight=_rebuild_tensor_v2(<storage 0: FloatStorage, cpu,
/// 4 elements>, 0, (4,), (1,), False, OrderedDict()))`, as `torch.save` writes it (protocol 2).
pub fn state_dict_pickle() -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01");
    p.extend_from_slice(b"X\x06\x00\x00\x00weightq\x02");
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\nq\x03");
    p.extend_from_slice(b"((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05");
    p.extend_from_slice(b"X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x04tq\x08Q");
    p.extend_from_slice(b"K\x00K\x04\x85q\tK\x01\x85q\n\x89h\x00)Rq\x0btq\x0cRq\rs.");
    p
}

/// Four little-endian f32s: the storage of [`state_dict_pickle`]'s tensor.
pub fn tensor_bytes() -> Vec<u8> {
    [0.5f32, 1.0, -2.0, 3.25]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect()
}

/// The members `torch.save` writes (PyTorch 2.x layout, data aligned to 64 bytes), under `prefix/`.
pub fn pytorch_members(prefix: &str, data_pkl: &[u8]) -> Vec<Member> {
    let p = |name: &str| format!("{prefix}/{name}");
    vec![
        Member::stored(&p("data.pkl"), data_pkl).align(64),
        Member::stored(&p(".format_version"), b"1").align(64),
        Member::stored(&p(".storage_alignment"), b"64").align(64),
        Member::stored(&p("byteorder"), b"little").align(64),
        Member::stored(&p("data/0"), &tensor_bytes()).align(64),
        Member::stored(&p("version"), b"3\n").align(64),
        Member::stored(
            &p(".data/serialization_id"),
            b"1284938218432095381400019283746512093847",
        )
        .align(64),
    ]
}

/// A PyTorch checkpoint zip whose `data.pkl` is `data_pkl`.
pub fn pytorch_zip(data_pkl: &[u8]) -> Vec<u8> {
    ZipWriter::from_members(pytorch_members("archive", data_pkl)).finish()
}

/// A PyTorch zip with one member changed by `tweak` (the member named `archive/<name>`).
fn pytorch_with(data_pkl: &[u8], name: &str, tweak: impl Fn(Member) -> Member) -> ZipWriter {
    let target = format!("archive/{name}");
    let members = pytorch_members("archive", data_pkl)
        .into_iter()
        .map(|m| if m.name == target { tweak(m) } else { m })
        .collect();
    ZipWriter::from_members(members)
}

/// A PyTorch zip with two central directories: `zipfile` reads the one just before the end record (its
/// `data.pkl` is a benign state dict), miniz (PyTorch) the one at the declared offset, hidden in the
/// archive comment, whose `data.pkl` is `miniz_pkl`. Offsets of the first are pre-shifted by the
/// (negative) "concat" `zipfile` applies, so both readers find their members.
pub fn two_directories(miniz_pkl: &[u8]) -> Vec<u8> {
    let (good_body, mut python_cd) = split_zip(&pytorch_zip(&state_dict_pickle()));
    let (evil_body, mut miniz_cd) = split_zip(&pytorch_zip(miniz_pkl));
    let size = python_cd.len().max(miniz_cd.len());
    python_cd.resize(size, 0);
    miniz_cd.resize(size, 0);
    shift_offsets(&mut python_cd, (size + 22) as u32);
    shift_offsets(&mut miniz_cd, good_body.len() as u32);
    let declared = good_body.len() + evil_body.len() + size + 22;
    let count = 7u16;
    let mut out = [good_body, evil_body, python_cd].concat();
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    push16(&mut out, count);
    push16(&mut out, count);
    push32(&mut out, size as u32);
    push32(&mut out, declared as u32);
    push16(&mut out, miniz_cd.len() as u16);
    out.extend_from_slice(&miniz_cd);
    out
}

/// Split an archive without comment into (bytes before the central directory, central directory).
fn split_zip(zip: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let eocd = &zip[zip.len() - 22..];
    let word = |at: usize| u32::from_le_bytes([eocd[at], eocd[at + 1], eocd[at + 2], eocd[at + 3]]);
    let (size, offset) = (word(12) as usize, word(16) as usize);
    (zip[..offset].to_vec(), zip[offset..offset + size].to_vec())
}

/// Add `delta` to the local header offset of every entry of a central directory.
fn shift_offsets(cd: &mut [u8], delta: u32) {
    let mut p = 0;
    while p + 46 <= cd.len() && cd[p..].starts_with(b"PK\x01\x02") {
        let le16 = |at: usize| usize::from(u16::from_le_bytes([cd[p + at], cd[p + at + 1]]));
        let (n, m, k) = (le16(28), le16(30), le16(32));
        let at = p + 42;
        let old = u32::from_le_bytes([cd[at], cd[at + 1], cd[at + 2], cd[at + 3]]);
        cd[at..at + 4].copy_from_slice(&old.wrapping_add(delta).to_le_bytes());
        p += 46 + n + m + k;
    }
}

/// A `.npy` v1.0 file of little-endian f32 values.
pub fn npy_f32(values: &[f32]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        values.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(values.iter().flat_map(|f| f.to_le_bytes()));
    out
}

/// An `.npz` as `numpy.savez` (stored) or `numpy.savez_compressed` (deflated) writes it.
pub fn npz(compressed: bool) -> Vec<u8> {
    let x = npy_f32(&[1.0, 2.0, 3.0]);
    let y = npy_f32(&[0.0, 1.0]);
    let member = |name: &str, data: &[u8]| {
        if compressed {
            Member::deflated(name, data)
        } else {
            Member::stored(name, data)
        }
    };
    ZipWriter::new()
        .member(member("x.npy", &x))
        .member(member("y.npy", &y))
        .finish()
}

/// A benign Keras 3 `config.json` (a one-layer Sequential model).
pub const KERAS_CONFIG: &str = r#"{"module": "keras", "class_name": "Sequential", "config": {"name": "sequential", "trainable": true, "dtype": "float32", "layers": [{"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [null, 4], "dtype": "float32", "sparse": false, "name": "input_layer"}, "registered_name": null}, {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "trainable": true, "dtype": "float32", "units": 1, "activation": "linear", "use_bias": true}, "registered_name": null, "build_config": {"input_shape": [null, 4]}}]}, "registered_name": null, "build_config": {"input_shape": [null, 4]}}"#;

/// A `.keras`-like zip: `metadata.json` and `config.json` (deflated, as Keras writes them).
pub fn keras_zip() -> Vec<u8> {
    let metadata = br#"{"keras_version": "3.4.1", "date_saved": "2024-07-01@12:00:00"}"#;
    ZipWriter::new()
        .deflated("metadata.json", metadata)
        .deflated("config.json", KERAS_CONFIG.as_bytes())
        .finish()
}

/// An archive of one member `inner.zip` holding `inner`, nested `depth` times (depth 0 is `inner`).
pub fn nested(depth: usize, inner: &[u8]) -> Vec<u8> {
    (0..depth).fold(inner.to_vec(), |acc, _| {
        ZipWriter::new().stored("inner.zip", &acc).finish()
    })
}

/// `copies` central-directory entries all pointing at one deflated kernel of `kernel_len` zero bytes: the
/// simplest overlapping-member zip bomb (expands `copies * kernel_len` bytes from one small stream).
pub fn overlapping_bomb(copies: usize, kernel_len: usize) -> Vec<u8> {
    let data = vec![0u8; kernel_len];
    let payload = deflate(&data);
    let crc = crc32(&data);
    let mut out = Vec::new();
    out.extend_from_slice(b"PK\x03\x04");
    for v in [20u16, 0, 8, 0, 0] {
        push16(&mut out, v);
    }
    push32(&mut out, crc);
    push32(&mut out, payload.len() as u32);
    push32(&mut out, kernel_len as u32);
    push16(&mut out, 1);
    push16(&mut out, 0);
    out.push(b'0');
    out.extend_from_slice(&payload);
    let cd_offset = out.len() as u32;
    let mut central = Vec::new();
    for i in 0..copies {
        let name = i.to_string();
        central.extend_from_slice(b"PK\x01\x02");
        for v in [20u16, 20, 0, 8, 0, 0] {
            push16(&mut central, v);
        }
        push32(&mut central, crc);
        push32(&mut central, payload.len() as u32);
        push32(&mut central, kernel_len as u32);
        push16(&mut central, name.len() as u16);
        for v in [0u16, 0, 0, 0] {
            push16(&mut central, v);
        }
        push32(&mut central, 0);
        push32(&mut central, 0);
        central.extend_from_slice(name.as_bytes());
    }
    let cd_size = central.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    push16(&mut out, copies as u16);
    push16(&mut out, copies as u16);
    push32(&mut out, cd_size);
    push32(&mut out, cd_offset);
    push16(&mut out, 0);
    out
}

/// Malicious and benign cases of this format.
pub fn corpus() -> Vec<Case> {
    let benign = state_dict_pickle();
    let evil = PAYLOAD_PICKLE;
    let mut cases = vec![
        Case::benign(
            "zip/pytorch-state-dict",
            "model.pt",
            pytorch_zip(&benign),
            "PyTorch zip checkpoint as torch.save writes it",
        ),
        Case::malicious(
            "zip/pytorch-data-pkl-os-system",
            "model.pt",
            pytorch_zip(evil),
            "AEG-SCAN-101",
            "data.pkl of a PyTorch zip calls os.system",
        ),
        Case::benign(
            "zip/pytorch-extra-benign-pickle",
            "model.pt",
            ZipWriter::from_members(pytorch_members("archive", &benign))
                .stored("archive/extra/meta.pkl", BENIGN_PICKLE)
                .finish(),
            "extra pickle member that is benign",
        ),
        Case::malicious(
            "zip/pytorch-payload-in-other-member",
            "model.pt",
            ZipWriter::from_members(pytorch_members("archive", &benign))
                .stored("archive/extra/evil.pkl", evil)
                .finish(),
            "AEG-SCAN-101",
            "payload pickle in a member not named data.pkl",
        ),
    ];
    cases.extend(twins(
        "bad-crc",
        "CRC-32 mismatch (zipfile refuses, PyTorch loads)",
        |pkl| pytorch_with(pkl, "data.pkl", Member::bad_crc).finish(),
    ));
    cases.extend(twins(
        "encrypted-flag",
        "encryption flag on plain data (zipfile asks for a password, PyTorch reads it)",
        |pkl| pytorch_with(pkl, "data.pkl", Member::encrypted).finish(),
    ));
    cases.extend(twins(
        "prepended-junk",
        "bytes prepended to the archive (scanners requiring PK at offset 0 are blind)",
        |pkl| {
            ZipWriter::from_members(pytorch_members("archive", pkl))
                .prepend(&[0x55; 300])
                .finish()
        },
    ));
    cases.extend(twins(
        "zip64",
        "ZIP64 end records and extra fields",
        |pkl| {
            ZipWriter::from_members(pytorch_members("archive", pkl))
                .zip64()
                .finish()
        },
    ));
    cases.extend(twins(
        "data-descriptor",
        "CRC and sizes in data descriptors",
        |pkl| pytorch_with(pkl, "data.pkl", Member::data_descriptor).finish(),
    ));
    cases.extend(twins("deflated-data-pkl", "deflated data.pkl", |pkl| {
        pytorch_with(pkl, "data.pkl", |m| m.method(Method::Deflated)).finish()
    }));
    cases.extend(twins("nested-zip", "zip inside a zip", |pkl| {
        ZipWriter::new()
            .stored("bundle/model.pt", &pytorch_zip(pkl))
            .stored("bundle/README.md", b"# model\n")
            .finish()
    }));
    cases.push(Case::malicious(
        "zip/two-central-directories",
        "model.pt",
        two_directories(evil),
        "AEG-SCAN-101",
        "zipfile and miniz read different central directories (one hidden in the comment)",
    ));
    cases.push(Case::benign(
        "zip/archive-comment",
        "model.pt",
        ZipWriter::from_members(pytorch_members("archive", &benign))
            .comment(b"exported by trainer v1.2")
            .finish(),
        "honest PyTorch zip with an archive comment",
    ));
    cases.extend(structure_cases(&benign));
    cases.extend(other_layouts());
    cases
}

/// A malicious case (payload data.pkl, expecting the pickle rule) and its benign twin built the same way.
fn twins(tag: &str, technique: &'static str, build: impl Fn(&[u8]) -> Vec<u8>) -> Vec<Case> {
    vec![
        Case::malicious(
            &format!("zip/{tag}-payload"),
            "model.pt",
            build(PAYLOAD_PICKLE),
            "AEG-SCAN-101",
            technique,
        ),
        Case::benign(
            &format!("zip/{tag}-benign"),
            "model.pt",
            build(&state_dict_pickle()),
            technique,
        ),
    ]
}

/// Cases whose structure itself is the attack.
fn structure_cases(benign: &[u8]) -> Vec<Case> {
    // PyTorch reads `archive/data.pkl` by its central name; `zipfile` refuses the member (names differ).
    let mismatch = pytorch_with(benign, "data.pkl", |_| {
        Member::stored("archive/readme.txt", PAYLOAD_PICKLE)
            .central_name("archive/data.pkl")
            .align(64)
    })
    .finish();
    let duplicate = ZipWriter::from_members(pytorch_members("archive", benign))
        .stored("archive/data.pkl", PAYLOAD_PICKLE)
        .finish();
    let traversal = ZipWriter::new()
        .stored("model/config.json", br#"{"a": 1}"#)
        .stored("../../../home/user/.bashrc", b"echo pwned\n")
        .finish();
    let benign_names = ZipWriter::new()
        .stored("model/config.json", br#"{"a": 1}"#)
        .stored("model/notes/readme.txt", b"hello\n")
        .finish();
    let escaping_link = ZipWriter::new()
        .member(Member::stored("model/weights", b"/etc/passwd").symlink())
        .finish();
    let inner_link = ZipWriter::new()
        .stored("model/weights-v1.bin", &tensor_bytes())
        .member(Member::stored("model/weights", b"weights-v1.bin").symlink())
        .finish();
    vec![
        Case::malicious(
            "zip/name-mismatch",
            "model.pt",
            mismatch,
            "AEG-SCAN-201",
            "local header and central directory name a member differently",
        ),
        Case::malicious(
            "zip/duplicate-data-pkl",
            "model.pt",
            duplicate,
            "AEG-SCAN-202",
            "two members named data.pkl (loaders pick different ones)",
        ),
        Case::malicious(
            "zip/path-traversal",
            "bundle.zip",
            traversal,
            "AEG-SCAN-206",
            "member name climbing out of the extraction directory",
        ),
        Case::benign(
            "zip/ordinary-names",
            "bundle.zip",
            benign_names,
            "ordinary relative member names",
        ),
        Case::malicious(
            "zip/symlink-escape",
            "bundle.zip",
            escaping_link,
            "AEG-SCAN-208",
            "Unix symlink member pointing outside the archive",
        ),
        Case::benign(
            "zip/symlink-inside",
            "bundle.zip",
            inner_link,
            "Unix symlink member pointing at a sibling",
        ),
        Case::malicious(
            "zip/overlapping-bomb",
            "bundle.zip",
            overlapping_bomb(200, 4 << 20),
            "AEG-SCAN-209",
            "many members sharing one compressed stream (zip bomb)",
        ),
        Case::benign(
            "zip/large-zeros-deflated",
            "bundle.zip",
            ZipWriter::new()
                .deflated("zeros.bin", &vec![0u8; 2 << 20])
                .finish(),
            "one honest highly compressible member",
        ),
    ]
}

/// Other ecosystems' zips.
fn other_layouts() -> Vec<Case> {
    vec![
        Case::benign(
            "zip/keras-v3",
            "model.keras",
            keras_zip(),
            "Keras 3 .keras zip",
        ),
        Case::benign("zip/npz-stored", "arrays.npz", npz(false), "numpy.savez"),
        Case::benign(
            "zip/npz-compressed",
            "arrays.npz",
            npz(true),
            "numpy.savez_compressed",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_end_with_an_end_record() {
        let zip = pytorch_zip(BENIGN_PICKLE);
        let eocd = &zip[zip.len() - 22..];
        assert_eq!(&eocd[..4], b"PK\x05\x06");
        assert_eq!(u16::from_le_bytes([eocd[10], eocd[11]]), 7);
    }

    #[test]
    fn pytorch_data_is_aligned_to_64_bytes() {
        let zip = pytorch_zip(BENIGN_PICKLE);
        let storage = tensor_bytes();
        let at = zip
            .windows(storage.len())
            .position(|w| w == storage)
            .unwrap();
        assert_eq!(at % 64, 0);
    }

    /// Regenerate the committed fuzz seeds: `cargo test -p aegis-test-support -- --ignored write_zip_seeds`.
    #[test]
    #[ignore]
    fn write_zip_seeds() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/zip");
        std::fs::create_dir_all(dir).unwrap();
        let seeds: [(&str, Vec<u8>); 4] = [
            ("pytorch.zip", pytorch_zip(BENIGN_PICKLE)),
            (
                "zip64-descriptor.zip",
                ZipWriter::new()
                    .member(Member::deflated("a/data.pkl", PAYLOAD_PICKLE).data_descriptor())
                    .stored("a/b", b"xyz")
                    .zip64()
                    .finish(),
            ),
            (
                "prepended-badcrc.zip",
                ZipWriter::new()
                    .member(
                        Member::stored("a/data.pkl", BENIGN_PICKLE)
                            .bad_crc()
                            .central_name("x"),
                    )
                    .prepend(b"junk")
                    .finish(),
            ),
            ("legacy.tar", crate::tar::legacy_torch_tar(BENIGN_PICKLE)),
        ];
        for (name, bytes) in seeds {
            std::fs::write(format!("{dir}/{name}"), bytes).unwrap();
        }
    }

    #[test]
    fn corpus_names_are_unique_and_labelled() {
        let cases = corpus();
        let mut names: Vec<_> = cases.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), cases.len());
        assert!(cases.iter().any(|c| c.malicious) && cases.iter().any(|c| !c.malicious));
    }
}
