//! TODO(helper): lenient zip reader.

/// Offset of the end-of-central-directory record inside `tail`, if present.
pub fn find_eocd(tail: &[u8]) -> Option<usize> {
    if tail.len() < 22 {
        return None;
    }
    (0..=tail.len() - 22).rev().find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
}
