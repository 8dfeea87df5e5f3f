//! Personal data and secrets in prompts and answers: payment card numbers (Luhn), IBANs (ISO 13616 mod 97 and
//! the country's length), e-mail addresses, phone numbers in international or common national form, API keys
//! and tokens of common providers, private-key blocks, and long high-entropy strings.
//!
//! Detectors return byte spans of the original text so they can be redacted in place ([`rewrite`]); checksums
//! and shape rules keep the detectors from firing on order numbers, hashes and prose.

use std::sync::LazyLock;

use regex::Regex;

/// What a span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A payment card number that passes the Luhn check.
    Card,
    /// An IBAN that passes mod 97 with its country's length.
    Iban,
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// An API key or token of a known provider.
    ApiKey,
    /// A PEM private-key block.
    PrivateKey,
    /// A long random-looking string (likely a secret).
    HighEntropy,
}

impl Kind {
    /// The name used in configuration, metrics and redactions.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Card => "card",
            Kind::Iban => "iban",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::ApiKey => "api-key",
            Kind::PrivateKey => "private-key",
            Kind::HighEntropy => "high-entropy",
        }
    }

    /// Every kind.
    pub const ALL: [Kind; 7] = [
        Kind::Card,
        Kind::Iban,
        Kind::Email,
        Kind::Phone,
        Kind::ApiKey,
        Kind::PrivateKey,
        Kind::HighEntropy,
    ];

    /// Parse a configured name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it is a secret (credentials) rather than personal data.
    pub fn is_secret(self) -> bool {
        matches!(self, Kind::ApiKey | Kind::PrivateKey | Kind::HighEntropy)
    }
}

/// One detected span.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    /// What it is.
    pub kind: Kind,
    /// Byte offsets in the text.
    pub start: usize,
    /// End (exclusive).
    pub end: usize,
    /// The provider or sub-kind (`openai`, `aws`, `visa` …), when known.
    pub detail: &'static str,
}

/// What to do with a detected span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Count and record only.
    Log,
    /// Replace with `[REDACTED:kind]`.
    Redact,
    /// Keep the last four characters, replace the rest with `*`.
    Mask,
    /// Refuse the request (prompts) or cut the answer (responses).
    Block,
}

/// Every span of `kinds` in `text`, in order, not overlapping (an earlier, longer or more specific match wins).
pub fn find(text: &str, kinds: &[Kind]) -> Vec<Span> {
    let mut spans = Vec::new();
    let on = |k: Kind| kinds.contains(&k);
    if on(Kind::PrivateKey) {
        private_keys(text, &mut spans);
    }
    if on(Kind::ApiKey) {
        api_keys(text, &mut spans);
    }
    if on(Kind::Email) {
        simple(text, &EMAIL, Kind::Email, "", &mut spans);
    }
    if on(Kind::Iban) {
        ibans(text, &mut spans);
    }
    if on(Kind::Card) {
        cards(text, &mut spans);
    }
    if on(Kind::Phone) {
        phones(text, &mut spans);
    }
    if on(Kind::HighEntropy) {
        high_entropy(text, &mut spans);
    }
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut kept: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        if kept.last().is_none_or(|k| s.start >= k.end) {
            kept.push(s);
        }
    }
    kept
}

/// `text` with every span replaced as `action` says (`Log` and `Block` leave it unchanged).
pub fn rewrite(text: &str, spans: &[Span], action: Action) -> String {
    if matches!(action, Action::Log | Action::Block) || spans.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for s in spans {
        out.push_str(&text[last..s.start]);
        let found = &text[s.start..s.end];
        match action {
            Action::Mask => {
                let n = found.chars().count();
                out.extend(found.chars().enumerate().map(|(i, c)| {
                    if i + 4 >= n || !c.is_alphanumeric() {
                        c
                    } else {
                        '*'
                    }
                }));
            }
            _ => {
                out.push_str("[REDACTED:");
                out.push_str(s.kind.as_str());
                out.push(']');
            }
        }
        last = s.end;
    }
    out.push_str(&text[last..]);
    out
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b")
        .expect("static regex")
});

fn simple(text: &str, re: &Regex, kind: Kind, detail: &'static str, out: &mut Vec<Span>) {
    out.extend(re.find_iter(text).map(|m| Span {
        kind,
        start: m.start(),
        end: m.end(),
        detail,
    }));
}

fn private_keys(text: &str, out: &mut Vec<Span>) {
    static BEGIN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----").expect("static regex")
    });
    static END: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----").expect("static regex")
    });
    for m in BEGIN.find_iter(text) {
        // To its END line, or (cut or streamed) to the end of the text: a partial key is still a secret.
        let end = END.find_at(text, m.end()).map_or(text.len(), |e| e.end());
        out.push(Span {
            kind: Kind::PrivateKey,
            start: m.start(),
            end,
            detail: "pem",
        });
    }
}

/// Token shapes of common providers (prefixes documented by each provider).
static PROVIDERS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        ("anthropic", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
        (
            "openai",
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        ),
        ("aws", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
        (
            "github",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        ),
        ("gitlab", r"\bglpat-[A-Za-z0-9_\-]{20,}\b"),
        ("slack", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}\b"),
        ("stripe", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b"),
        ("google", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
        ("huggingface", r"\bhf_[A-Za-z0-9]{30,}\b"),
        (
            "sendgrid",
            r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b",
        ),
        ("twilio", r"\bSK[0-9a-f]{32}\b"),
        (
            "jwt",
            r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        ),
        ("aegis", r"\baeg_[A-Za-z0-9_\-]{20,}"),
        ("bearer", r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{20,}=*"),
    ]
    .into_iter()
    .map(|(name, re)| (name, Regex::new(re).expect("static regex")))
    .collect()
});

fn api_keys(text: &str, out: &mut Vec<Span>) {
    for (name, re) in PROVIDERS.iter() {
        simple(text, re, Kind::ApiKey, name, out);
    }
}

fn cards(text: &str, out: &mut Vec<Span>) {
    static CARD: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b[2-6](?:[ \-]?[0-9]){12,18}\b").expect("static regex"));
    for m in CARD.find_iter(text) {
        let digits: Vec<u32> = m.as_str().chars().filter_map(|c| c.to_digit(10)).collect();
        if (13..=19).contains(&digits.len()) && luhn(&digits) && !all_same(&digits) {
            out.push(Span {
                kind: Kind::Card,
                start: m.start(),
                end: m.end(),
                detail: card_network(&digits),
            });
        }
    }
}

/// The Luhn (mod 10) check of ISO/IEC 7812.
pub fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn all_same(digits: &[u32]) -> bool {
    digits.windows(2).all(|w| w[0] == w[1])
}

fn card_network(d: &[u32]) -> &'static str {
    match (d[0], d[1]) {
        (4, _) => "visa",
        (5, 1..=5) | (2, 2..=7) => "mastercard",
        (3, 4 | 7) => "amex",
        (6, _) => "discover",
        _ => "card",
    }
}

/// IBAN lengths by country (ISO 13616 registry, common countries).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AT", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("EE", 20),
    ("ES", 24),
    ("FI", 18),
    ("FR", 27),
    ("GB", 22),
    ("GI", 23),
    ("GR", 27),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("KW", 30),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MT", 31),
    ("NL", 18),
    ("NO", 15),
    ("PL", 28),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("TR", 26),
    ("UA", 29),
];

fn ibans(text: &str, out: &mut Vec<Span>) {
    static IBAN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b").expect("static regex")
    });
    for m in IBAN.find_iter(text) {
        let compact: String = m.as_str().chars().filter(|c| !c.is_whitespace()).collect();
        let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| compact.starts_with(c)) else {
            continue;
        };
        // A longer match may be an IBAN followed by a word: keep the IBAN's own length.
        if compact.len() < len {
            continue;
        }
        let iban = &compact[..len];
        if iban_valid(iban) {
            let end = end_after_chars(m.as_str(), len);
            out.push(Span {
                kind: Kind::Iban,
                start: m.start(),
                end: m.start() + end,
                detail: "",
            });
        }
    }
}

/// Byte offset in `s` just after its `n`-th non-space character.
fn end_after_chars(s: &str, n: usize) -> usize {
    let mut seen = 0;
    for (i, c) in s.char_indices() {
        if !c.is_whitespace() {
            seen += 1;
            if seen == n {
                return i + c.len_utf8();
            }
        }
    }
    s.len()
}

/// ISO 13616: move the first four characters to the end, letters to numbers (A = 10), mod 97 must be 1.
pub fn iban_valid(iban: &str) -> bool {
    if iban.len() < 15 || !iban.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let rearranged = iban[4..].chars().chain(iban[..4].chars());
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn phones(text: &str, out: &mut Vec<Span>) {
    // International form (+CC …), or national forms with visible structure: (555) 123-4567, 555-123-4567,
    // 0xx xxx xxxx. Bare digit runs are left alone (order numbers, amounts).
    static PHONE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?:\+[1-9][0-9]{0,2}[ .\-]?(?:\(?[0-9]{1,4}\)?[ .\-]?){1,4}[0-9]{2,4}\b|(?:\B\([0-9]{3}\)\s?|\b[0-9]{3}[.\-])[0-9]{3}[.\-][0-9]{4}\b|\b0[1-9][0-9]{1,3}[ ][0-9]{3,4}[ ][0-9]{3,4}\b)",
        )
        .expect("static regex")
    });
    for m in PHONE.find_iter(text) {
        let digits = m.as_str().chars().filter(char::is_ascii_digit).count();
        if (8..=15).contains(&digits) {
            out.push(Span {
                kind: Kind::Phone,
                start: m.start(),
                end: m.end(),
                detail: "",
            });
        }
    }
}

fn high_entropy(text: &str, out: &mut Vec<Span>) {
    static TOKEN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/_\-]{32,}={0,2}").expect("static regex"));
    for m in TOKEN.find_iter(text) {
        let t = m.as_str();
        let classes = [
            t.chars().any(|c| c.is_ascii_lowercase()),
            t.chars().any(|c| c.is_ascii_uppercase()),
            t.chars().any(|c| c.is_ascii_digit()),
        ];
        // Secrets mix lower case, upper case and digits; hex digests (16 symbols) stay under the bound.
        if classes.iter().all(|&b| b) && shannon_bits(t) >= 4.3 {
            out.push(Span {
                kind: Kind::HighEntropy,
                start: m.start(),
                end: m.end(),
                detail: "",
            });
        }
    }
}

/// Shannon entropy of `s` in bits per character.
pub fn shannon_bits(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for b in s.bytes() {
        *counts.entry(b).or_insert(0usize) += 1;
    }
    let n = s.len() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        find(text, &Kind::ALL).into_iter().map(|s| s.kind).collect()
    }

    #[test]
    fn cards_need_luhn() {
        assert_eq!(kinds("my card is 4111 1111 1111 1111."), vec![Kind::Card]);
        assert_eq!(kinds("5500-0000-0000-0004"), vec![Kind::Card]);
        assert!(kinds("order 4111 1111 1111 1112").is_empty());
        assert!(kinds("0000 0000 0000 0000").is_empty());
    }

    #[test]
    fn ibans_need_mod97_and_length() {
        assert_eq!(
            kinds("pay to GB82 WEST 1234 5698 7654 32 today"),
            vec![Kind::Iban]
        );
        assert_eq!(kinds("DE89370400440532013000"), vec![Kind::Iban]);
        assert!(kinds("GB82 WEST 1234 5698 7654 33").is_empty());
        assert!(kinds("XX82WEST12345698765432").is_empty());
    }

    #[test]
    fn emails_and_phones() {
        assert_eq!(kinds("write to jane.doe@example.com"), vec![Kind::Email]);
        assert_eq!(kinds("call +44 20 7946 0958"), vec![Kind::Phone]);
        assert_eq!(kinds("call (555) 123-4567"), vec![Kind::Phone]);
        assert!(kinds("invoice 20240117 for 1500 units").is_empty());
        assert!(kinds("version 1.2.3 released 2024-01-17").is_empty());
    }

    #[test]
    fn provider_keys_private_keys_and_entropy() {
        let spans = find("key sk-proj-abcdefghijklmnopqrstuvwx1234", &Kind::ALL);
        assert_eq!((spans[0].kind, spans[0].detail), (Kind::ApiKey, "openai"));
        assert_eq!(kinds("AKIAIOSFODNN7EXAMPLE"), vec![Kind::ApiKey]);
        assert_eq!(
            kinds("ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"),
            vec![Kind::ApiKey]
        );
        assert_eq!(
            kinds(
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
            ),
            vec![Kind::PrivateKey]
        );
        // A cut block is still a key.
        assert_eq!(
            kinds("-----BEGIN PRIVATE KEY-----\nMIIEv"),
            vec![Kind::PrivateKey]
        );
        assert_eq!(
            kinds("token: Zx8kQ2mP9vL4rT7wN1cJ5hB3gF6dS0aY"),
            vec![Kind::HighEntropy]
        );
        // Hex digests and words are not secrets.
        assert!(
            kinds("sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
                .is_empty()
        );
        assert!(kinds("supercalifragilisticexpialidocious_internationalization").is_empty());
    }

    #[test]
    fn rewrite_redacts_and_masks() {
        let text = "card 4111 1111 1111 1111 and a@b.io";
        let spans = find(text, &Kind::ALL);
        assert_eq!(
            rewrite(text, &spans, Action::Redact),
            "card [REDACTED:card] and [REDACTED:email]"
        );
        assert_eq!(
            rewrite(
                "4111111111111111",
                &find("4111111111111111", &Kind::ALL),
                Action::Mask
            ),
            "************1111"
        );
        assert_eq!(rewrite(text, &spans, Action::Log), text);
    }

    #[test]
    fn only_requested_kinds() {
        assert!(find("a@b.io", &[Kind::Card]).is_empty());
    }
}
