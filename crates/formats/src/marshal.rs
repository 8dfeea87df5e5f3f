//! Strings inside marshalled Python code objects (Keras Lambda bytecode, `marshal.loads` payloads in
//! pickles), read as data for evidence: the names and constants a function mentions (`system`, `os`).
//! Nothing is unmarshalled.

/// Strings reported per code object.
const MAX_STRINGS: usize = 64;

/// The strings a marshalled code object mentions (names, constants), found by their marshal type codes
/// (`z`/`Z` short ASCII, `a`/`A` ASCII, `u` unicode, with or without the reference flag); falls back to
/// printable runs when none are found.
pub fn strings(code: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let push = |s: &[u8], out: &mut Vec<String>| {
        if let Ok(text) = std::str::from_utf8(s) {
            if !text.is_empty()
                && text.chars().all(|c| !c.is_control())
                && out.len() < MAX_STRINGS
                && !out.iter().any(|o| o == text)
            {
                out.push(text.to_owned());
            }
        }
    };
    let mut i = 0usize;
    while i < code.len() {
        let ty = code[i] & 0x7f;
        let (len, start) = match ty {
            b'z' | b'Z' => match code.get(i + 1) {
                Some(n) => (usize::from(*n), i + 2),
                None => break,
            },
            b'a' | b'A' | b'u' => match code.get(i + 1..i + 5) {
                Some(b) => (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, i + 5),
                None => break,
            },
            _ => {
                i += 1;
                continue;
            }
        };
        match start.checked_add(len).and_then(|end| code.get(start..end)) {
            Some(s) if len > 0 && len <= 4096 && s.iter().all(|b| (0x20..0x7f).contains(b)) => {
                push(s, &mut out);
                i = start + len;
            }
            _ => i += 1,
        }
    }
    if out.is_empty() {
        for run in code.split(|b| !(0x20..0x7f).contains(b)) {
            if run.len() >= 4 {
                push(run, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strings;

    #[test]
    fn reads_marshal_strings_and_falls_back_to_printable_runs() {
        let code = [
            0xe3, 0, 0, b'z', 6, b's', b'y', b's', b't', b'e', b'm', 0xda, 2, b'o', b's', 0xfa, 200,
        ];
        assert_eq!(strings(&code), vec!["system", "os"]);
        assert_eq!(strings(b"\x01\x02hello world\x00"), vec!["hello world"]);
        assert!(strings(b"\x01\x02").is_empty());
    }
}
