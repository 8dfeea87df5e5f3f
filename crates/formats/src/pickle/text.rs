//! Decoders for opcode arguments: protocol 0 text (`INT`, `LONG`, `STRING` with `codecs.escape_decode`,
//! `UNICODE` with `raw-unicode-escape`) and `LONG1`/`LONG4` two's complement. They follow CPython's
//! behaviour; anything CPython would reject yields `None` so the emulator can record an anomaly.

use std::rc::Rc;

use super::Value;

/// Longest integer literal converted exactly (longer ones become an unknown value).
const MAX_INT_DIGITS: usize = 4096;

/// `decode_long`: little-endian two's complement.
pub(super) fn decode_long(bytes: &[u8]) -> Value {
    if bytes.len() <= 8 {
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        let mut buf = if negative { [0xff; 8] } else { [0; 8] };
        if let Some(dst) = buf.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        return Value::Int(i64::from_le_bytes(buf));
    }
    Value::BigInt(Rc::from(trim_long(bytes)))
}

/// Drop redundant sign-extension bytes of a two's complement integer.
pub(super) fn trim_long(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    while end > 1 {
        let (Some(&top), Some(&next)) = (bytes.get(end - 1), bytes.get(end - 2)) else {
            break;
        };
        let redundant = (top == 0 && next & 0x80 == 0) || (top == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        end -= 1;
    }
    bytes.get(..end).unwrap_or(bytes)
}

/// Python `int(text, 0)` (`base0`) or `int(text)`: optional sign, `0x`/`0o`/`0b` prefixes with base 0,
/// underscores between digits.
pub(super) fn parse_int(text: &[u8], base0: bool) -> Option<Value> {
    let text = text.trim_ascii();
    let (negative, rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let (base, digits) = match rest {
        [b'0', b'x' | b'X', d @ ..] if base0 => (16, d),
        [b'0', b'o' | b'O', d @ ..] if base0 => (8, d),
        [b'0', b'b' | b'B', d @ ..] if base0 => (2, d),
        _ => (10, rest),
    };
    let digits = digits
        .strip_prefix(b"_")
        .filter(|_| base != 10)
        .unwrap_or(digits);
    if digits.is_empty()
        || digits.starts_with(b"_")
        || digits.ends_with(b"_")
        || digits.windows(2).any(|w| w == b"__")
    {
        return None;
    }
    if base0
        && base == 10
        && digits.len() > 1
        && digits.starts_with(b"0")
        && digits.iter().any(|d| !matches!(d, b'0' | b'_'))
    {
        return None; // `int("010", 0)` is an error
    }
    if digits.len() > MAX_INT_DIGITS {
        return digits
            .iter()
            .all(|d| *d == b'_' || char::from(*d).is_digit(base))
            .then(|| Value::Unknown(Rc::from("integer literal too long")));
    }
    let limbs = magnitude(digits, base)?;
    Some(from_magnitude(&limbs, negative))
}

/// Magnitude of a digit string as little-endian 32-bit limbs.
fn magnitude(digits: &[u8], base: u32) -> Option<Vec<u32>> {
    let mut limbs: Vec<u32> = Vec::new();
    for &d in digits {
        if d == b'_' {
            continue;
        }
        let mut carry = u64::from(char::from(d).to_digit(base)?);
        for limb in &mut limbs {
            let x = u64::from(*limb) * u64::from(base) + carry;
            *limb = x as u32;
            carry = x >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    Some(limbs)
}

/// An `Int` when it fits, otherwise a two's complement `BigInt`.
fn from_magnitude(limbs: &[u32], negative: bool) -> Value {
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    if bytes.len() <= 8 {
        let mut buf = [0u8; 8];
        if let Some(dst) = buf.get_mut(..bytes.len()) {
            dst.copy_from_slice(&bytes);
        }
        let m = u64::from_le_bytes(buf);
        if !negative && m <= i64::MAX as u64 {
            return Value::Int(m as i64);
        }
        if negative && m <= 1u64 << 63 {
            return Value::Int((m as i64).wrapping_neg());
        }
    }
    bytes.push(0); // room for the sign bit
    if negative {
        let mut carry = true;
        for b in &mut bytes {
            let (v, c) = (!*b).overflowing_add(u8::from(carry));
            *b = v;
            carry = c;
        }
    }
    Value::BigInt(Rc::from(trim_long(&bytes)))
}

/// `codecs.escape_decode` of a `STRING` argument (quotes already stripped).
pub(super) fn escape_decode(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while let Some(&c) = data.get(i) {
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *data.get(i)?; // a trailing backslash is an error
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match data.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let hi = char::from(*data.get(i)?).to_digit(16)?;
                let lo = char::from(*data.get(i + 1)?).to_digit(16)?;
                i += 2;
                out.push((hi * 16 + lo) as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// `raw-unicode-escape` decoding of a `UNICODE` argument: bytes are Latin-1 code points, and `\uXXXX` /
/// `\UXXXXXXXX` after an odd number of backslashes are escapes.
pub(super) fn raw_unicode_escape(data: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(data.len());
    let mut i = 0;
    while let Some(&c) = data.get(i) {
        i += 1;
        if c != b'\\' {
            out.push(char::from(c));
            continue;
        }
        let mut run = 1;
        while data.get(i) == Some(&b'\\') {
            run += 1;
            i += 1;
        }
        let kind = data.get(i).copied();
        let digits = match kind {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => {
                out.extend(std::iter::repeat_n('\\', run));
                continue;
            }
        };
        out.extend(std::iter::repeat_n('\\', run - 1));
        let hex = data.get(i + 1..i + 1 + digits)?;
        let code = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        if code > 0x10ffff {
            return None;
        }
        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
        i += 1 + digits;
    }
    Some(out)
}

/// A `str` value from the kept bytes of a UTF-8 constant whose full length is `len` (a kept prefix is cut at
/// a character boundary).
pub(super) fn str_value(kept: &[u8], len: u64) -> Value {
    let text: Rc<str> = match std::str::from_utf8(kept) {
        Ok(s) => Rc::from(s),
        Err(e) if kept.len() as u64 != len && e.error_len().is_none() => {
            Rc::from(std::str::from_utf8(kept.get(..e.valid_up_to()).unwrap_or(&[])).unwrap_or(""))
        }
        Err(_) => Rc::from(String::from_utf8_lossy(kept).as_ref()),
    };
    Value::Str { text, len }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: &Value) -> Option<i64> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    #[test]
    fn longs_decode_as_cpython() {
        assert_eq!(int(&decode_long(&[])), Some(0));
        assert_eq!(int(&decode_long(&[0xff, 0x00])), Some(255));
        assert_eq!(int(&decode_long(&[0xff])), Some(-1));
        assert_eq!(int(&decode_long(&[0x00, 0x80])), Some(-32768));
        let magic = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
        assert!(matches!(decode_long(&magic), Value::BigInt(b) if *b == magic));
    }

    #[test]
    fn int_literals() {
        assert_eq!(parse_int(b"42", true).as_ref().and_then(int), Some(42));
        assert_eq!(
            parse_int(b" -0x1f ", true).as_ref().and_then(int),
            Some(-31)
        );
        assert_eq!(parse_int(b"0b101", true).as_ref().and_then(int), Some(5));
        assert_eq!(parse_int(b"1_000", true).as_ref().and_then(int), Some(1000));
        assert_eq!(parse_int(b"000", true).as_ref().and_then(int), Some(0));
        assert!(parse_int(b"010", true).is_none());
        assert_eq!(parse_int(b"010", false).as_ref().and_then(int), Some(10));
        assert!(parse_int(b"12a", true).is_none());
        assert!(parse_int(b"", true).is_none());
        assert_eq!(
            parse_int(b"-9223372036854775808", true)
                .as_ref()
                .and_then(int),
            Some(i64::MIN)
        );
        let magic = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
        let v = parse_int(b"119547037146038801333356", true);
        assert!(
            matches!(&v, Some(Value::BigInt(b)) if **b == magic),
            "{v:?}"
        );
        let v = parse_int(b"-9223372036854775809", false);
        assert!(
            matches!(v, Some(Value::BigInt(b)) if *b == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff])
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            escape_decode(br"a\n\x41\101\\\'q\z").unwrap(),
            b"a\nAA\\'q\\z"
        );
        assert!(escape_decode(b"trailing\\").is_none());
        assert!(escape_decode(br"\x4").is_none());
        assert_eq!(
            raw_unicode_escape(br"caf\u00e9 \\u0041 \U0001F600").unwrap(),
            "café \\\\u0041 😀"
        );
        assert_eq!(raw_unicode_escape(b"\xe9").unwrap(), "é");
        assert!(raw_unicode_escape(br"\u12").is_none());
    }

    #[test]
    fn str_prefix_cut_at_char_boundary() {
        let v = str_value("é".as_bytes().get(..1).unwrap(), 2);
        assert!(matches!(&v, Value::Str { text, len: 2 } if text.is_empty()));
        assert_eq!(str_value(b"abc", 3).as_str(), Some("abc"));
    }
}
