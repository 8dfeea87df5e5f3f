//! numpy `.npy` writers following the format documentation of `numpy.lib.format`: header dict padded with
//! spaces and a newline so the data starts on a 64-byte boundary. Object arrays carry a hand-built pickle
//! (protocol 2) that would call `os.system("echo pwned")`; it is never loaded by anything but Aegis.

use crate::Case;

/// The pickle of an object array's data section: `os.system("echo pwned")`.
pub fn pickle_payload() -> Vec<u8> {
    b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.".to_vec()
}

/// A file of `version` (1, 2 or 3; other values are written with a `u32` length) with header text
/// `header`, padded like numpy does, followed by `data`.
pub fn raw(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut text = header.as_bytes().to_vec();
    let total = prefix + text.len() + 1;
    text.resize(text.len() + (64 - total % 64) % 64, b' ');
    text.push(b'\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    out
}

/// The header dict numpy writes for a descr literal (Python text), order flag and shape.
pub fn header(descr: &str, fortran: bool, shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let order = if fortran { "True" } else { "False" };
    format!("{{'descr': {descr}, 'fortran_order': {order}, 'shape': {shape}, }}")
}

/// An honest little-endian float32 array of `shape`, values 0.25.
pub fn float32(shape: &[u64]) -> Vec<u8> {
    let n: u64 = shape.iter().product();
    let data: Vec<u8> = (0..n).flat_map(|_| 0.25f32.to_le_bytes()).collect();
    raw(1, &header("'<f4'", false, shape), &data)
}

/// An object array whose data section is [`pickle_payload`].
pub fn object_pickle() -> Vec<u8> {
    raw(1, &header("'|O'", false, &[1]), &pickle_payload())
}

/// A structured array with an object field, data a pickle.
pub fn structured_object() -> Vec<u8> {
    raw(
        1,
        &header("[('id', '<i4'), ('payload', '|O')]", false, &[1]),
        &pickle_payload(),
    )
}

/// An honest structured array `[('x', '<f4'), ('y', '<i8'), ('z', '<i2', (2, 3))]` of 2 records.
pub fn structured() -> Vec<u8> {
    raw(
        1,
        &header(
            "[('x', '<f4'), ('y', '<i8'), ('z', '<i2', (2, 3))]",
            false,
            &[2],
        ),
        &[0; 48],
    )
}

/// A header that is code, not a literal (aimed at loaders that `eval` the header).
pub fn eval_header() -> Vec<u8> {
    raw(
        1,
        "{'descr': __import__('os').system('echo pwned') or '<f4', 'fortran_order': False, 'shape': (1,), }",
        &[0; 4],
    )
}

/// Malicious and benign cases of this format.
pub fn corpus() -> Vec<Case> {
    vec![
        Case::malicious(
            "npy/object-pickle",
            "array.npy",
            object_pickle(),
            "AEG-SCAN-450",
            "object array whose data is a pickle calling os.system",
        ),
        Case::benign(
            "npy/float32",
            "array.npy",
            float32(&[3, 4]),
            "honest float32 array",
        ),
        Case::malicious(
            "npy/structured-object-field",
            "array.npy",
            structured_object(),
            "AEG-SCAN-450",
            "structured dtype with an object field",
        ),
        Case::benign(
            "npy/structured",
            "array.npy",
            structured(),
            "honest structured array",
        ),
        Case::malicious(
            "npy/eval-header",
            "array.npy",
            eval_header(),
            "AEG-SCAN-451",
            "header that is code instead of a literal",
        ),
        Case::benign(
            "npy/v2-header",
            "array.npy",
            raw(2, &header("'<i8'", true, &[2, 2]), &[0; 32]),
            "honest version 2 header, Fortran order",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_starts_on_a_64_byte_boundary() {
        let bytes = float32(&[2, 3]);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(bytes.len(), 10 + header_len + 24);
        assert_eq!(bytes[10 + header_len - 1], b'\n');
        assert!(String::from_utf8_lossy(&bytes).contains("'shape': (2, 3), }"));
    }
}
