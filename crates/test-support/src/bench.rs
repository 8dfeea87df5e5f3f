//! Large benign files for benchmarks: a PyTorch-layout zip of any size and a numpy-heavy raw pickle. Written
//! straight to disk in streaming fashion, with an independent minimal zip writer (stored members, CRC-32,
//! 64-byte data alignment like `torch.save`), so a 1 GiB checkpoint never sits in memory.

use std::io::{self, Seek, Write};

/// Bytes of one tensor's storage in the generated checkpoint (16 MiB of float32).
const TENSOR_BYTES: u64 = 16 << 20;

fn binunicode(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(b'c');
    out.extend_from_slice(module.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

fn binint(out: &mut Vec<u8>, v: i32) {
    out.push(b'J');
    out.extend_from_slice(&v.to_le_bytes());
}

/// The `data.pkl` of a `torch.save`d state dict with `tensors` float32 tensors of `numel` elements each, as
/// protocol 2 writes it: an `OrderedDict` of `_rebuild_tensor_v2` calls over persistent storages.
pub fn state_dict_pickle(tensors: usize, numel: i32) -> Vec<u8> {
    let mut out = vec![0x80, 2];
    global(&mut out, "collections", "OrderedDict");
    out.extend_from_slice(b")R(");
    for i in 0..tensors {
        binunicode(&mut out, &format!("layers.{i}.weight"));
        global(&mut out, "torch._utils", "_rebuild_tensor_v2");
        out.extend_from_slice(b"((");
        binunicode(&mut out, "storage");
        global(&mut out, "torch", "FloatStorage");
        binunicode(&mut out, &i.to_string());
        binunicode(&mut out, "cpu");
        binint(&mut out, numel);
        out.extend_from_slice(b"tQ"); // TUPLE, BINPERSID
        out.extend_from_slice(b"K\x00"); // storage offset
        binint(&mut out, numel);
        out.push(0x85); // size
        out.extend_from_slice(b"K\x01\x85"); // stride
        out.push(0x89); // requires_grad False
        global(&mut out, "collections", "OrderedDict");
        out.extend_from_slice(b")R"); // backward hooks
        out.extend_from_slice(b"tR");
    }
    out.extend_from_slice(b"u.");
    out
}

struct Central {
    name: String,
    crc: u32,
    size: u32,
    offset: u32,
}

/// Receives chunks of a member's data.
type Sink<'a> = &'a mut dyn FnMut(&[u8]) -> io::Result<()>;
/// Produces a member's data into a sink (called twice: once for the CRC, once to write).
type Source<'a> = &'a mut dyn FnMut(Sink<'_>) -> io::Result<()>;

/// Write a stored member with 64-byte aligned data (padding in the local extra field, as PyTorch does).
fn member<W: Write + Seek>(
    out: &mut W,
    central: &mut Vec<Central>,
    name: &str,
    data: Source<'_>,
    size: u64,
) -> io::Result<()> {
    let offset = out.stream_position()?;
    let header_len = 30 + name.len() as u64;
    let pad = (64 - (offset + header_len + 4) % 64) % 64;
    let size32 = u32::try_from(size).map_err(|_| io::Error::other("member over 4 GiB"))?;
    let offset32 = u32::try_from(offset).map_err(|_| io::Error::other("archive over 4 GiB"))?;
    // CRC is computed over the data first (a second pass): generators are deterministic and cheap.
    let mut crc = flate2::Crc::new();
    data(&mut |chunk| {
        crc.update(chunk);
        Ok(())
    })?;
    out.write_all(b"PK\x03\x04")?;
    out.write_all(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0])?; // version, flags, method 0, time, date
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&size32.to_le_bytes())?;
    out.write_all(&size32.to_le_bytes())?;
    out.write_all(&(name.len() as u16).to_le_bytes())?;
    out.write_all(&((pad + 4) as u16).to_le_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&0xfa_ceu16.to_le_bytes())?; // PyTorch's padding extra-field id
    out.write_all(&(pad as u16).to_le_bytes())?;
    out.write_all(&vec![b'Z'; pad as usize])?;
    data(&mut |chunk| out.write_all(chunk))?;
    central.push(Central {
        name: name.to_owned(),
        crc: crc.sum(),
        size: size32,
        offset: offset32,
    });
    Ok(())
}

fn finish<W: Write + Seek>(out: &mut W, central: &[Central]) -> io::Result<()> {
    let start = out.stream_position()?;
    for c in central {
        out.write_all(b"PK\x01\x02")?;
        out.write_all(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
        out.write_all(&c.crc.to_le_bytes())?;
        out.write_all(&c.size.to_le_bytes())?;
        out.write_all(&c.size.to_le_bytes())?;
        out.write_all(&(c.name.len() as u16).to_le_bytes())?;
        out.write_all(&[0; 12])?; // extra len, comment len, disk, internal attr, external attr
        out.write_all(&c.offset.to_le_bytes())?;
        out.write_all(c.name.as_bytes())?;
    }
    let end = out.stream_position()?;
    let count = central.len() as u16;
    out.write_all(b"PK\x05\x06\0\0\0\0")?;
    out.write_all(&count.to_le_bytes())?;
    out.write_all(&count.to_le_bytes())?;
    out.write_all(&((end - start) as u32).to_le_bytes())?;
    out.write_all(&(start as u32).to_le_bytes())?;
    out.write_all(&[0, 0])
}

/// Deterministic pseudo-random float bytes (xorshift), so compression and sniffing see realistic noise.
fn fill(seed: u64, len: u64, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        sink(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Write a benign PyTorch (≥ 1.6) zip checkpoint of about `total` bytes to `out` (16 MiB tensors).
pub fn write_torch_zip<W: Write + Seek>(out: &mut W, total: u64) -> io::Result<()> {
    let tensors = total.div_ceil(TENSOR_BYTES).max(1) as usize;
    write_torch_zip_with(out, tensors, TENSOR_BYTES)
}

/// Write a benign PyTorch zip checkpoint of `tensors` float32 tensors of `tensor_bytes` bytes each (many
/// small tensors make the opcode-heavy `data.pkl` of a real multi-layer model).
pub fn write_torch_zip_with<W: Write + Seek>(
    out: &mut W,
    tensors: usize,
    tensor_bytes: u64,
) -> io::Result<()> {
    let numel =
        i32::try_from(tensor_bytes / 4).map_err(|_| io::Error::other("tensor too large"))?;
    let mut central = Vec::new();
    let pickle = state_dict_pickle(tensors, numel);
    let put = |out: &mut W, central: &mut Vec<Central>, name: &str, bytes: &[u8]| {
        member(
            out,
            central,
            name,
            &mut |sink| sink(bytes),
            bytes.len() as u64,
        )
    };
    put(out, &mut central, "archive/data.pkl", &pickle)?;
    put(out, &mut central, "archive/byteorder", b"little")?;
    for i in 0..tensors {
        let name = format!("archive/data/{i}");
        member(
            out,
            &mut central,
            &name,
            &mut |sink| fill(i as u64 + 1, tensor_bytes, sink),
            tensor_bytes,
        )?;
    }
    put(out, &mut central, "archive/version", b"3\n")?;
    put(
        out,
        &mut central,
        "archive/.data/serialization_id",
        b"1234567890123456789012345678901234567890",
    )?;
    finish(out, &central)
}

/// Write a benign protocol-4 pickle of about `total` bytes: a dict of 16 MiB float32 numpy arrays as
/// `numpy.ndarray.__reduce__` writes them (`_reconstruct` + BUILD with the raw bytes).
pub fn write_numpy_pickle<W: Write>(out: &mut W, total: u64) -> io::Result<()> {
    write_numpy_pickle_with(out, total.div_ceil(TENSOR_BYTES).max(1), TENSOR_BYTES)
}

/// Write a benign protocol-4 pickle of `arrays` float32 arrays of `array_bytes` bytes each.
pub fn write_numpy_pickle_with<W: Write>(
    out: &mut W,
    arrays: u64,
    array_bytes: u64,
) -> io::Result<()> {
    let numel = i32::try_from(array_bytes / 4).map_err(|_| io::Error::other("array too large"))?;
    out.write_all(&[0x80, 4, b'}', b'('])?;
    for i in 0..arrays {
        let mut head = Vec::new();
        binunicode(&mut head, &format!("array_{i}"));
        global(&mut head, "numpy.core.multiarray", "_reconstruct");
        global(&mut head, "numpy", "ndarray");
        head.extend_from_slice(b"K\x00\x85C\x01b\x87R(K\x01");
        binint(&mut head, numel);
        head.push(0x85);
        global(&mut head, "numpy", "dtype");
        binunicode(&mut head, "f4");
        head.extend_from_slice(&[0x89, 0x88, 0x87, b'R', b'(', b'K', 3]);
        binunicode(&mut head, "<");
        head.extend_from_slice(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
        head.push(0x89); // fortran order False
        head.push(0x8e); // BINBYTES8
        head.extend_from_slice(&(u64::from(numel as u32) * 4).to_le_bytes());
        out.write_all(&head)?;
        fill(i + 7, u64::from(numel as u32) * 4, &mut |chunk| {
            out.write_all(chunk)
        })?;
        out.write_all(b"tb")?;
    }
    out.write_all(b"u.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_zip_has_a_central_directory_and_aligned_data() {
        let mut cursor = io::Cursor::new(Vec::new());
        write_torch_zip(&mut cursor, 1).unwrap();
        let bytes = cursor.into_inner();
        assert!(bytes.starts_with(b"PK\x03\x04"));
        let eocd = bytes.len() - 22;
        assert_eq!(&bytes[eocd..eocd + 4], b"PK\x05\x06");
        assert!(bytes.len() as u64 > TENSOR_BYTES);
    }

    #[test]
    fn numpy_pickle_ends_with_stop() {
        let mut out = Vec::new();
        write_numpy_pickle(&mut out, 1).unwrap();
        assert_eq!(&out[..2], &[0x80, 4]);
        assert_eq!(out.last(), Some(&b'.'));
    }
}
