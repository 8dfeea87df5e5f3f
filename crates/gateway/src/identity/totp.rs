//! TOTP (RFC 6238) over HOTP (RFC 4226): HMAC-SHA1, 30-second steps, 6 digits, the authenticator-app default.
//!
//! Written here (on `hmac` + `sha1`) rather than pulled in, because it is thirty lines and the part that matters
//! for security, replay refusal, needs the matched time step: [`verify`] returns it so the caller can store it
//! and refuse any step at or before it. Codes are compared in constant time.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroizing;

use crate::util::constant_time_eq;

/// Seconds per time step.
pub const PERIOD: i64 = 30;

/// Digits per code.
pub const DIGITS: u32 = 6;

/// HOTP value of `counter` with `digits` digits (RFC 4226 §5.3 dynamic truncation).
///
/// Returns `u32::MAX`, a value no code of at most 9 digits can equal, if the MAC cannot be keyed (HMAC accepts
/// keys of any length, so this does not happen).
pub(crate) fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return u32::MAX;
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    // SHA-1 output is 20 bytes; the offset is at most 15, so offset + 3 stays in bounds.
    let offset = (h[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The 6-digit code of time step `step` (`step` = Unix seconds / 30).
pub fn code_at(secret: &[u8], step: u64) -> u32 {
    hotp(secret, step, DIGITS)
}

/// Check `code` at time `now` (Unix seconds), accepting the current step and one step either side for clock skew.
///
/// Returns the matched step, and only a step strictly after `last_step` (the last one accepted for this
/// secret): a code that is right but already used yields `None` like a wrong one. A code that is not exactly six
/// ASCII digits is refused.
pub fn verify(secret: &[u8], code: &str, now: i64, last_step: i64) -> Option<i64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) || now < 0 {
        return None;
    }
    let current = now / PERIOD;
    let mut found = None;
    // Every candidate is computed and compared, so the time taken does not say which one matched.
    for step in current.saturating_sub(1)..=current.saturating_add(1) {
        if step < 0 {
            continue;
        }
        let expected = Zeroizing::new(format!("{:06}", code_at(secret, step as u64)));
        if constant_time_eq(expected.as_bytes(), code.as_bytes())
            && step > last_step
            && found.is_none()
        {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32 (upper case, no padding), the encoding authenticator apps expect for secrets.
pub fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 0x1f) as usize] as char);
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 0x1f) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn hotp_matches_rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(SECRET, counter as u64, 6), *want, "counter {counter}");
        }
    }

    #[test]
    fn totp_matches_rfc6238_appendix_b_sha1() {
        let vectors: [(u64, u32); 6] = [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ];
        for (t, want) in vectors {
            let step = t / PERIOD as u64;
            assert_eq!(hotp(SECRET, step, 8), want, "t={t}");
            assert_eq!(code_at(SECRET, step), want % 1_000_000, "t={t}");
        }
        assert_eq!(code_at(SECRET, 1), 287082);
    }

    #[test]
    fn verify_accepts_one_step_of_skew_and_refuses_two() {
        let now = 1_000_000 * PERIOD + 7;
        let step = now / PERIOD;
        let code = |s: i64| format!("{:06}", code_at(SECRET, s as u64));
        assert_eq!(verify(SECRET, &code(step), now, 0), Some(step));
        assert_eq!(verify(SECRET, &code(step - 1), now, 0), Some(step - 1));
        assert_eq!(verify(SECRET, &code(step + 1), now, 0), Some(step + 1));
        assert_eq!(verify(SECRET, &code(step - 2), now, 0), None);
        assert_eq!(verify(SECRET, &code(step + 2), now, 0), None);
        assert_eq!(verify(b"another secret", &code(step), now, 0), None);
    }

    #[test]
    fn verify_refuses_used_steps_and_malformed_codes() {
        let now = 1_000_000 * PERIOD;
        let step = now / PERIOD;
        let code = format!("{:06}", code_at(SECRET, step as u64));
        assert_eq!(verify(SECRET, &code, now, step - 1), Some(step));
        assert_eq!(verify(SECRET, &code, now, step), None);
        assert_eq!(verify(SECRET, &code, now, step + 5), None);
        assert_eq!(verify(SECRET, &format!("{code} "), now, 0), None);
        assert_eq!(verify(SECRET, &code[..5], now, 0), None);
        assert_eq!(verify(SECRET, "12345a", now, 0), None);
        assert_eq!(verify(SECRET, "", now, 0), None);
        assert_eq!(verify(SECRET, &code, -1, 0), None);
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32_encode(b""), "");
        assert_eq!(base32_encode(b"f"), "MY");
        assert_eq!(base32_encode(b"fo"), "MZXQ");
        assert_eq!(base32_encode(b"foo"), "MZXW6");
        assert_eq!(base32_encode(b"foob"), "MZXW6YQ");
        assert_eq!(base32_encode(b"fooba"), "MZXW6YTB");
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_encode(SECRET), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }
}
