//! Chat-template (Jinja2) rules.
//!
//! GGUF files (`tokenizer.chat_template`) and Hugging Face `tokenizer_config.json` (`chat_template`) carry a
//! Jinja2 template that Python frameworks render on every request. Rendered outside a sandbox, or through a
//! sandbox bug, a template is code: the classic server-side template injection walks from any object to
//! `__class__.__mro__[1].__subclasses__()` or from a global function to `__globals__` and `os.popen`.
//!
//! This module lexes the template the way Jinja does (text, `{{ }}`, `{% %}`, `{# #}`, `{% raw %}`, strings
//! with Python escapes, balanced brackets inside tags) and looks at the token stream of each tag. Constant
//! string expressions are folded first (adjacent literals, `~`/`+`, `*`, `|join`, `|lower`, `|reverse`,
//! `|replace`, `|format`, `%`, `.format()`, `.join()`, `[::-1]`, and variables set to such constants), so an
//! attribute name built from escapes or pieces is judged by what it decodes to. Honest templates (message
//! loops, `message['role']`, `raise_exception`, `namespace(found=false)`, `|tojson`) raise nothing.

use std::collections::{HashMap, HashSet};

use aegis_core::{RuleDoc, Severity};
use serde_json::json;

use crate::Ctx;

const ATLAS: &[&str] = &["AML.T0010.003", "AML.T0011.000"];

/// Dunder or private attribute access (`__class__`, `__globals__`, `_TemplateReference__context`).
pub(crate) const INTERNALS: RuleDoc = RuleDoc {
    id: "AEG-SCAN-410",
    name: "template-python-internals",
    severity: Severity::Critical,
    summary: "Chat template reaches into Python internals (dunder or private attributes)",
    why: "`__class__`, `__mro__`, `__subclasses__`, `__globals__` and friends are the steps of a Jinja2 \
          sandbox escape: from any object to every loaded class or a module's globals, and from there to \
          `os.popen`. A chat template is rendered on every request, so this is code execution on the server.",
    fix: "Do not load the model; replace the chat template with the publisher's original. Render templates \
          with `jinja2.sandbox.ImmutableSandboxedEnvironment` and keep Jinja2 up to date.",
    atlas: ATLAS,
    cwe: &[1336, 94],
};

/// A Jinja global (`cycler`, `joiner`, `lipsum`, `namespace`, `self`...) used as the entry of an escape.
pub(crate) const GADGET: RuleDoc = RuleDoc {
    id: "AEG-SCAN-411",
    name: "template-sandbox-escape-gadget",
    severity: Severity::Critical,
    summary: "Chat template uses a Jinja global as a sandbox-escape entry point",
    why: "`cycler.__init__.__globals__`, `lipsum.__globals__`, `namespace.__init__.__globals__` and \
          `self._TemplateReference__context` are published one-step routes from the template context to \
          Python module globals (`os`, `__builtins__`): known remote code execution payloads.",
    fix: "Do not load the model; replace the chat template with the publisher's original.",
    atlas: ATLAS,
    cwe: &[1336, 94],
};

/// `|attr()` (or a subscript) with a name built from escapes, concatenation or a variable.
pub(crate) const OBFUSCATED: RuleDoc = RuleDoc {
    id: "AEG-SCAN-412",
    name: "template-obfuscated-attribute",
    severity: Severity::High,
    summary: "Chat template builds an attribute name from escapes, pieces or variables",
    why: "`|attr('\\x5f\\x5fclass\\x5f\\x5f')` or `|attr('__cla' ~ 'ss__')` hides a dunder from filters that \
          look for `__class__` in the text; honest chat templates have no reason to compute attribute names.",
    fix: "Do not load the model; replace the chat template with the publisher's original.",
    atlas: ATLAS,
    cwe: &[1336, 94],
};

/// `{% import %}`, `{% from ... import %}`, `{% include %}`, `{% extends %}`.
pub(crate) const IMPORT: RuleDoc = RuleDoc {
    id: "AEG-SCAN-413",
    name: "template-import-statement",
    severity: Severity::High,
    summary: "Chat template imports, includes or extends another template",
    why: "Chat templates are self-contained. Loading other templates reads files through the renderer's \
          loader (path traversal, local file disclosure) or pulls in code the model publisher does not ship.",
    fix: "Remove the statement; a chat template must not load other templates.",
    atlas: ATLAS,
    cwe: &[1336, 22],
};

/// `os.`, `popen`, `subprocess`, `eval(`, `exec(`, `__import__`...
pub(crate) const COMMAND: RuleDoc = RuleDoc {
    id: "AEG-SCAN-414",
    name: "template-os-command",
    severity: Severity::High,
    summary: "Chat template names command-execution or import functions",
    why: "`os.popen`, `subprocess`, `eval`, `exec` and `__import__` have no place in a chat template; they are \
          the end of an escape chain that runs commands on the inference server.",
    fix: "Do not load the model; replace the chat template with the publisher's original.",
    atlas: ATLAS,
    cwe: &[1336, 78, 94],
};

/// Flask/framework objects (`config`, `request`, `self`, `url_for`).
pub(crate) const FRAMEWORK: RuleDoc = RuleDoc {
    id: "AEG-SCAN-415",
    name: "template-framework-object",
    severity: Severity::High,
    summary: "Chat template references framework objects (`config`, `request`, `self`)",
    why: "`config` and `request` leak secrets and attacker-controlled input when a template is rendered by a \
          web framework; `self` exposes the template's own context. Payloads probe for them.",
    fix: "Do not load the model; replace the chat template with the publisher's original.",
    atlas: ATLAS,
    cwe: &[1336, 200],
};

/// A string that names internals, built or stored for later use.
pub(crate) const SUSPICIOUS_STRING: RuleDoc = RuleDoc {
    id: "AEG-SCAN-416",
    name: "template-suspicious-string",
    severity: Severity::High,
    summary: "Chat template stores or builds a string naming Python internals",
    why: "Escapes and concatenation hide `__class__` or `__globals__` in a variable (`{% set %}`) that is \
          later passed to `|attr()` or a subscript; format strings such as `'{0.__class__}'.format(x)` reach \
          attributes without any `.` in the template.",
    fix: "Do not load the model; replace the chat template with the publisher's original.",
    atlas: ATLAS,
    cwe: &[1336, 94],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[
    &INTERNALS,
    &GADGET,
    &OBFUSCATED,
    &IMPORT,
    &COMMAND,
    &FRAMEWORK,
    &SUSPICIOUS_STRING,
];

/// Jinja and framework globals that are published escape entry points.
const GADGETS: &[&str] = &[
    "cycler",
    "joiner",
    "lipsum",
    "namespace",
    "range",
    "dict",
    "self",
    "loop",
    "caller",
    "raise_exception",
    "strftime_now",
    "url_for",
    "get_flashed_messages",
    "config",
    "request",
];

/// Framework objects no chat template needs.
const FRAMEWORK_NAMES: &[&str] = &[
    "config",
    "request",
    "session",
    "self",
    "url_for",
    "get_flashed_messages",
];

/// Python object internals reachable without underscores.
const INTERNAL_ATTRS: &[&str] = &[
    "mro",
    "func_globals",
    "func_code",
    "im_func",
    "f_globals",
    "f_locals",
    "f_builtins",
    "f_back",
    "gi_frame",
    "gi_code",
    "cr_frame",
    "ag_frame",
    "tb_frame",
    "co_code",
];

/// Names of command execution and import machinery.
const DANGER_NAMES: &[&str] = &[
    "os",
    "sys",
    "subprocess",
    "popen",
    "Popen",
    "check_output",
    "check_call",
    "spawnl",
    "spawnv",
    "execl",
    "execv",
    "execve",
    "execvp",
    "eval",
    "exec",
    "compile",
    "getattr",
    "setattr",
    "globals",
    "builtins",
    "importlib",
    "import_module",
    "load_module",
    "pty",
    "posix",
];

/// Exact strings that name command execution (strings like `'os'` alone are too common to flag).
const DANGER_STRINGS: &[&str] = &[
    "popen",
    "subprocess",
    "__import__",
    "os.system",
    "os.popen",
    "check_output",
    "import_module",
    "importlib",
    "__builtins__",
    "builtins",
    "eval",
    "exec",
];

/// Bound on folded string length and on recursion through parentheses and lists.
const MAX_FOLDED: usize = 64 * 1024;
const MAX_DEPTH: usize = 32;
/// Characters the folder may produce per template, all operations together.
const FOLD_BUDGET: usize = 16 << 20;
/// Distinct hits kept per template.
const MAX_HITS: usize = 64;

/// One thing found in a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hit {
    /// The rule.
    pub rule: &'static RuleDoc,
    /// Severity (may differ from the rule's default).
    pub severity: Severity,
    /// Byte offset in the template.
    pub pos: usize,
    /// The construct, e.g. `.__globals__`.
    pub what: String,
    /// Words for the message.
    pub detail: String,
    /// How many times the same construct occurs.
    pub count: usize,
}

/// Check a Jinja chat template found in the current blob. `offset` locates it when known; `source` says
/// where it came from (e.g. `GGUF key tokenizer.chat_template`, `tokenizer_config.json chat_template`).
pub(crate) fn check(ctx: &mut Ctx<'_>, template: &str, offset: Option<u64>, source: &str) {
    for hit in analyze(template) {
        let line = template
            .get(..hit.pos)
            .map_or(1, |s| s.matches('\n').count() + 1);
        let snippet = snippet(template, hit.pos);
        ctx.report_at(
            hit.rule,
            hit.severity,
            offset,
            format!("{source}: {}", hit.detail),
            json!({
                "source": source,
                "construct": hit.what,
                "template_offset": hit.pos,
                "line": line,
                "occurrences": hit.count,
                "snippet": snippet,
            }),
        );
    }
}

fn snippet(template: &str, pos: usize) -> String {
    let start = (0..=pos.saturating_sub(40))
        .rev()
        .find(|i| template.is_char_boundary(*i))
        .unwrap_or(0);
    let end = (pos + 80..=template.len())
        .find(|i| template.is_char_boundary(*i))
        .unwrap_or(template.len());
    template.get(start..end).unwrap_or_default().to_owned()
}

/// Every finding in `template`, deduplicated by rule, severity and construct.
pub(crate) fn analyze(template: &str) -> Vec<Hit> {
    let tags = lex(template);
    let mut a = Analyzer {
        budget: std::cell::Cell::new(FOLD_BUDGET),
        vars: HashMap::new(),
        locals: collect_locals(&tags),
        hits: Vec::new(),
    };
    for tag in &tags {
        a.tag(tag);
    }
    a.hits
}

// ---------------------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(Lit),
    Num(String),
    Op(&'static str),
}

/// A decoded string literal.
#[derive(Debug, Clone, PartialEq, Default)]
struct Lit {
    value: String,
    /// A numeric escape (`\x5f`, `\u005f`, `\137`, `\N{LOW LINE}`) produced a letter, digit, `_` or `.`.
    escaped: bool,
    /// An escape could not be decoded.
    undecodable: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    tok: Tok,
    pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Expr,
    Stmt,
}

#[derive(Debug, Clone)]
struct Tag {
    kind: Kind,
    toks: Vec<Token>,
}

impl Tag {
    fn keyword(&self) -> Option<&str> {
        match self.toks.first().map(|t| &t.tok) {
            Some(Tok::Name(n)) if self.kind == Kind::Stmt => Some(n),
            _ => None,
        }
    }
}

fn lex(src: &str) -> Vec<Tag> {
    let b = src.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    while let Some(start) = find_open(b, i) {
        match b.get(start + 1) {
            Some(b'#') => i = find(b, start + 2, b"#}").map_or(b.len(), |e| e + 2),
            Some(c) => {
                let kind = if *c == b'{' { Kind::Expr } else { Kind::Stmt };
                let (toks, end) = lex_tag(src, start + 2, kind);
                let tag = Tag { kind, toks };
                i = end;
                if tag.keyword() == Some("raw") {
                    i = skip_raw(b, i);
                } else {
                    tags.push(tag);
                }
            }
            None => break,
        }
    }
    tags
}

fn find_open(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < b.len() {
        if b[i] == b'{' && matches!(b[i + 1], b'{' | b'%' | b'#') {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Past the `{% endraw %}` that closes a raw block (whitespace control allowed).
fn skip_raw(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(open) = find(b, i, b"{%") {
        let mut p = open + 2;
        if matches!(b.get(p), Some(b'-' | b'+')) {
            p += 1;
        }
        while b.get(p).is_some_and(u8::is_ascii_whitespace) {
            p += 1;
        }
        if b.get(p..p + 6) == Some(b"endraw") {
            return find(b, p + 6, b"%}").map_or(b.len(), |e| e + 2);
        }
        i = open + 2;
    }
    b.len()
}

/// Tokens of one tag starting after its `{{`/`{%`; returns them and the offset after the closing delimiter.
fn lex_tag(src: &str, from: usize, kind: Kind) -> (Vec<Token>, usize) {
    let b = src.as_bytes();
    let close = if kind == Kind::Expr { b'}' } else { b'%' };
    let mut p = from;
    if matches!(b.get(p), Some(b'-' | b'+')) {
        p += 1;
    }
    let mut toks = Vec::new();
    let mut depth = 0usize;
    loop {
        while b.get(p).is_some_and(u8::is_ascii_whitespace) {
            p += 1;
        }
        let Some(&c) = b.get(p) else {
            return (toks, b.len());
        };
        if depth == 0 {
            let q = if matches!(c, b'-' | b'+') { p + 1 } else { p };
            if b.get(q) == Some(&close) && b.get(q + 1) == Some(&b'}') {
                return (toks, q + 2);
            }
        }
        let pos = p;
        let tok = if c == b'\'' || c == b'"' {
            let (lit, end) = lex_string(src, p);
            p = end;
            Tok::Str(lit)
        } else if c.is_ascii_digit() {
            let end = scan_while(src, p, |ch| ch.is_ascii_alphanumeric() || ch == '_');
            let end = if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit)
            {
                scan_while(src, end + 1, |ch| ch.is_ascii_alphanumeric() || ch == '_')
            } else {
                end
            };
            let text = src.get(p..end).unwrap_or_default().to_owned();
            p = end;
            Tok::Num(text)
        } else if let Some(ch) = src
            .get(p..)
            .and_then(|s| s.chars().next())
            .filter(|ch| ch.is_alphabetic() || *ch == '_')
        {
            let end = scan_while(src, p + ch.len_utf8(), |ch| {
                ch.is_alphanumeric() || ch == '_'
            });
            let name = src.get(p..end).unwrap_or_default().to_owned();
            p = end;
            Tok::Name(name)
        } else if let Some((op, len)) = operator(b, p) {
            p += len;
            match op {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth = depth.saturating_sub(1),
                _ => {}
            }
            Tok::Op(op)
        } else {
            p += src
                .get(p..)
                .and_then(|s| s.chars().next())
                .map_or(1, char::len_utf8);
            continue;
        };
        toks.push(Token { tok, pos });
    }
}

fn scan_while(src: &str, from: usize, keep: impl Fn(char) -> bool) -> usize {
    let Some(rest) = src.get(from..) else {
        return src.len();
    };
    rest.char_indices()
        .find(|(_, ch)| !keep(*ch))
        .map_or(src.len(), |(i, _)| from + i)
}

fn operator(b: &[u8], p: usize) -> Option<(&'static str, usize)> {
    let two = match b.get(p..p + 2) {
        Some(b"//") => Some("//"),
        Some(b"**") => Some("**"),
        Some(b"==") => Some("=="),
        Some(b"!=") => Some("!="),
        Some(b">=") => Some(">="),
        Some(b"<=") => Some("<="),
        _ => None,
    };
    if let Some(op) = two {
        return Some((op, 2));
    }
    let one = match b.get(p)? {
        b'+' => "+",
        b'-' => "-",
        b'/' => "/",
        b'*' => "*",
        b'%' => "%",
        b'~' => "~",
        b'|' => "|",
        b'.' => ".",
        b',' => ",",
        b':' => ":",
        b';' => ";",
        b'(' => "(",
        b')' => ")",
        b'[' => "[",
        b']' => "]",
        b'{' => "{",
        b'}' => "}",
        b'<' => "<",
        b'>' => ">",
        b'=' => "=",
        b'!' => "!",
        _ => return None,
    };
    Some((one, 1))
}

/// A string literal at `p` (on its quote), decoded like Jinja does (Python `unicode-escape`).
fn lex_string(src: &str, p: usize) -> (Lit, usize) {
    let Some(rest) = src.get(p..) else {
        return (Lit::default(), src.len());
    };
    let mut chars = rest.char_indices();
    let quote = chars.next().map_or('\'', |(_, c)| c);
    let mut lit = Lit::default();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return (lit, p + i + 1);
        }
        if c != '\\' {
            push_bounded(&mut lit.value, c);
            continue;
        }
        let Some((_, e)) = chars.next() else { break };
        let simple = match e {
            '\\' => Some('\\'),
            '\'' => Some('\''),
            '"' => Some('"'),
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\n' => {
                continue;
            }
            _ => None,
        };
        if let Some(ch) = simple {
            push_bounded(&mut lit.value, ch);
            continue;
        }
        let decoded = match e {
            '0'..='7' => {
                let mut n = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let next = chars.clone().next().and_then(|(_, d)| d.to_digit(8));
                    let Some(d) = next else { break };
                    n = n * 8 + d;
                    chars.next();
                }
                char::from_u32(n)
            }
            'x' => hex_escape(&mut chars, 2),
            'u' => hex_escape(&mut chars, 4),
            'U' => hex_escape(&mut chars, 8),
            'N' => named_escape(&mut chars),
            other => {
                push_bounded(&mut lit.value, '\\');
                push_bounded(&mut lit.value, other);
                continue;
            }
        };
        match decoded {
            Some(ch) => {
                if ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' {
                    lit.escaped = true;
                }
                push_bounded(&mut lit.value, ch);
            }
            None => lit.undecodable = true,
        }
    }
    (lit, src.len())
}

fn push_bounded(s: &mut String, c: char) {
    if s.len() < MAX_FOLDED {
        s.push(c);
    }
}

fn hex_escape(chars: &mut std::str::CharIndices<'_>, n: usize) -> Option<char> {
    let mut v = 0u32;
    for _ in 0..n {
        let d = chars.clone().next().and_then(|(_, c)| c.to_digit(16))?;
        chars.next();
        v = v.checked_mul(16)?.checked_add(d)?;
    }
    char::from_u32(v)
}

/// `\N{NAME}`: the few names an obfuscator needs to spell identifiers.
fn named_escape(chars: &mut std::str::CharIndices<'_>) -> Option<char> {
    if chars.clone().next().map(|(_, c)| c) != Some('{') {
        return None;
    }
    chars.next();
    let mut name = String::new();
    for (_, c) in chars.by_ref() {
        if c == '}' {
            break;
        }
        if name.len() < 64 {
            name.push(c.to_ascii_uppercase());
        }
    }
    let letter = |prefix: &str| {
        name.strip_prefix(prefix)
            .filter(|l| l.len() == 1)
            .and_then(|l| l.chars().next())
    };
    match name.as_str() {
        "LOW LINE" => Some('_'),
        "FULL STOP" => Some('.'),
        _ => letter("LATIN SMALL LETTER ")
            .map(|c| c.to_ascii_lowercase())
            .or_else(|| letter("LATIN CAPITAL LETTER ")),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Analysis

/// Names the template defines itself (`set`, `for`, `macro` parameters): not framework globals.
fn collect_locals(tags: &[Tag]) -> HashSet<String> {
    let mut locals = HashSet::new();
    for tag in tags {
        let t = &tag.toks;
        match tag.keyword() {
            Some("set") | Some("with") => {
                for tok in t.iter().skip(1) {
                    match &tok.tok {
                        Tok::Name(n) => {
                            locals.insert(n.clone());
                        }
                        Tok::Op(",") => {}
                        _ => break,
                    }
                }
            }
            Some("for") => {
                for tok in t.iter().skip(1) {
                    match &tok.tok {
                        Tok::Name(n) if n == "in" => break,
                        Tok::Name(n) => {
                            locals.insert(n.clone());
                        }
                        _ => {}
                    }
                }
            }
            Some("macro") | Some("call") => {
                for w in t.windows(2) {
                    if let (Tok::Name(n), Tok::Op("," | ")" | "=")) = (&w[0].tok, &w[1].tok) {
                        locals.insert(n.clone());
                    }
                }
                if let Some(Tok::Name(n)) = t.get(1).map(|x| &x.tok) {
                    locals.insert(n.clone());
                }
            }
            _ => {}
        }
    }
    locals
}

/// A constant string expression and how it was built.
#[derive(Debug, Clone, Default, PartialEq)]
struct Folded {
    value: String,
    /// Numeric escapes produced identifier characters.
    escaped: bool,
    /// Built from more than one piece, or transformed by a filter or method.
    composed: bool,
    /// Came (only) from a `{% set %}` variable.
    from_var: bool,
    /// An escape could not be decoded.
    undecodable: bool,
    /// A format string reaching attributes (`'{0.__class__}'.format(x)`).
    format_attack: bool,
}

impl Folded {
    fn from_lit(lit: &Lit) -> Folded {
        Folded {
            value: lit.value.clone(),
            escaped: lit.escaped,
            undecodable: lit.undecodable,
            ..Folded::default()
        }
    }

    fn concat(&mut self, other: &Folded) {
        for c in other.value.chars() {
            push_bounded(&mut self.value, c);
        }
        self.escaped |= other.escaped;
        self.undecodable |= other.undecodable;
        self.format_attack |= other.format_attack;
        self.composed = true;
        self.from_var = false;
    }

    fn transformed(mut self, value: String) -> Folded {
        self.value = value.chars().take(MAX_FOLDED).collect();
        self.composed = true;
        self.from_var = false;
        self
    }
}

/// A constant argument of a call.
#[derive(Debug, Clone)]
enum Arg {
    Str(Folded),
    Int(i64),
}

impl Arg {
    fn text(&self) -> String {
        match self {
            Arg::Str(f) => f.value.clone(),
            Arg::Int(n) => n.to_string(),
        }
    }
}

struct Analyzer {
    /// Characters the constant folder may still produce for this template (bounds work on hostile input).
    budget: std::cell::Cell<usize>,
    vars: HashMap<String, Folded>,
    locals: HashSet<String>,
    hits: Vec<Hit>,
}

fn is_op(t: &[Token], i: usize, op: &str) -> bool {
    matches!(t.get(i).map(|x| &x.tok), Some(Tok::Op(o)) if *o == op)
}

fn name_at(t: &[Token], i: usize) -> Option<&str> {
    match t.get(i).map(|x| &x.tok) {
        Some(Tok::Name(n)) => Some(n),
        _ => None,
    }
}

fn pos_at(t: &[Token], i: usize) -> usize {
    t.get(i).or_else(|| t.last()).map_or(0, |x| x.pos)
}

/// Whether a `[` after token `i - 1` is a subscript (follows a value) rather than a list literal.
fn ends_value(t: &[Token], before: Option<usize>) -> bool {
    match before.and_then(|i| t.get(i)).map(|x| &x.tok) {
        Some(Tok::Name(n)) => !matches!(
            n.as_str(),
            "in" | "and" | "or" | "not" | "if" | "else" | "is"
        ),
        Some(Tok::Str(_)) | Some(Tok::Op(")" | "]")) => true,
        _ => false,
    }
}

/// Whether `v` holds a dunder name such as `__class__`. Python's special attributes are all lower case, so
/// upper-case sentinels (`__NOT_A_NUMBER__`, `__END__`) are not internals.
fn is_dunder(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    while let Some(start) = find(b, i, b"__") {
        let body_start = start + 2;
        let body_len = b.get(body_start..).map_or(0, |rest| {
            rest.iter()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || **c == b'_')
                .count()
        });
        let body = b.get(body_start..body_start + body_len).unwrap_or_default();
        if body.len() > 2 && body.ends_with(b"__") && body.first() != Some(&b'_') {
            return true;
        }
        i = start + 1;
    }
    false
}

/// `_name` style (and not just `_`): private by Jinja's sandbox rules.
fn is_private(v: &str) -> bool {
    v.len() > 1
        && v.starts_with('_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && v.chars().any(|c| c.is_ascii_alphanumeric())
}

impl Analyzer {
    fn hit(
        &mut self,
        rule: &'static RuleDoc,
        severity: Severity,
        pos: usize,
        what: String,
        detail: String,
    ) {
        if let Some(h) = self
            .hits
            .iter_mut()
            .find(|h| h.rule.id == rule.id && h.severity == severity && h.what == what)
        {
            h.count += 1;
            return;
        }
        if self.hits.len() < MAX_HITS {
            self.hits.push(Hit {
                rule,
                severity,
                pos,
                what,
                detail,
                count: 1,
            });
        }
    }

    fn tag(&mut self, tag: &Tag) {
        let t = &tag.toks;
        let mut set_value_at = None;
        match tag.keyword() {
            Some(kw @ ("import" | "from" | "include" | "extends")) => {
                let target = match t.get(1).map(|x| &x.tok) {
                    Some(Tok::Str(l)) => l.value.clone(),
                    Some(Tok::Name(n)) => n.clone(),
                    _ => String::new(),
                };
                self.hit(
                    &IMPORT,
                    Severity::High,
                    pos_at(t, 0),
                    format!("{kw} {target}"),
                    format!("`{{% {kw} %}}` statement loads `{target}`"),
                );
            }
            Some("set") => {
                if let (Some(var), true) = (name_at(t, 1), is_op(t, 2, "=")) {
                    set_value_at = Some(3);
                    match self.fold_chain(t, 3, 0) {
                        Some((f, end)) if end == t.len() => {
                            self.vars.insert(
                                var.to_owned(),
                                Folded {
                                    from_var: true,
                                    ..f
                                },
                            );
                        }
                        _ => {
                            self.vars.remove(var);
                        }
                    }
                }
            }
            _ => {}
        }
        self.walk(t, set_value_at);
    }

    fn walk(&mut self, t: &[Token], set_value_at: Option<usize>) {
        let mut i = 0;
        while i < t.len() {
            if let Some(next) = self.attr_filter(t, i) {
                i = next;
                continue;
            }
            match &t[i].tok {
                Tok::Op(".") => {
                    if let Some(a) = name_at(t, i + 1) {
                        let base = i
                            .checked_sub(1)
                            .and_then(|k| name_at(t, k))
                            .map(str::to_owned);
                        self.attribute(a, base.as_deref(), t[i].pos, AccessKind::Dot, None);
                        i += 2;
                        continue;
                    }
                }
                Tok::Op("[") if ends_value(t, i.checked_sub(1)) => {
                    if let Some((f, j)) = self
                        .fold_chain(t, i + 1, 0)
                        .filter(|(_, j)| is_op(t, *j, "]"))
                    {
                        let base = i
                            .checked_sub(1)
                            .and_then(|k| name_at(t, k))
                            .map(str::to_owned);
                        self.attribute(
                            &f.value,
                            base.as_deref(),
                            t[i].pos,
                            AccessKind::Subscript,
                            Some(&f),
                        );
                        i = j + 1;
                        continue;
                    }
                }
                Tok::Name(n) if !self.vars.contains_key(n) => {
                    self.bare_name(t, i, n);
                    i += 1;
                    continue;
                }
                _ => {}
            }
            if let Some((f, j)) = self.fold_chain(t, i, 0) {
                self.loose_string(t, i, j, &f, set_value_at == Some(i));
                i = j.max(i + 1);
                continue;
            }
            i += 1;
        }
    }

    /// `|attr(...)`, `|map(attribute=...)`, `|selectattr(...)` and friends at `i`; returns where to go on.
    fn attr_filter(&mut self, t: &[Token], i: usize) -> Option<usize> {
        if !is_op(t, i, "|") || !is_op(t, i + 2, "(") {
            return None;
        }
        let filter = name_at(t, i + 1)?;
        let base = i
            .checked_sub(1)
            .and_then(|k| name_at(t, k))
            .map(str::to_owned);
        let pos = t[i].pos;
        let arg_at = match filter {
            "attr" | "selectattr" | "rejectattr" | "groupby" => i + 3,
            "map" | "sort" | "sum" | "unique" | "min" | "max" => {
                let mut k = i + 3;
                while k < t.len() && !is_op(t, k, ")") {
                    if name_at(t, k) == Some("attribute") && is_op(t, k + 1, "=") {
                        break;
                    }
                    k += 1;
                }
                if k >= t.len() || is_op(t, k, ")") {
                    return None;
                }
                k + 2
            }
            _ => return None,
        };
        let folded = self
            .fold_chain(t, arg_at, 0)
            .filter(|(_, j)| is_op(t, *j, ")") || is_op(t, *j, ","));
        match folded {
            Some((f, j)) => {
                let kind = if filter == "attr" {
                    AccessKind::AttrFilter
                } else {
                    AccessKind::AttrArgument
                };
                self.attribute(&f.value, base.as_deref(), pos, kind, Some(&f));
                Some(j)
            }
            None if filter == "attr" => {
                self.hit(
                    &OBFUSCATED,
                    Severity::High,
                    pos,
                    "|attr(<computed>)".to_owned(),
                    "`|attr()` with a name computed at render time".to_owned(),
                );
                Some(arg_at)
            }
            None => None,
        }
    }

    /// An attribute name reached by `.name`, `[...]`, `|attr(...)` or `attribute=`.
    fn attribute(
        &mut self,
        name: &str,
        base: Option<&str>,
        pos: usize,
        kind: AccessKind,
        f: Option<&Folded>,
    ) {
        let shown = kind.show(name);
        if let Some(f) = f {
            let built = f.escaped || f.composed || f.from_var || f.undecodable;
            if built && (kind == AccessKind::AttrFilter || is_dunder(name) || is_private(name)) {
                let how = if f.escaped || f.undecodable {
                    "escape sequences"
                } else if f.from_var {
                    "a variable"
                } else {
                    "pieces"
                };
                self.hit(
                    &OBFUSCATED,
                    Severity::High,
                    pos,
                    shown.clone(),
                    format!(
                        "attribute name built from {how} decodes to `{name}` ({})",
                        kind.label()
                    ),
                );
            }
        }
        let gadget = base.filter(|b| GADGETS.contains(b));
        if is_dunder(name) || is_private(name) {
            let severity = if is_dunder(name) {
                Severity::Critical
            } else {
                Severity::High
            };
            match gadget {
                Some(g) => self.hit(
                    &GADGET,
                    Severity::Critical,
                    pos,
                    format!("{g}{shown}"),
                    format!("`{g}` followed by `{name}`: a published sandbox-escape entry point"),
                ),
                None => self.hit(
                    &INTERNALS,
                    severity,
                    pos,
                    shown.clone(),
                    format!("{} `{name}` reaches Python internals", kind.label()),
                ),
            }
        } else if INTERNAL_ATTRS.contains(&name) {
            self.hit(
                &INTERNALS,
                Severity::High,
                pos,
                shown.clone(),
                format!("{} `{name}` reaches interpreter internals", kind.label()),
            );
        } else if DANGER_NAMES.contains(&name)
            || name == "system" && base.is_some_and(|b| b == "os" || b == "posix")
        {
            self.hit(
                &COMMAND,
                Severity::High,
                pos,
                shown,
                format!(
                    "{} `{name}` names command execution or import machinery",
                    kind.label()
                ),
            );
        }
    }

    /// A name in expression position that is not defined by the template.
    fn bare_name(&mut self, t: &[Token], i: usize, n: &str) {
        if self.locals.contains(n) {
            return;
        }
        let prev = i.checked_sub(1).and_then(|k| t.get(k)).map(|x| &x.tok);
        if matches!(prev, Some(Tok::Op("." | "|")))
            || matches!(prev, Some(Tok::Name(p)) if p == "is" || p == "not" && i >= 2 && name_at(t, i - 2) == Some("is"))
        {
            return;
        }
        let kwarg = is_op(t, i + 1, "=") && matches!(prev, Some(Tok::Op("(" | ",")));
        if kwarg {
            // `dict(__cla=1, ss__=1)|join` spells `__class__` from keyword names.
            if n.starts_with('_') || n.ends_with("__") {
                self.hit(
                    &SUSPICIOUS_STRING,
                    Severity::High,
                    t[i].pos,
                    format!("{n}="),
                    format!("keyword argument `{n}` looks like a piece of a dunder name (`dict(...)|join` trick)"),
                );
            }
            return;
        }
        let pos = t[i].pos;
        if is_dunder(n) || is_private(n) {
            let severity = if is_dunder(n) {
                Severity::Critical
            } else {
                Severity::High
            };
            self.hit(
                &INTERNALS,
                severity,
                pos,
                n.to_owned(),
                format!("name `{n}` reaches Python internals"),
            );
        } else if FRAMEWORK_NAMES.contains(&n) {
            self.hit(
                &FRAMEWORK,
                Severity::High,
                pos,
                n.to_owned(),
                format!("`{n}` is a web-framework or template-internal object"),
            );
        } else if DANGER_NAMES.contains(&n) {
            self.hit(
                &COMMAND,
                Severity::High,
                pos,
                n.to_owned(),
                format!("`{n}` names command execution or import machinery"),
            );
        }
    }

    /// A constant string outside attribute position (`{% set %}` values, output, arguments).
    fn loose_string(&mut self, t: &[Token], start: usize, end: usize, f: &Folded, in_set: bool) {
        if f.from_var {
            return;
        }
        let v = f.value.as_str();
        let pos = pos_at(t, start);
        let shown: String = v.chars().take(60).collect();
        let format_follows =
            (is_op(t, end, ".") || is_op(t, end, "|")) && name_at(t, end + 1) == Some("format");
        let internal = is_dunder(v) || is_private(v);
        if f.format_attack || format_follows && v.contains('{') && (internal || v.contains("._")) {
            self.hit(
                &SUSPICIOUS_STRING,
                Severity::High,
                pos,
                format!("format:{shown}"),
                format!("format string `{shown}` reaches attributes through replacement fields"),
            );
        } else if internal {
            let dunder = is_dunder(v);
            let (severity, why) = if f.escaped || f.undecodable {
                (Severity::High, "spelled with escape sequences")
            } else if dunder && f.composed {
                (Severity::High, "built from pieces")
            } else if dunder && in_set {
                (Severity::High, "stored by `{% set %}`")
            } else {
                (Severity::Low, "in a plain literal")
            };
            self.hit(
                &SUSPICIOUS_STRING,
                severity,
                pos,
                format!("'{shown}'"),
                format!("string `{shown}` naming Python internals, {why}"),
            );
        } else if f.escaped || f.undecodable {
            self.hit(
                &SUSPICIOUS_STRING,
                Severity::Low,
                pos,
                format!("'{shown}'"),
                format!("string `{shown}` spells identifier characters with escape sequences"),
            );
        }
        if DANGER_STRINGS.contains(&v.trim()) {
            self.hit(
                &COMMAND,
                Severity::High,
                pos,
                format!("'{shown}'"),
                format!("string `{shown}` names command execution or import machinery"),
            );
        }
    }

    // --- constant folding -------------------------------------------------------------------------------

    /// Spend `n` units of the folding budget; `None` once it is exhausted.
    fn charge(&self, n: usize) -> Option<()> {
        let left = self.budget.get().checked_sub(n.max(1))?;
        self.budget.set(left);
        Some(())
    }

    /// A chain of operands joined by `~` or `+`.
    fn fold_chain(&self, t: &[Token], i: usize, depth: usize) -> Option<(Folded, usize)> {
        let (mut f, mut j) = self.fold_operand(t, i, depth)?;
        while is_op(t, j, "~") || is_op(t, j, "+") {
            let Some((g, k)) = self.fold_operand(t, j + 1, depth) else {
                break;
            };
            if self.charge(g.value.len()).is_none() {
                break;
            }
            f.concat(&g);
            j = k;
        }
        Some((f, j))
    }

    fn fold_arg(&self, t: &[Token], i: usize, depth: usize) -> Option<(Arg, usize)> {
        let neg = is_op(t, i, "-");
        let at = if neg { i + 1 } else { i };
        if let Some(Tok::Num(n)) = t.get(at).map(|x| &x.tok) {
            let v = n.replace('_', "").parse::<i64>().ok()?;
            return Some((Arg::Int(if neg { -v } else { v }), at + 1));
        }
        self.fold_chain(t, i, depth + 1)
            .map(|(f, j)| (Arg::Str(f), j))
    }

    /// `( arg, arg, ... )` at `i` (on the parenthesis): constant arguments only.
    fn fold_args(&self, t: &[Token], i: usize, depth: usize) -> Option<(Vec<Arg>, usize)> {
        if depth > MAX_DEPTH || !is_op(t, i, "(") {
            return None;
        }
        let mut args = Vec::new();
        let mut j = i + 1;
        if is_op(t, j, ")") {
            return Some((args, j + 1));
        }
        loop {
            let (arg, k) = self.fold_arg(t, j, depth + 1)?;
            args.push(arg);
            if is_op(t, k, ",") {
                j = k + 1;
                if is_op(t, j, ")") {
                    return Some((args, j + 1));
                }
            } else if is_op(t, k, ")") {
                return Some((args, k + 1));
            } else {
                return None;
            }
        }
    }

    /// `[ str, str, ... ]` at `i`: the strings, and the offset after `]`.
    fn fold_list(&self, t: &[Token], i: usize, depth: usize) -> Option<(Vec<Folded>, usize)> {
        if depth > MAX_DEPTH || !is_op(t, i, "[") {
            return None;
        }
        let mut items = Vec::new();
        let mut j = i + 1;
        while !is_op(t, j, "]") {
            let (f, k) = self.fold_chain(t, j, depth + 1)?;
            items.push(f);
            j = if is_op(t, k, ",") { k + 1 } else { k };
            if !is_op(t, j, "]") && !is_op(t, k, ",") {
                return None;
            }
        }
        Some((items, j + 1))
    }

    /// One operand: literal(s), a known variable, a parenthesised chain or a joined list, then filters and
    /// string methods.
    fn fold_operand(&self, t: &[Token], i: usize, depth: usize) -> Option<(Folded, usize)> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.charge(1)?;
        let (mut f, mut j) = match &t.get(i)?.tok {
            Tok::Str(lit) => {
                let mut f = Folded::from_lit(lit);
                let mut j = i + 1;
                while let Some(Tok::Str(next)) = t.get(j).map(|x| &x.tok) {
                    self.charge(next.value.len())?;
                    f.concat(&Folded::from_lit(next));
                    j += 1;
                }
                (f, j)
            }
            Tok::Name(n) if !is_op(t, i + 1, "(") => {
                let v = self.vars.get(n)?;
                self.charge(v.value.len())?;
                (v.clone(), i + 1)
            }
            Tok::Op("(") => {
                let (f, k) = self.fold_chain(t, i + 1, depth + 1)?;
                if !is_op(t, k, ")") {
                    return None;
                }
                (f, k + 1)
            }
            Tok::Op("[") => {
                let (items, k) = self.fold_list(t, i, depth)?;
                let joined =
                    (is_op(t, k, "|") || is_op(t, k, ".")) && name_at(t, k + 1) == Some("join");
                if !joined || is_op(t, k, ".") {
                    return None;
                }
                let (sep, k) = match self.fold_args(t, k + 2, depth) {
                    Some((args, k)) => (args.first().map(Arg::text).unwrap_or_default(), k),
                    None => (String::new(), k + 2),
                };
                let mut f = Folded::default();
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        f.concat(&Folded {
                            value: sep.clone(),
                            ..Folded::default()
                        });
                    }
                    f.concat(item);
                }
                f.composed = true;
                (f, k)
            }
            _ => return None,
        };
        loop {
            let step = self
                .postfix(t, j, &f, depth)
                .or_else(|| self.multiply(t, j, &f, depth));
            match step {
                Some((g, k)) if self.charge(g.value.len()).is_some() => {
                    f = g;
                    j = k;
                }
                _ => break,
            }
        }
        Some((f, j))
    }

    /// `* N` (repetition) or `% args` (printf formatting) applied to `f` at `j`.
    fn multiply(&self, t: &[Token], j: usize, f: &Folded, depth: usize) -> Option<(Folded, usize)> {
        if is_op(t, j, "*") {
            let Some(Tok::Num(n)) = t.get(j + 1).map(|x| &x.tok) else {
                return None;
            };
            let times = n.parse::<usize>().unwrap_or(0);
            let room = MAX_FOLDED / f.value.len().max(1);
            return Some((
                f.clone().transformed(f.value.repeat(times.min(room))),
                j + 2,
            ));
        }
        if !is_op(t, j, "%") {
            return None;
        }
        let (args, k) = if is_op(t, j + 1, "(") {
            self.fold_args(t, j + 1, depth)?
        } else {
            self.fold_arg(t, j + 1, depth).map(|(a, k)| (vec![a], k))?
        };
        let mut g = f.clone().transformed(percent_format(&f.value, &args));
        g.escaped |= args.iter().any(|a| matches!(a, Arg::Str(x) if x.escaped));
        Some((g, k))
    }

    /// One filter (`|lower`), method (`.format(...)`) or reversing slice applied to `f` at `j`.
    fn postfix(&self, t: &[Token], j: usize, f: &Folded, depth: usize) -> Option<(Folded, usize)> {
        if is_op(t, j, "[")
            && is_op(t, j + 1, ":")
            && is_op(t, j + 2, ":")
            && is_op(t, j + 3, "-")
            && is_op(t, j + 5, "]")
        {
            if matches!(t.get(j + 4).map(|x| &x.tok), Some(Tok::Num(n)) if n == "1") {
                return Some((
                    f.clone().transformed(f.value.chars().rev().collect()),
                    j + 6,
                ));
            }
            return None;
        }
        let filter = is_op(t, j, "|");
        if !filter && !is_op(t, j, ".") {
            return None;
        }
        let name = name_at(t, j + 1)?;
        if name == "join" && !filter {
            let (items, after) = self
                .fold_list(t, j + 3, depth + 1)
                .filter(|_| is_op(t, j + 2, "("))?;
            if !is_op(t, after, ")") {
                return None;
            }
            let parts: Vec<&str> = items.iter().map(|x| x.value.as_str()).collect();
            let mut g = f.clone().transformed(parts.join(&f.value));
            g.escaped |= items.iter().any(|x| x.escaped);
            return Some((g, after + 1));
        }
        let (args, k) = if is_op(t, j + 2, "(") {
            self.fold_args(t, j + 2, depth)?
        } else if filter {
            (Vec::new(), j + 2)
        } else {
            return None;
        };
        let s = &f.value;
        let text = |n: usize| args.get(n).map(Arg::text).unwrap_or_default();
        let v = match name {
            "lower" => s.to_lowercase(),
            "upper" => s.to_uppercase(),
            "reverse" if filter => s.chars().rev().collect(),
            "string" | "e" | "escape" if filter => s.clone(),
            "trim" | "strip" => s.trim().to_owned(),
            "replace" if args.len() >= 2 && !text(0).is_empty() => s.replace(&text(0), &text(1)),
            "join" if filter => {
                let sep = text(0);
                s.chars().map(String::from).collect::<Vec<_>>().join(&sep)
            }
            "format" if filter => percent_format(s, &args),
            "format" => {
                let mut g = f.clone().transformed(brace_format(s, &args));
                g.format_attack |= format_reaches_attributes(s);
                return Some((g, k));
            }
            _ => return None,
        };
        let mut g = f.clone().transformed(v);
        for a in &args {
            if let Arg::Str(x) = a {
                g.escaped |= x.escaped;
            }
        }
        Some((g, k))
    }
}

/// How an attribute was reached, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccessKind {
    Dot,
    Subscript,
    AttrFilter,
    AttrArgument,
}

impl AccessKind {
    fn label(self) -> &'static str {
        match self {
            AccessKind::Dot => "attribute",
            AccessKind::Subscript => "subscript",
            AccessKind::AttrFilter => "`|attr()` name",
            AccessKind::AttrArgument => "`attribute=` argument",
        }
    }

    fn show(self, name: &str) -> String {
        let name: String = name.chars().take(60).collect();
        match self {
            AccessKind::Dot => format!(".{name}"),
            AccessKind::Subscript => format!("['{name}']"),
            AccessKind::AttrFilter => format!("|attr('{name}')"),
            AccessKind::AttrArgument => format!("attribute='{name}'"),
        }
    }
}

/// Python `%` formatting for `%s`, `%d`, `%i`, `%c` and `%%`; other conversions are kept as written.
fn percent_format(fmt: &str, args: &[Arg]) -> String {
    let mut out = String::new();
    let mut next = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s') | Some('r') | Some('d') | Some('i') => {
                out.push_str(&next.next().map(Arg::text).unwrap_or_default())
            }
            Some('c') => match next.next() {
                Some(Arg::Int(n)) => out.extend(u32::try_from(*n).ok().and_then(char::from_u32)),
                Some(a) => out.push_str(&a.text()),
                None => {}
            },
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
        if out.len() > MAX_FOLDED {
            break;
        }
    }
    out
}

/// `str.format` with `{}` and `{N}` fields (fields with attribute access are left as written).
fn brace_format(fmt: &str, args: &[Arg]) -> String {
    let mut out = String::new();
    let mut auto = 0usize;
    let mut rest = fmt;
    while let Some(open) = rest.find('{') {
        out.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find('}') else {
            out.push_str(rest.get(open..).unwrap_or_default());
            return out;
        };
        let field = after.get(..close).unwrap_or_default();
        let index = if field.is_empty() {
            auto += 1;
            Some(auto - 1)
        } else {
            field.parse::<usize>().ok()
        };
        match index.and_then(|n| args.get(n)) {
            Some(a) => out.push_str(&a.text()),
            None => {
                out.push('{');
                out.push_str(field);
                out.push('}');
            }
        }
        rest = after.get(close + 1..).unwrap_or_default();
        if out.len() > MAX_FOLDED {
            return out;
        }
    }
    out.push_str(rest);
    out
}

/// Whether a `str.format` string has a field with attribute or item access into internals.
fn format_reaches_attributes(fmt: &str) -> bool {
    fmt.split('{').skip(1).any(|field| {
        let field = field.split('}').next().unwrap_or_default();
        field.contains("._") || field.contains("[_") || is_dunder(field)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_test_support::gguf::{HONEST_TEMPLATES, MALICIOUS_TEMPLATES};

    fn at_least(template: &str, level: Severity) -> Vec<(String, String)> {
        analyze(template)
            .into_iter()
            .filter(|h| h.severity >= level)
            .map(|h| (h.rule.id.to_owned(), h.what))
            .collect()
    }

    #[test]
    fn honest_templates_raise_nothing_at_medium_or_above() {
        for (name, template) in HONEST_TEMPLATES {
            assert_eq!(at_least(template, Severity::Medium), vec![], "{name}");
        }
    }

    #[test]
    fn every_malicious_template_raises_its_rule_at_high() {
        for (name, template, rule) in MALICIOUS_TEMPLATES {
            let hits = at_least(template, Severity::High);
            assert!(
                hits.iter().any(|(r, _)| r == rule),
                "{name}: {rule} not in {hits:?}"
            );
        }
    }

    /// PyTorch's Inductor ships `triton_mm_grouped.py.jinja` with `{% set sentinel = "__NOT_A_NUMBER__" %}`.
    #[test]
    fn upper_case_sentinels_are_not_internals_but_stored_dunders_are() {
        let sentinel =
            r#"{%- set sentinel = "__NOT_A_NUMBER__" -%}{{ x | int(default=sentinel) }}"#;
        assert_eq!(at_least(sentinel, Severity::Medium), vec![]);
        let stored = r#"{%- set a = "__class__" -%}{{ ()|attr(a) }}"#;
        assert!(!at_least(stored, Severity::High).is_empty());
        // Folded to lower case, an upper-case spelling is still caught where it is used.
        let folded = r#"{{ ()|attr('__CLASS__'|lower) }}"#;
        assert!(!at_least(folded, Severity::High).is_empty());
    }

    #[test]
    fn classic_mro_chain_is_critical() {
        let hits = analyze("{{ ''.__class__.__mro__[1].__subclasses__() }}");
        let whats: Vec<_> = hits.iter().map(|h| (h.what.as_str(), h.severity)).collect();
        assert!(whats.contains(&(".__class__", Severity::Critical)));
        assert!(whats.contains(&(".__subclasses__", Severity::Critical)));
    }

    #[test]
    fn escapes_decode_like_python() {
        let (lit, _) = lex_string(r"'\x5f\u005f\137\N{LOW LINE}a\n\'b'", 0);
        assert_eq!(lit.value, "____a\n'b");
        assert!(lit.escaped);
        let (plain, _) = lex_string(r#""line\nnext""#, 0);
        assert!(!plain.escaped);
        let (bad, _) = lex_string(r"'\xZZ'", 0);
        assert!(bad.undecodable);
    }

    #[test]
    fn folding_decodes_concatenation_filters_and_formatting() {
        let cases = [
            "{{ ()|attr('__cla' ~ 'ss__') }}",
            "{{ ()|attr('__cla' 'ss__') }}",
            "{{ ()|attr('__CLASS__'|lower) }}",
            "{{ ()|attr('__ssalc__'|reverse) }}",
            "{{ ()|attr('__ssalc__'[::-1]) }}",
            "{{ ()|attr('_' * 2 ~ 'class' ~ '_' * 2) }}",
            "{{ ()|attr('%c%cclass%c%c' % (95, 95, 95, 95)) }}",
            "{{ ()|attr('{}class{}'.format('__', '__')) }}",
            "{{ ()|attr(''.join(['__', 'class__'])) }}",
            "{{ ()|attr(['__cla', 'ss__']|join) }}",
            "{{ ()|attr('__cXass__'|replace('X', 'l')) }}",
        ];
        for template in cases {
            let hits = analyze(template);
            assert!(
                hits.iter()
                    .any(|h| h.rule.id == "AEG-SCAN-410" && h.what == "|attr('__class__')"),
                "{template}: {hits:?}"
            );
            assert!(
                hits.iter().any(|h| h.rule.id == "AEG-SCAN-412"),
                "{template}"
            );
        }
    }

    #[test]
    fn set_variables_are_followed() {
        let hits = analyze("{% set a = '__glo' %}{% set b = a ~ 'bals__' %}{{ lipsum|attr(b) }}");
        assert!(
            hits.iter()
                .any(|h| h.rule.id == "AEG-SCAN-411" && h.what.contains("__globals__")),
            "{hits:?}"
        );
        assert!(hits
            .iter()
            .any(|h| h.rule.id == "AEG-SCAN-416" && h.severity == Severity::High));
    }

    #[test]
    fn format_string_attack() {
        let hits = at_least(
            "{{ '{0.__class__.__mro__}'.format(messages) }}",
            Severity::High,
        );
        assert!(hits.iter().any(|(r, _)| r == "AEG-SCAN-416"), "{hits:?}");
        assert_eq!(
            at_least("{{ '{} said: {}'.format(a, b) }}", Severity::Low),
            vec![]
        );
    }

    #[test]
    fn strings_in_text_comments_and_raw_blocks_are_ignored() {
        let t = "Use __init__ and os.popen in prose {# ''.__class__ #}{% raw %}{{ cycler.__init__ }}{% endraw %}";
        assert_eq!(analyze(t), vec![]);
        let t = "{%- raw -%}{{ x.__class__ }}{%- endraw -%}{{ y.__dict__ }}";
        assert_eq!(
            at_least(t, Severity::High),
            vec![("AEG-SCAN-410".into(), ".__dict__".into())]
        );
    }

    #[test]
    fn delimiters_inside_strings_and_dicts_do_not_end_a_tag() {
        let t = "{{ '}}' ~ {'a': {'b': 1}} }}{{ x.__class__ }}";
        assert_eq!(
            at_least(t, Severity::High),
            vec![("AEG-SCAN-410".into(), ".__class__".into())]
        );
        let t = "{% if x == '%}' %}{{ y._private }}{% endif %}";
        assert_eq!(
            at_least(t, Severity::High),
            vec![("AEG-SCAN-410".into(), "._private".into())]
        );
    }

    #[test]
    fn locals_named_like_framework_objects_are_fine() {
        assert_eq!(
            at_least(
                "{% for request in items %}{{ request.text }}{% endfor %}",
                Severity::Medium
            ),
            vec![]
        );
        assert_eq!(at_least("{{ render(config=1) }}", Severity::Medium), vec![]);
        assert_eq!(
            at_least("{{ request.args }}", Severity::High),
            vec![("AEG-SCAN-415".into(), "request".into())]
        );
    }

    #[test]
    fn plain_underscore_strings_are_only_low() {
        assert_eq!(
            at_least(
                "{% set suffix = '_v2' %}{{ name ~ suffix }}",
                Severity::Medium
            ),
            vec![]
        );
        assert_eq!(
            at_least("{{ '__init__ is a method' }}", Severity::Medium),
            vec![]
        );
        let hits = at_least("{% set m = '__init__' %}", Severity::High);
        assert_eq!(hits, vec![("AEG-SCAN-416".into(), "'__init__'".into())]);
    }

    #[test]
    fn keyword_names_cannot_spell_dunders() {
        let hits = at_least("{{ ()|attr(dict(__cla=1, ss__=1)|join) }}", Severity::High);
        assert!(
            hits.contains(&("AEG-SCAN-416".into(), "__cla=".into())),
            "{hits:?}"
        );
        assert!(hits.iter().any(|(r, _)| r == "AEG-SCAN-412"));
        assert_eq!(
            at_least(
                "{{ namespace(found=false, last_query_index=0) }}",
                Severity::Low
            ),
            vec![]
        );
    }

    #[test]
    fn selectattr_and_map_attribute_are_attribute_access() {
        assert_eq!(
            at_least(
                "{{ messages|selectattr('role', 'equalto', 'user')|list }}",
                Severity::Low
            ),
            vec![]
        );
        assert_eq!(
            at_least(
                "{{ messages|map(attribute='content')|join }}",
                Severity::Low
            ),
            vec![]
        );
        let hits = at_least(
            "{{ messages|map(attribute='__class__')|list }}",
            Severity::Critical,
        );
        assert_eq!(
            hits,
            vec![("AEG-SCAN-410".into(), "attribute='__class__'".into())]
        );
    }

    #[test]
    fn pathological_input_is_bounded() {
        let deep = format!("{{{{ {}'a'{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
        let _ = analyze(&deep);
        let long = format!("{{{{ {} }}}}", vec!["'__'"; 50_000].join(" ~ "));
        let _ = analyze(&long);
        let unterminated = "{{ 'abc";
        assert_eq!(analyze(unterminated), vec![]);
        let _ = analyze("{% raw %}{{ never closed");
        let _ = analyze("{{ '\\N{");
        let _ = analyze("{{ ''['\u{1F600}'] ~ é.__x__ }}");
    }
    #[test]
    fn mutated_templates_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet: Vec<char> = "{}%#'\"\\()[]_.|~+*-x5u0N é".chars().collect();
        let templates = HONEST_TEMPLATES
            .iter()
            .map(|(_, t)| *t)
            .chain(MALICIOUS_TEMPLATES.iter().map(|(_, t, _)| *t));
        for template in templates {
            let chars: Vec<char> = template.chars().collect();
            for _ in 0..300 {
                let mut m = chars.clone();
                for _ in 0..1 + next() % 6 {
                    let at = (next() % m.len() as u64) as usize;
                    m[at] = alphabet[(next() % alphabet.len() as u64) as usize];
                }
                let _ = analyze(&m.iter().collect::<String>());
            }
        }
    }
}
