//! Emulated Python values. Containers are shared and mutable (`Rc<RefCell<…>>`) because pickle semantics
//! are: the memo and the stack hold the *same* object, and `APPEND`, `SETITEM` and `BUILD` mutate it in place.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

/// An emulated value.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`.
    None,
    /// `True`/`False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A larger integer, little-endian two's complement bytes as in `LONG1`/`LONG4` (prefix if huge).
    BigInt(Rc<[u8]>),
    /// A float.
    Float(f64),
    /// A `str`. `len` is the full length in bytes; `text` may be a prefix when `len` exceeds the kept bound.
    Str {
        /// Kept text (possibly a prefix).
        text: Rc<str>,
        /// Full length in bytes.
        len: u64,
    },
    /// `bytes`/`bytearray`. `data` may be a prefix when `len` exceeds the kept bound.
    Bytes {
        /// Kept bytes (possibly a prefix).
        data: Rc<[u8]>,
        /// Full length.
        len: u64,
    },
    /// A tuple (immutable; items beyond the bound dropped, `len` counts all).
    Tuple(Rc<Vec<Value>>),
    /// A list.
    List(Rc<RefCell<Vec<Value>>>),
    /// A dict, as ordered key/value pairs.
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// A set or frozenset.
    Set(Rc<RefCell<Vec<Value>>>),
    /// A reference to an importable object: `module` plus a (possibly dotted, possibly empty for the module
    /// itself) qualified `name`.
    Global {
        /// Module name.
        module: Rc<str>,
        /// Qualified name inside the module.
        name: Rc<str>,
    },
    /// The result of a call or instantiation.
    Object(Rc<RefCell<PyObject>>),
    /// Result of `persistent_load(pid)`.
    Persistent(Rc<Value>),
    /// Something the emulator cannot know (memo miss, computed name, `EXT` code with no registry).
    Unknown(Rc<str>),
}

/// How an [`PyObject`] came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// `callable(*args)` via REDUCE.
    Call,
    /// A class instantiated via INST/OBJ (`klass(*args)`: any callable, any result).
    Instance,
    /// A class allocated via NEWOBJ/NEWOBJ_EX (`cls.__new__(cls, *args)`).
    New,
}

/// The result of a call.
#[derive(Debug, Clone)]
pub struct PyObject {
    /// What was called.
    pub callable: Value,
    /// How.
    pub kind: ObjectKind,
    /// Arguments.
    pub args: Value,
    /// State applied by BUILD, if any (the last one).
    pub state: Option<Value>,
    /// Offset of the creating opcode.
    pub offset: u64,
}

impl Value {
    /// A constant string value.
    pub fn str(s: &str) -> Value {
        Value::Str {
            text: Rc::from(s),
            len: s.len() as u64,
        }
    }

    /// A constant bytes value (kept whole).
    pub fn bytes(b: &[u8]) -> Value {
        Value::Bytes {
            data: Rc::from(b),
            len: b.len() as u64,
        }
    }

    /// The string if this is a complete constant `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str { text, len } if text.len() as u64 == *len => Some(text),
            _ => None,
        }
    }

    /// The bytes if this is a complete `bytes` constant, or the UTF-8 of a complete `str`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes { data, len } if data.len() as u64 == *len => Some(data),
            Value::Str { text, len } if text.len() as u64 == *len => Some(text.as_bytes()),
            _ => None,
        }
    }

    /// `(module, name)` if this is a global reference.
    pub fn as_global(&self) -> Option<(&str, &str)> {
        match self {
            Value::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    /// The items if this is a tuple (or a list), cloned.
    pub fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(items) => Some(items.as_ref().clone()),
            Value::List(items) | Value::Set(items) => Some(items.borrow().clone()),
            _ => None,
        }
    }

    /// The Python type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str { .. } => "str",
            Value::Bytes { .. } => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::Global { .. } => "global",
            Value::Object(_) => "object",
            Value::Persistent(_) => "persistent",
            Value::Unknown(_) => "unknown",
        }
    }

    /// A short, bounded, single-line rendering for messages and evidence (`depth` bounds recursion; cycles
    /// created by a crafted pickle are cut there).
    pub fn render(&self, max_len: usize) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 4, max_len);
        if out.len() > max_len {
            let mut cut = max_len;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
        }
        out
    }

    fn render_into(&self, out: &mut String, depth: usize, budget: usize) {
        use std::fmt::Write;
        if out.len() > budget {
            return;
        }
        if depth == 0 {
            out.push('…');
            return;
        }
        let seq = |out: &mut String, items: &[Value], open: &str, close: &str| {
            out.push_str(open);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if out.len() > budget {
                    out.push('…');
                    break;
                }
                item.render_into(out, depth - 1, budget);
            }
            out.push_str(close);
        };
        match self {
            Value::None => out.push_str("None"),
            Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::BigInt(b) => {
                let _ = write!(out, "<int of {} bytes>", b.len());
            }
            Value::Float(x) => {
                let _ = write!(out, "{x:?}");
            }
            Value::Str { text, len } => {
                let _ = write!(out, "{:?}", truncate_chars(text, 200));
                if *len > text.len() as u64 || text.len() > 200 {
                    let _ = write!(out, "<{len} bytes>");
                }
            }
            Value::Bytes { data, len } => {
                let shown = &data[..data.len().min(64)];
                out.push_str("b'");
                for &byte in shown {
                    match byte {
                        b'\\' => out.push_str("\\\\"),
                        b'\'' => out.push_str("\\'"),
                        b'\n' => out.push_str("\\n"),
                        b'\r' => out.push_str("\\r"),
                        b'\t' => out.push_str("\\t"),
                        0x20..=0x7e => out.push(char::from(byte)),
                        _ => {
                            let _ = write!(out, "\\x{byte:02x}");
                        }
                    }
                }
                out.push('\'');
                if *len > shown.len() as u64 {
                    let _ = write!(out, "<{len} bytes>");
                }
            }
            Value::Tuple(items) => seq(out, items, "(", ")"),
            Value::List(items) => seq(out, &items.borrow(), "[", "]"),
            Value::Set(items) => seq(out, &items.borrow(), "{", "}"),
            Value::Dict(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if out.len() > budget {
                        out.push('…');
                        break;
                    }
                    k.render_into(out, depth - 1, budget);
                    out.push_str(": ");
                    v.render_into(out, depth - 1, budget);
                }
                out.push('}');
            }
            Value::Global { module, name } => {
                out.push_str(module);
                if !name.is_empty() {
                    out.push('.');
                    out.push_str(name);
                }
            }
            Value::Object(obj) => {
                let obj = obj.borrow();
                obj.callable.render_into(out, depth - 1, budget);
                obj.args.render_into(out, depth - 1, budget);
            }
            Value::Persistent(pid) => {
                out.push_str("persistent_load(");
                pid.render_into(out, depth - 1, budget);
                out.push(')');
            }
            Value::Unknown(why) => {
                let _ = write!(out, "<unknown: {why}>");
            }
        }
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(400))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nested_values_bounded() {
        let v = Value::Tuple(Rc::new(vec![
            Value::str("echo hi"),
            Value::Int(3),
            Value::Global {
                module: "os".into(),
                name: "system".into(),
            },
        ]));
        assert_eq!(v.render(100), "(\"echo hi\", 3, os.system)");
        let list = Value::List(Rc::new(RefCell::new(Vec::new())));
        if let Value::List(items) = &list {
            items.borrow_mut().push(list.clone()); // a cycle, as `l.append(l)` pickles
        }
        assert!(list.render(50).len() < 80);
    }

    #[test]
    fn truncated_constants_are_not_complete() {
        let v = Value::Bytes {
            data: Rc::from(&b"abc"[..]),
            len: 10,
        };
        assert!(v.as_bytes().is_none());
        assert_eq!(
            Value::bytes(b"\x80\x02c'\n").render(40),
            "b'\\x80\\x02c\\'\\n'"
        );
        assert_eq!(Value::bytes(b"abc").as_bytes(), Some(&b"abc"[..]));
    }
}
