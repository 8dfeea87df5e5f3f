//! An independent pickle *writer* (it follows CPython's `Lib/pickle.py` and `pickletools.py`, not our
//! emulator) and the pickle corpus: realistic benign files as PyTorch, scikit-learn, joblib and plain Python
//! write them, and malicious ones for every technique the emulator and the scanner must see through.
//!
//! Payloads are harmless commands (`echo pwned`, `id`); nothing here is ever unpickled or executed.

use std::io::Write;

use crate::Case;

/// A harmless command used by every payload.
pub const COMMAND: &str = "echo pwned";

/// Appends pickle opcodes to a byte buffer. Methods are named after the opcodes (lower case) plus a few
/// conveniences ([`PickleBuilder::int`], [`PickleBuilder::text`], [`PickleBuilder::bytes`]) that choose the
/// opcode `pickle.py` would.
#[derive(Debug, Clone, Default)]
pub struct PickleBuilder {
    buf: Vec<u8>,
}

impl PickleBuilder {
    /// An empty stream.
    pub fn new() -> Self {
        PickleBuilder::default()
    }

    /// The bytes written so far.
    pub fn to_vec(&self) -> Vec<u8> {
        self.buf.clone()
    }

    /// The bytes, consuming the builder.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Raw bytes (garbage, inline array data, a nested stream).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// One opcode byte without argument.
    pub fn op(&mut self, code: u8) -> &mut Self {
        self.buf.push(code);
        self
    }

    fn line(&mut self, code: u8, text: &[u8]) -> &mut Self {
        self.buf.push(code);
        self.buf.extend_from_slice(text);
        self.buf.push(b'\n');
        self
    }

    // ----- framing -----

    /// `PROTO n`.
    pub fn proto(&mut self, protocol: u8) -> &mut Self {
        self.raw(&[0x80, protocol])
    }

    /// `FRAME len`.
    pub fn frame(&mut self, len: u64) -> &mut Self {
        self.op(0x95).raw(&len.to_le_bytes())
    }

    /// `STOP`.
    pub fn stop(&mut self) -> &mut Self {
        self.op(b'.')
    }

    /// `MARK`.
    pub fn mark(&mut self) -> &mut Self {
        self.op(b'(')
    }

    /// `POP`.
    pub fn pop(&mut self) -> &mut Self {
        self.op(b'0')
    }

    /// `POP_MARK`.
    pub fn pop_mark(&mut self) -> &mut Self {
        self.op(b'1')
    }

    /// `DUP`.
    pub fn dup(&mut self) -> &mut Self {
        self.op(b'2')
    }

    // ----- scalars -----

    /// `NONE`.
    pub fn none(&mut self) -> &mut Self {
        self.op(b'N')
    }

    /// `NEWTRUE` / `NEWFALSE`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.op(if v { 0x88 } else { 0x89 })
    }

    /// An integer as `pickle.py` (protocol ≥ 2) writes it: `BININT1`, `BININT2`, `BININT` or `LONG1`.
    pub fn int(&mut self, v: i64) -> &mut Self {
        if (0..=0xff).contains(&v) {
            self.binint1(v as u8)
        } else if (0..=0xffff).contains(&v) {
            self.binint2(v as u16)
        } else if let Ok(v32) = i32::try_from(v) {
            self.binint(v32)
        } else {
            self.long1(&encode_long(i128::from(v)))
        }
    }

    /// `INT` (protocol 0 text).
    pub fn int_text(&mut self, v: i64) -> &mut Self {
        self.line(b'I', v.to_string().as_bytes())
    }

    /// `LONG` (protocol 0 text, with the Python 2 `L` suffix).
    pub fn long_text(&mut self, v: i128) -> &mut Self {
        self.line(b'L', format!("{v}L").as_bytes())
    }

    /// `BININT`.
    pub fn binint(&mut self, v: i32) -> &mut Self {
        self.op(b'J').raw(&v.to_le_bytes())
    }

    /// `BININT1`.
    pub fn binint1(&mut self, v: u8) -> &mut Self {
        self.raw(&[b'K', v])
    }

    /// `BININT2`.
    pub fn binint2(&mut self, v: u16) -> &mut Self {
        self.op(b'M').raw(&v.to_le_bytes())
    }

    /// `LONG1` with little-endian two's complement bytes (at most 255).
    pub fn long1(&mut self, bytes: &[u8]) -> &mut Self {
        self.raw(&[0x8a, bytes.len() as u8]).raw(bytes)
    }

    /// `LONG4` with little-endian two's complement bytes.
    pub fn long4(&mut self, bytes: &[u8]) -> &mut Self {
        self.op(0x8b)
            .raw(&(bytes.len() as i32).to_le_bytes())
            .raw(bytes)
    }

    /// `BINFLOAT` (big-endian).
    pub fn binfloat(&mut self, v: f64) -> &mut Self {
        self.op(b'G').raw(&v.to_be_bytes())
    }

    /// `FLOAT` (protocol 0 text, `repr` form).
    pub fn float_text(&mut self, v: f64) -> &mut Self {
        self.line(b'F', format!("{v:?}").as_bytes())
    }

    // ----- strings and bytes -----

    /// `STRING 'text'` (protocol 0, quoted with escapes as Python 2 `repr` does).
    pub fn string(&mut self, s: &[u8]) -> &mut Self {
        let mut quoted = vec![b'\''];
        for &c in s {
            match c {
                b'\\' => quoted.extend_from_slice(b"\\\\"),
                b'\'' => quoted.extend_from_slice(b"\\'"),
                b'\n' => quoted.extend_from_slice(b"\\n"),
                0x20..=0x7e => quoted.push(c),
                _ => quoted.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
            }
        }
        quoted.push(b'\'');
        self.line(b'S', &quoted)
    }

    /// `BINSTRING`.
    pub fn binstring(&mut self, s: &[u8]) -> &mut Self {
        self.op(b'T').raw(&(s.len() as i32).to_le_bytes()).raw(s)
    }

    /// `SHORT_BINSTRING`.
    pub fn short_binstring(&mut self, s: &[u8]) -> &mut Self {
        self.raw(&[b'U', s.len() as u8]).raw(s)
    }

    /// `UNICODE` (protocol 0, raw-unicode-escape as `pickle.py` writes it).
    pub fn unicode(&mut self, s: &str) -> &mut Self {
        let mut out = Vec::new();
        for c in s.chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\u005c"),
                '\0' => out.extend_from_slice(b"\\u0000"),
                '\n' => out.extend_from_slice(b"\\u000a"),
                '\r' => out.extend_from_slice(b"\\u000d"),
                '\x1a' => out.extend_from_slice(b"\\u001a"),
                c if (c as u32) < 0x100 => out.push(c as u8),
                c if (c as u32) < 0x10000 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                c => out.extend_from_slice(format!("\\U{:08x}", c as u32).as_bytes()),
            }
        }
        self.line(b'V', &out)
    }

    /// `BINUNICODE`.
    pub fn binunicode(&mut self, s: &str) -> &mut Self {
        self.op(b'X')
            .raw(&(s.len() as u32).to_le_bytes())
            .raw(s.as_bytes())
    }

    /// `SHORT_BINUNICODE` (at most 255 bytes).
    pub fn short_binunicode(&mut self, s: &str) -> &mut Self {
        self.raw(&[0x8c, s.len() as u8]).raw(s.as_bytes())
    }

    /// `BINUNICODE8`.
    pub fn binunicode8(&mut self, s: &str) -> &mut Self {
        self.op(0x8d)
            .raw(&(s.len() as u64).to_le_bytes())
            .raw(s.as_bytes())
    }

    /// A `str` as protocol 4 writes it: `SHORT_BINUNICODE` below 256 bytes, else `BINUNICODE`.
    pub fn text(&mut self, s: &str) -> &mut Self {
        if s.len() < 256 {
            self.short_binunicode(s)
        } else {
            self.binunicode(s)
        }
    }

    /// `BINBYTES`.
    pub fn binbytes(&mut self, b: &[u8]) -> &mut Self {
        self.op(b'B').raw(&(b.len() as u32).to_le_bytes()).raw(b)
    }

    /// `SHORT_BINBYTES` (at most 255 bytes).
    pub fn short_binbytes(&mut self, b: &[u8]) -> &mut Self {
        self.raw(&[b'C', b.len() as u8]).raw(b)
    }

    /// `BINBYTES8`.
    pub fn binbytes8(&mut self, b: &[u8]) -> &mut Self {
        self.op(0x8e).raw(&(b.len() as u64).to_le_bytes()).raw(b)
    }

    /// `BYTEARRAY8`.
    pub fn bytearray8(&mut self, b: &[u8]) -> &mut Self {
        self.op(0x96).raw(&(b.len() as u64).to_le_bytes()).raw(b)
    }

    /// A `bytes` as protocol 3+ writes it: `SHORT_BINBYTES` below 256 bytes, else `BINBYTES`.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        if b.len() < 256 {
            self.short_binbytes(b)
        } else {
            self.binbytes(b)
        }
    }

    // ----- containers -----

    /// `EMPTY_TUPLE`.
    pub fn empty_tuple(&mut self) -> &mut Self {
        self.op(b')')
    }

    /// `TUPLE` (after a `MARK`).
    pub fn tuple(&mut self) -> &mut Self {
        self.op(b't')
    }

    /// `TUPLE1`.
    pub fn tuple1(&mut self) -> &mut Self {
        self.op(0x85)
    }

    /// `TUPLE2`.
    pub fn tuple2(&mut self) -> &mut Self {
        self.op(0x86)
    }

    /// `TUPLE3`.
    pub fn tuple3(&mut self) -> &mut Self {
        self.op(0x87)
    }

    /// `EMPTY_LIST`.
    pub fn empty_list(&mut self) -> &mut Self {
        self.op(b']')
    }

    /// `LIST` (after a `MARK`).
    pub fn list(&mut self) -> &mut Self {
        self.op(b'l')
    }

    /// `APPEND`.
    pub fn append(&mut self) -> &mut Self {
        self.op(b'a')
    }

    /// `APPENDS` (after a `MARK` and the items).
    pub fn appends(&mut self) -> &mut Self {
        self.op(b'e')
    }

    /// `EMPTY_DICT`.
    pub fn empty_dict(&mut self) -> &mut Self {
        self.op(b'}')
    }

    /// `DICT` (after a `MARK`).
    pub fn dict(&mut self) -> &mut Self {
        self.op(b'd')
    }

    /// `SETITEM`.
    pub fn setitem(&mut self) -> &mut Self {
        self.op(b's')
    }

    /// `SETITEMS` (after a `MARK` and key/value pairs).
    pub fn setitems(&mut self) -> &mut Self {
        self.op(b'u')
    }

    /// `EMPTY_SET`.
    pub fn empty_set(&mut self) -> &mut Self {
        self.op(0x8f)
    }

    /// `ADDITEMS` (after a `MARK` and the items).
    pub fn additems(&mut self) -> &mut Self {
        self.op(0x90)
    }

    /// `FROZENSET` (after a `MARK` and the items).
    pub fn frozenset(&mut self) -> &mut Self {
        self.op(0x91)
    }

    // ----- memo -----

    /// `PUT n` (protocol 0 text).
    pub fn put(&mut self, index: u64) -> &mut Self {
        self.line(b'p', index.to_string().as_bytes())
    }

    /// `BINPUT n`.
    pub fn binput(&mut self, index: u8) -> &mut Self {
        self.raw(&[b'q', index])
    }

    /// `LONG_BINPUT n`.
    pub fn long_binput(&mut self, index: u32) -> &mut Self {
        self.op(b'r').raw(&index.to_le_bytes())
    }

    /// `MEMOIZE`.
    pub fn memoize(&mut self) -> &mut Self {
        self.op(0x94)
    }

    /// `GET n` (protocol 0 text).
    pub fn get(&mut self, index: u64) -> &mut Self {
        self.line(b'g', index.to_string().as_bytes())
    }

    /// `BINGET n`.
    pub fn binget(&mut self, index: u8) -> &mut Self {
        self.raw(&[b'h', index])
    }

    /// `LONG_BINGET n`.
    pub fn long_binget(&mut self, index: u32) -> &mut Self {
        self.op(b'j').raw(&index.to_le_bytes())
    }

    // ----- globals and calls -----

    /// `GLOBAL module\nname\n`.
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b'c')
            .raw(module.as_bytes())
            .raw(b"\n")
            .raw(name.as_bytes())
            .raw(b"\n")
    }

    /// `STACK_GLOBAL` (module and name already on the stack).
    pub fn stack_global(&mut self) -> &mut Self {
        self.op(0x93)
    }

    /// `SHORT_BINUNICODE module`, `SHORT_BINUNICODE name`, `STACK_GLOBAL`, as protocol 4 writes a global
    /// (with `MEMOIZE` after each, like `pickle.py`).
    pub fn stack_global_of(&mut self, module: &str, name: &str) -> &mut Self {
        self.text(module)
            .memoize()
            .text(name)
            .memoize()
            .stack_global()
            .memoize()
    }

    /// `INST module\nname\n` (after a `MARK` and the arguments).
    pub fn inst(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b'i')
            .raw(module.as_bytes())
            .raw(b"\n")
            .raw(name.as_bytes())
            .raw(b"\n")
    }

    /// `OBJ` (after a `MARK`, the class and the arguments).
    pub fn obj(&mut self) -> &mut Self {
        self.op(b'o')
    }

    /// `REDUCE`.
    pub fn reduce(&mut self) -> &mut Self {
        self.op(b'R')
    }

    /// `NEWOBJ`.
    pub fn newobj(&mut self) -> &mut Self {
        self.op(0x81)
    }

    /// `NEWOBJ_EX`.
    pub fn newobj_ex(&mut self) -> &mut Self {
        self.op(0x92)
    }

    /// `BUILD`.
    pub fn build(&mut self) -> &mut Self {
        self.op(b'b')
    }

    /// `EXT1 code`.
    pub fn ext1(&mut self, code: u8) -> &mut Self {
        self.raw(&[0x82, code])
    }

    /// `EXT2 code`.
    pub fn ext2(&mut self, code: u16) -> &mut Self {
        self.op(0x83).raw(&code.to_le_bytes())
    }

    /// `EXT4 code`.
    pub fn ext4(&mut self, code: i32) -> &mut Self {
        self.op(0x84).raw(&code.to_le_bytes())
    }

    /// `PERSID id\n` (protocol 0).
    pub fn persid(&mut self, id: &str) -> &mut Self {
        self.line(b'P', id.as_bytes())
    }

    /// `BINPERSID`.
    pub fn binpersid(&mut self) -> &mut Self {
        self.op(b'Q')
    }

    /// `NEXT_BUFFER`.
    pub fn next_buffer(&mut self) -> &mut Self {
        self.op(0x97)
    }

    /// `READONLY_BUFFER`.
    pub fn readonly_buffer(&mut self) -> &mut Self {
        self.op(0x98)
    }

    // ----- common shapes -----

    /// `GLOBAL module name`, `(arg,)`, `REDUCE`: a one-argument call with a string argument (protocol 2).
    pub fn call1_str(&mut self, module: &str, name: &str, arg: &str) -> &mut Self {
        self.global(module, name).binunicode(arg).tuple1().reduce()
    }
}

/// Minimal little-endian two's complement, as `pickle.encode_long` writes it.
pub fn encode_long(v: i128) -> Vec<u8> {
    if v == 0 {
        return Vec::new();
    }
    let mut bytes = v.to_le_bytes().to_vec();
    while bytes.len() > 1 {
        let (top, next) = (bytes[bytes.len() - 1], bytes[bytes.len() - 2]);
        if (top == 0 && next & 0x80 == 0) || (top == 0xff && next & 0x80 != 0) {
            bytes.pop();
        } else {
            break;
        }
    }
    bytes
}

/// The magic number legacy `torch.save` writes first.
pub const TORCH_LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;

// ----- payload pickles -----

/// `os.system(cmd)` with `GLOBAL` + `REDUCE`, protocol 2, as `pickle.dumps` of a `__reduce__` gadget
/// writes it.
pub fn os_system(cmd: &str) -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2)
        .global("os", "system")
        .binput(0)
        .binunicode(cmd)
        .binput(1)
        .tuple1()
        .binput(2)
        .reduce()
        .binput(3)
        .stop();
    b.into_bytes()
}

/// `posix.system(cmd)`, protocol 0 (what `pickle.dumps(..., 0)` writes on Linux).
pub fn posix_system_proto0(cmd: &str) -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.global("posix", "system")
        .put(0)
        .mark()
        .unicode(cmd)
        .put(1)
        .tuple()
        .put(2)
        .reduce()
        .put(3)
        .stop();
    b.into_bytes()
}

/// Protocol 4 `STACK_GLOBAL` from memoized strings: `"os"` and `"system"` are stored first, the stack is
/// cleared, and the global is assembled later from `BINGET`s.
pub fn stack_global_memoized() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4)
        .text("os")
        .memoize()
        .text("system")
        .memoize()
        .pop()
        .pop();
    b.text("unrelated").memoize().pop();
    b.binget(0)
        .binget(1)
        .stack_global()
        .memoize()
        .text(COMMAND)
        .memoize()
        .tuple1()
        .memoize()
        .reduce()
        .memoize()
        .stop();
    b.into_bytes()
}

/// `STACK_GLOBAL` whose module name is computed at load time: `"".join(["o", "s"])`.
pub fn stack_global_runtime_name() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4).stack_global_of("builtins", "str.join");
    b.text("")
        .empty_list()
        .mark()
        .text("o")
        .text("s")
        .appends()
        .tuple2()
        .reduce()
        .memoize();
    b.text("system")
        .stack_global()
        .memoize()
        .text(COMMAND)
        .tuple1()
        .reduce()
        .stop();
    b.into_bytes()
}

/// `STACK_GLOBAL` whose name is decoded at load time with `codecs.decode("flfgrz", "rot13")`: exact
/// evaluation resolves it to `os.system`.
pub fn stack_global_rot13_name() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4).text("os").memoize();
    b.stack_global_of("_codecs", "decode")
        .text("flfgrz")
        .text("rot13")
        .tuple2()
        .reduce()
        .memoize();
    b.stack_global()
        .memoize()
        .text(COMMAND)
        .tuple1()
        .reduce()
        .stop();
    b.into_bytes()
}

/// `getattr(__import__("os"), "system")(cmd)`, protocol 2.
pub fn getattr_import_chain() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2).global("builtins", "getattr").binput(0);
    b.global("builtins", "__import__")
        .binput(1)
        .binunicode("os")
        .tuple1()
        .reduce()
        .binput(2);
    b.binunicode("system").tuple2().reduce().binput(3);
    b.binunicode(COMMAND).tuple1().reduce().stop();
    b.into_bytes()
}

/// `eval("__import__('os').system('echo pwned')")`, protocol 0 with the Python 2 module name.
pub fn builtin_eval_proto0() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.global("__builtin__", "eval").put(0).mark();
    b.string(format!("__import__('os').system('{COMMAND}')").as_bytes());
    b.tuple().reduce().stop();
    b.into_bytes()
}

/// `exec(source)`, protocol 4 `STACK_GLOBAL`.
pub fn builtin_exec() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4).stack_global_of("builtins", "exec");
    b.text(&format!("import os; os.system('{COMMAND}')"))
        .memoize()
        .tuple1()
        .memoize()
        .reduce()
        .memoize()
        .stop();
    b.into_bytes()
}

/// Two pickles in one stream whose memo indices collide: the first stores `collections`/`OrderedDict` at
/// memo 0 and 1, the second stores `os`/`system` there. Only a memo reset at `STOP` reads the second
/// correctly; a tracker that keeps the first memo sees `collections.OrderedDict` twice.
pub fn memo_collision_second_pickle() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4)
        .text("collections")
        .memoize()
        .text("OrderedDict")
        .memoize()
        .stack_global()
        .memoize();
    b.empty_tuple().reduce().memoize().stop();
    b.proto(4)
        .text("os")
        .memoize()
        .text("system")
        .memoize()
        .pop()
        .pop();
    b.binget(0)
        .binget(1)
        .stack_global()
        .memoize()
        .text(COMMAND)
        .memoize()
        .tuple1()
        .reduce()
        .stop();
    b.into_bytes()
}

/// `PUT` and `MEMOIZE` mixed so that a tracker that numbers `MEMOIZE` by its own count (ignoring explicit
/// `BINPUT` indices) resolves a benign global where CPython resolves `os.system`.
pub fn put_memoize_mix() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4);
    b.text("collections").binput(0).pop(); // memo {0}
    b.text("OrderedDict").binput(1).pop(); // memo {0, 1}
    b.text("os").memoize().pop(); // CPython: memo[2] (len); a MEMOIZE counter says 0
    b.text("system").memoize().pop(); // CPython: memo[3]; a counter says 1
    b.binget(0)
        .binget(1)
        .stack_global()
        .empty_tuple()
        .reduce()
        .pop(); // collections.OrderedDict()
    b.binget(2)
        .binget(3)
        .stack_global()
        .text(COMMAND)
        .tuple1()
        .reduce()
        .stop();
    b.into_bytes()
}

/// `BUILD` with slot state on a class: `setattr(collections.OrderedDict, "__reduce_ex__", …)`.
pub fn build_slot_state_on_class() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2).global("collections", "OrderedDict").binput(0);
    b.none()
        .empty_dict()
        .binunicode("__reduce_ex__")
        .binunicode(COMMAND)
        .setitem()
        .tuple2()
        .build();
    b.pop().empty_dict().stop();
    b.into_bytes()
}

/// `BUILD` with a dict state on a module (`collections.abc.__dict__.update(...)`), protocol 4.
pub fn build_dict_on_module() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4).stack_global_of("collections", "abc");
    b.empty_dict()
        .text("Mapping")
        .text(COMMAND)
        .setitem()
        .build()
        .pop();
    b.empty_dict().stop();
    b.into_bytes()
}

/// `INST os system` (protocol 0 instantiation of a function).
pub fn inst_os_system() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    // Python 3 writes a str as `V` at protocol 0 (and `(S` would also be a valid zlib header).
    b.mark().unicode(COMMAND).inst("os", "system").stop();
    b.into_bytes()
}

/// `OBJ` with `os.system` as the "class" (protocol 1).
pub fn obj_os_system() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.mark()
        .global("os", "system")
        .binunicode(COMMAND)
        .obj()
        .stop();
    b.into_bytes()
}

/// `NEWOBJ_EX subprocess.Popen(["echo", "pwned"], shell=False)` (protocol 4).
pub fn newobj_ex_popen() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4).stack_global_of("subprocess", "Popen");
    b.empty_list()
        .mark()
        .text("echo")
        .text("pwned")
        .appends()
        .tuple1();
    b.empty_dict().text("shell").bool(false).setitem();
    b.newobj_ex().stop();
    b.into_bytes()
}

/// `pickle.loads(b"<os.system pickle>")`.
pub fn nested_pickle_loads() -> Vec<u8> {
    let inner = os_system(COMMAND);
    let mut b = PickleBuilder::new();
    b.proto(3)
        .global("pickle", "loads")
        .binput(0)
        .bytes(&inner)
        .tuple1()
        .reduce()
        .stop();
    b.into_bytes()
}

/// `pickle.loads(base64.b64decode("<os.system pickle>"))`.
pub fn nested_base64_loads() -> Vec<u8> {
    let inner = base64_encode(&os_system(COMMAND));
    let mut b = PickleBuilder::new();
    b.proto(2).global("_pickle", "loads").binput(0);
    b.global("base64", "b64decode")
        .binput(1)
        .binunicode(&inner)
        .tuple1()
        .reduce();
    b.tuple1().reduce().stop();
    b.into_bytes()
}

/// `types.FunctionType(marshal.loads(code), globals())()`, with harmless bytes standing in for bytecode.
pub fn marshal_function() -> Vec<u8> {
    let code = b"\xe3\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x40\x00\x00\x00s\x0c\x00\x00\x00e\x00\xa0\x01d\x00\xa1\x01\x01\x00d\x01S\x00)\x02z\x0aecho pwnedN)\x02\xda\x02os\xda\x06system";
    let mut b = PickleBuilder::new();
    b.proto(3).global("types", "FunctionType").binput(0);
    b.global("marshal", "loads")
        .binput(1)
        .bytes(code)
        .tuple1()
        .reduce();
    b.global("builtins", "globals").empty_tuple().reduce();
    b.tuple2().reduce().empty_tuple().reduce().stop();
    b.into_bytes()
}

/// `torch.storage._load_from_bytes(b"<os.system pickle>")`, as a crafted `torch.save` data.pkl would.
pub fn torch_load_from_bytes() -> Vec<u8> {
    let inner = os_system(COMMAND);
    let mut b = PickleBuilder::new();
    b.proto(3)
        .global("torch.storage", "_load_from_bytes")
        .binput(0);
    b.binbytes(&inner).tuple1().reduce().stop();
    b.into_bytes()
}

/// Garbage after a valid start, then an `os.system` pickle: only resynchronisation finds it.
pub fn payload_after_garbage() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2)
        .none()
        .raw(b"\xff\xfe\x00garbage\x07\x80\x01\x80")
        .raw(&os_system(COMMAND));
    b.into_bytes()
}

/// `find_class("glob", "os.system")`: protocol 4 walks the dotted name to `glob.os.system`.
pub fn dotted_glob_os_system() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4)
        .stack_global_of("glob", "os.system")
        .text(COMMAND)
        .memoize()
        .tuple1()
        .reduce()
        .stop();
    b.into_bytes()
}

/// `EXT1 1` then a call: the callable comes from the copyreg extension registry.
pub fn ext_call() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2)
        .ext1(1)
        .binunicode(COMMAND)
        .tuple1()
        .reduce()
        .stop();
    b.into_bytes()
}

/// A global outside every allow-list that is not a known gadget.
pub fn unknown_module_call() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2)
        .call1_str("evil_pkg.payload", "run", COMMAND)
        .stop();
    b.into_bytes()
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, c| acc << 8 | u32::from(*c)) << (8 * (3 - chunk.len()));
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ----- benign files -----

/// One tensor of a state dict.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    /// Key in the state dict.
    pub name: String,
    /// Shape.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// A tensor spec.
    pub fn new(name: &str, shape: &[i64]) -> Self {
        TensorSpec {
            name: name.to_owned(),
            shape: shape.to_vec(),
        }
    }

    fn numel(&self) -> i64 {
        self.shape.iter().product()
    }
}

/// A small convolutional model's tensors.
pub fn small_model() -> Vec<TensorSpec> {
    vec![
        TensorSpec::new("conv1.weight", &[8, 3, 3, 3]),
        TensorSpec::new("conv1.bias", &[8]),
        TensorSpec::new("fc.weight", &[10, 8]),
        TensorSpec::new("fc.bias", &[10]),
    ]
}

/// Writes protocol-2 pickles with the automatic `BINPUT` memoization `pickle.py` does.
struct Memo2 {
    b: PickleBuilder,
    next: u32,
}

impl Memo2 {
    fn new() -> Self {
        Memo2 {
            b: PickleBuilder::new(),
            next: 0,
        }
    }

    fn put(&mut self) -> u32 {
        let i = self.next;
        self.next += 1;
        if let Ok(small) = u8::try_from(i) {
            self.b.binput(small);
        } else {
            self.b.long_binput(i);
        }
        i
    }

    fn get(&mut self, i: u32) {
        if let Ok(small) = u8::try_from(i) {
            self.b.binget(small);
        } else {
            self.b.long_binget(i);
        }
    }

    /// A global, memoized the first time.
    fn global(&mut self, seen: &mut Vec<(String, u32)>, module: &str, name: &str) {
        let key = format!("{module}\n{name}");
        if let Some((_, i)) = seen.iter().find(|(k, _)| *k == key) {
            let i = *i;
            self.get(i);
            return;
        }
        self.b.global(module, name);
        let i = self.put();
        seen.push((key, i));
    }

    fn str(&mut self, s: &str) {
        self.b.binunicode(s);
        self.put();
    }

    /// A tuple of integers.
    fn int_tuple(&mut self, items: &[i64]) {
        if items.len() > 3 {
            self.b.mark();
        }
        for v in items {
            self.b.int(*v);
        }
        self.tuple_end(items.len());
    }

    /// A tuple of already-written items (`n` ≤ 3 use `TUPLEn`; more need a `MARK` before them).
    fn tuple_end(&mut self, n: usize) {
        match n {
            0 => {
                self.b.empty_tuple();
                return;
            }
            1 => self.b.tuple1(),
            2 => self.b.tuple2(),
            3 => self.b.tuple3(),
            _ => self.b.tuple(),
        };
        self.put();
    }
}

/// The object `torch.save(model.state_dict())` pickles (protocol 2): an `OrderedDict` of
/// `_rebuild_tensor_v2` calls over persistent storages, then the `_metadata` attribute applied by `BUILD`.
/// `legacy` selects the pre-1.6 persistent id (with the view metadata item) and storage keys.
fn state_dict_object(m: &mut Memo2, tensors: &[TensorSpec], legacy: bool) -> Vec<String> {
    let mut seen = Vec::new();
    let mut keys = Vec::new();
    m.b.proto(2);
    m.global(&mut seen, "collections", "OrderedDict");
    m.b.empty_tuple().reduce();
    m.put();
    m.b.mark();
    for (i, t) in tensors.iter().enumerate() {
        if i > 0 && i % 1000 == 0 {
            // pickle.py writes SETITEMS in batches of 1000.
            m.b.setitems().mark();
        }
        let key = if legacy {
            format!("9455{i}")
        } else {
            i.to_string()
        };
        m.str(&t.name);
        m.global(&mut seen, "torch._utils", "_rebuild_tensor_v2");
        m.b.mark();
        // persistent id: ('storage', torch.FloatStorage, key, 'cpu', numel[, None])
        m.b.mark();
        m.str("storage");
        m.global(&mut seen, "torch", "FloatStorage");
        m.str(&key);
        m.str("cpu");
        m.b.int(t.numel());
        if legacy {
            m.b.none();
        }
        m.tuple_end(6);
        m.b.binpersid();
        m.b.int(0);
        m.int_tuple(&t.shape);
        let mut stride: Vec<i64> = Vec::new();
        let mut acc = 1;
        for d in t.shape.iter().rev() {
            stride.push(acc);
            acc *= d;
        }
        stride.reverse();
        m.int_tuple(&stride);
        m.b.bool(false);
        m.global(&mut seen, "collections", "OrderedDict");
        m.b.empty_tuple().reduce();
        m.put();
        m.b.tuple();
        m.put();
        m.b.reduce();
        m.put();
        keys.push(key);
    }
    m.b.setitems();
    // state: {'_metadata': OrderedDict([('', {'version': 1}), ('conv1', {'version': 1}), …])}
    m.b.empty_dict();
    m.put();
    m.str("_metadata");
    m.global(&mut seen, "collections", "OrderedDict");
    m.b.empty_tuple().reduce();
    m.put();
    m.b.mark();
    for module in ["", "conv1", "fc"] {
        m.str(module);
        m.b.empty_dict();
        m.put();
        m.str("version");
        m.b.int(1).setitem();
    }
    m.b.setitems().setitem().build().stop();
    keys
}

/// The `data.pkl` of a zip-format `torch.save(model.state_dict())`.
pub fn torch_state_dict(tensors: &[TensorSpec]) -> Vec<u8> {
    let mut m = Memo2::new();
    state_dict_object(&mut m, tensors, false);
    m.b.into_bytes()
}

/// A legacy (pre-1.6, `_use_new_zipfile_serialization=False`) `torch.save` stream: magic number, protocol
/// version 1001, `sys_info`, the state dict, the storage keys, then each storage's raw bytes (an 8-byte
/// element count and little-endian float32 data). The float data is chosen to contain `\x80\x02` and
/// opcode-looking bytes, as real weights may.
pub fn torch_legacy(tensors: &[TensorSpec]) -> Vec<u8> {
    torch_legacy_stream(tensors, None)
}

/// [`torch_legacy`] with `sys_info` replaced by another pickle (a payload, for the malicious twin).
pub fn torch_legacy_stream(tensors: &[TensorSpec], sys_info: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = PickleBuilder::new();
    out.proto(2).long1(&encode_long(TORCH_LEGACY_MAGIC)).stop();
    out.proto(2).int(1001).stop();
    if let Some(info) = sys_info {
        out.raw(&info);
    } else {
        out.raw(&sys_info_pickle());
    }
    let mut m = Memo2::new();
    let keys = state_dict_object(&mut m, tensors, true);
    out.raw(&m.b.into_bytes());
    let mut list = PickleBuilder::new();
    list.proto(2).empty_list().binput(0).mark();
    for (i, key) in keys.iter().enumerate() {
        list.binunicode(key).binput((i + 1) as u8);
    }
    list.appends().stop();
    out.raw(&list.into_bytes());
    for t in tensors {
        let numel = t.numel();
        out.raw(&numel.to_le_bytes());
        out.raw(&tricky_floats(numel as usize * 4));
    }
    out.into_bytes()
}

/// The `sys_info` pickle of a legacy `torch.save`.
fn sys_info_pickle() -> Vec<u8> {
    let mut info = PickleBuilder::new();
    info.proto(2).empty_dict().binput(0).mark();
    info.binunicode("protocol_version").binput(1).int(1001);
    info.binunicode("little_endian").binput(2).bool(true);
    info.binunicode("type_sizes")
        .binput(3)
        .empty_dict()
        .binput(4)
        .mark();
    info.binunicode("short")
        .binput(5)
        .int(2)
        .binunicode("int")
        .binput(6)
        .int(4);
    info.binunicode("long").binput(7).int(4).setitems();
    info.setitems().stop();
    info.into_bytes()
}

/// Raw array bytes that look like pickle opcodes: `PROTO 2`, `GLOBAL os system`, `REDUCE`, `STOP`.
pub fn tricky_floats(len: usize) -> Vec<u8> {
    let pattern = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idR.\x80\x04\x95\x00";
    pattern.iter().copied().cycle().take(len).collect()
}

/// Realistic raw array bytes: floats whose encodings contain `PROTO`-looking `\x80\x02`/`\x80\x04` pairs
/// and `FRAME` bytes, but no spelled-out globals (honest data never spells `cos\nsystem\n`).
pub fn noisy_floats(len: usize) -> Vec<u8> {
    let pattern = b"\x80\x02\x00\x00\x00\x00\x80?\xcd\xccL>\x80\x04\x95\x00\x9a\x99\x19\xbf";
    pattern.iter().copied().cycle().take(len).collect()
}

/// Pickle a numpy array the way numpy's `ndarray.__reduce__` does at protocol 2:
/// `_reconstruct(ndarray, (0,), b'b')` then `BUILD (1, shape, dtype, False, raw)`, with the raw data as
/// `_codecs.encode(text, 'latin1')` (what Python 3 writes for bytes at protocol 2).
fn numpy_array_p2(b: &mut PickleBuilder, shape: &[i64], code: &str, data: &[u8]) {
    b.global("numpy.core.multiarray", "_reconstruct");
    b.global("numpy", "ndarray");
    b.int(0).tuple1();
    b.global("_codecs", "encode")
        .binunicode("b")
        .binunicode("latin1")
        .tuple2()
        .reduce();
    b.tuple3().reduce();
    b.mark().int(1);
    for d in shape {
        b.int(*d);
    }
    match shape.len() {
        0 => b.empty_tuple(),
        1 => b.tuple1(),
        2 => b.tuple2(),
        3 => b.tuple3(),
        _ => unreachable!("arrays here have at most three dimensions"),
    };
    numpy_dtype(b, code, -1);
    b.bool(false);
    let latin1: String = data.iter().map(|c| char::from(*c)).collect();
    b.global("_codecs", "encode")
        .binunicode(&latin1)
        .binunicode("latin1")
        .tuple2()
        .reduce();
    b.tuple().build();
}

/// `numpy.dtype(code, False, True)` with its `BUILD` state `(3, '<', None, None, None, elsize, -1, 0)`.
fn numpy_dtype(b: &mut PickleBuilder, code: &str, elsize: i64) {
    b.global("numpy", "dtype")
        .binunicode(code)
        .bool(false)
        .bool(true)
        .tuple3()
        .reduce();
    b.mark()
        .int(3)
        .binunicode("<")
        .none()
        .none()
        .none()
        .int(elsize)
        .int(-1)
        .int(0)
        .tuple()
        .build();
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A fitted scikit-learn `LogisticRegression` at protocol 2: `NEWOBJ` of the class, then `BUILD` with its
/// `__dict__` holding numpy arrays (`coef_`, `intercept_`, `classes_`).
pub fn sklearn_logistic_regression() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2)
        .global("sklearn.linear_model._logistic", "LogisticRegression")
        .empty_tuple()
        .newobj();
    b.empty_dict().mark();
    b.binunicode("penalty").binunicode("l2");
    b.binunicode("C").binfloat(1.0);
    b.binunicode("solver").binunicode("lbfgs");
    b.binunicode("max_iter").int(100);
    b.binunicode("n_features_in_").int(4);
    b.binunicode("classes_");
    numpy_array_p2(
        &mut b,
        &[2],
        "i8",
        &[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    );
    b.binunicode("coef_");
    numpy_array_p2(&mut b, &[1, 4], "f8", &f64_bytes(&[0.5, -1.25, 2.0, 0.125]));
    b.binunicode("intercept_");
    numpy_array_p2(&mut b, &[1], "f8", &f64_bytes(&[-0.75]));
    b.binunicode("_sklearn_version").binunicode("1.4.2");
    b.setitems().build().stop();
    b.into_bytes()
}

/// The same estimator at protocol 0, as `copyreg._reconstructor` pickles new-style objects there.
pub fn sklearn_protocol0() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.global("copy_reg", "_reconstructor").put(0).mark();
    b.global("sklearn.linear_model._logistic", "LogisticRegression")
        .put(1);
    b.global("__builtin__", "object")
        .put(2)
        .none()
        .tuple()
        .put(3)
        .reduce()
        .put(4);
    b.mark().unicode("penalty").put(5).unicode("l2").put(6);
    b.unicode("max_iter").put(7).int_text(100);
    b.unicode("tol").put(8).float_text(0.0001);
    b.unicode("_sklearn_version")
        .put(9)
        .unicode("1.4.2")
        .put(10)
        .dict()
        .put(11)
        .build()
        .stop();
    b.into_bytes()
}

/// One joblib `NumpyArrayWrapper` followed by its inline data, as `joblib.dump` (protocol 4) writes it.
/// With `aligned`, the wrapper state carries `numpy_array_alignment_bytes` and a padding block precedes
/// the data (joblib ≥ 1.2).
fn joblib_array(b: &mut PickleBuilder, shape: &[i64], code: &str, data: &[u8], aligned: bool) {
    b.stack_global_of("joblib.numpy_pickle", "NumpyArrayWrapper")
        .empty_tuple()
        .newobj()
        .memoize();
    b.empty_dict().memoize().mark();
    b.text("subclass")
        .memoize()
        .stack_global_of("numpy", "ndarray");
    b.text("shape").memoize();
    for d in shape {
        b.int(*d);
    }
    match shape.len() {
        0 => b.empty_tuple(),
        1 => b.tuple1(),
        2 => b.tuple2(),
        _ => b.tuple3(),
    };
    b.memoize();
    b.text("order").memoize().text("C").memoize();
    b.text("dtype").memoize();
    b.stack_global_of("numpy", "dtype")
        .text(code)
        .memoize()
        .bool(false)
        .bool(true)
        .tuple3()
        .memoize()
        .reduce()
        .memoize();
    b.mark()
        .int(3)
        .text("<")
        .memoize()
        .none()
        .none()
        .none()
        .int(-1)
        .int(-1)
        .int(0)
        .tuple()
        .memoize()
        .build();
    b.text("allow_mmap").memoize().bool(true);
    if aligned {
        b.text("numpy_array_alignment_bytes").memoize().int(16);
    }
    b.setitems().build();
    if aligned {
        // joblib pads from the current file position to a multiple of 16 after the length byte.
        let pad = 16 - ((b.len() + 1) % 16);
        b.raw(&[pad as u8]).raw(&vec![0xff; pad]);
    }
    b.raw(data);
}

/// A joblib dump of a dict of two float arrays. The inline bytes contain `\x80\x02` and other opcode-like
/// bytes on purpose (see [`noisy_floats`]).
pub fn joblib_arrays(aligned: bool) -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4).empty_dict().memoize().mark();
    b.text("weights").memoize();
    joblib_array(&mut b, &[4, 8], "f8", &noisy_floats(4 * 8 * 8), aligned);
    b.text("bias").memoize();
    joblib_array(&mut b, &[8], "f4", &noisy_floats(8 * 4), aligned);
    b.text("n_iter").memoize().int(12);
    b.setitems().stop();
    b.into_bytes()
}

/// A joblib dump whose payload hides *after* an inline array: a scanner that does not skip the array bytes
/// exactly desynchronises and never reaches the `os.system` call.
pub fn joblib_payload_after_array() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4).empty_dict().memoize().mark();
    b.text("weights").memoize();
    // The array bytes end in an unterminated text opcode (`V…`): a parser that reads them as opcodes
    // swallows the payload below as part of a line and never sees it.
    let mut data = tricky_floats(32 * 8 - 2);
    data.extend_from_slice(b"\x00V");
    joblib_array(&mut b, &[32], "f8", &data, true);
    b.text("hook").memoize();
    b.stack_global_of("os", "system")
        .text(COMMAND)
        .memoize()
        .tuple1()
        .reduce()
        .memoize();
    b.setitems().stop();
    b.into_bytes()
}

/// A joblib-looking dump whose "array bytes" are opcodes: joblib skips them, but `pickle.load` and
/// `torch.load` (which know nothing of NumpyArrayWrapper) execute them.
pub fn joblib_wrapper_hiding_opcodes() -> Vec<u8> {
    let payload = b"cos\nsystem\nX\x02\x00\x00\x00id\x85R0";
    let mut b = PickleBuilder::new();
    b.proto(2).empty_dict().mark();
    b.text("weights");
    joblib_array(&mut b, &[payload.len() as i64], "u1", payload, false);
    b.setitems().stop();
    b.into_bytes()
}

/// joblib's NDArrayWrapper (joblib < 0.10): its BUILD makes joblib `np.load` a side file with
/// `allow_pickle=True`, and np.load falls back to unpickling anything that is not npy.
pub fn joblib_ndarray_wrapper_side_file() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2).global("joblib.numpy_pickle", "NDArrayWrapper");
    b.empty_tuple().newobj().empty_dict().mark();
    b.text("filename").text("../../tmp/payload.pkl");
    b.text("subclass").global("numpy", "ndarray");
    b.text("allow_mmap").bool(false);
    b.setitems().build().stop();
    b.into_bytes()
}

/// A REDUCE whose callable is the result of another call (`OrderedDict()()`): the allow-list judges
/// imports, so a call of a computed object must be judged on its own.
pub fn computed_callable() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2).global("collections", "OrderedDict");
    b.empty_tuple().reduce().empty_tuple().reduce().stop();
    b.into_bytes()
}

/// A joblib dump of an object array: the wrapper's inline data is a complete nested pickle (protocol 2).
pub fn joblib_object_array(payload: bool) -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4);
    b.stack_global_of("joblib.numpy_pickle", "NumpyArrayWrapper")
        .empty_tuple()
        .newobj()
        .memoize();
    b.empty_dict().memoize().mark();
    b.text("shape").memoize().int(2).tuple1();
    b.text("order").memoize().text("C");
    b.text("dtype").memoize();
    b.stack_global_of("numpy", "dtype")
        .text("O8")
        .bool(false)
        .bool(true)
        .tuple3()
        .reduce();
    b.mark()
        .int(3)
        .text("|")
        .none()
        .none()
        .none()
        .int(-1)
        .int(-1)
        .int(63)
        .tuple()
        .build();
    b.text("allow_mmap").bool(false);
    b.setitems().build();
    // The nested pickle: a list of two strings, or an os.system call.
    if payload {
        b.raw(&os_system(COMMAND));
    } else {
        let mut inner = PickleBuilder::new();
        inner
            .proto(2)
            .empty_list()
            .binput(0)
            .mark()
            .binunicode("a")
            .binunicode("b")
            .appends()
            .stop();
        b.raw(&inner.into_bytes());
    }
    b.memoize().stop();
    b.into_bytes()
}

/// A training checkpoint with an `argparse.Namespace` of hyper-parameters.
pub fn argparse_checkpoint() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2).empty_dict().binput(0).mark();
    b.binunicode("epoch").int(3);
    b.binunicode("args")
        .global("argparse", "Namespace")
        .binput(1)
        .empty_tuple()
        .newobj()
        .binput(2);
    b.empty_dict()
        .binput(3)
        .mark()
        .binunicode("lr")
        .binfloat(0.1)
        .binunicode("epochs")
        .int(10);
    b.binunicode("arch")
        .binunicode("resnet18")
        .setitems()
        .build();
    b.binunicode("best_acc").binfloat(0.913);
    b.setitems().stop();
    b.into_bytes()
}

/// `{set, frozenset, complex, slice}` values as protocol 2 writes them (`__builtin__` names via `fix_imports`)
/// followed by a protocol 4 set/frozenset with `EMPTY_SET`/`ADDITEMS`/`FROZENSET`.
pub fn builtin_types() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2).mark();
    b.global("__builtin__", "set")
        .empty_list()
        .mark()
        .int(1)
        .int(2)
        .appends()
        .tuple1()
        .reduce();
    b.global("__builtin__", "frozenset")
        .empty_list()
        .mark()
        .binunicode("a")
        .appends()
        .tuple1()
        .reduce();
    b.global("__builtin__", "complex")
        .binfloat(1.0)
        .binfloat(-2.0)
        .tuple2()
        .reduce();
    b.global("__builtin__", "slice")
        .int(1)
        .int(10)
        .none()
        .tuple3()
        .reduce();
    b.list().stop();
    b.proto(4)
        .empty_set()
        .mark()
        .int(1)
        .int(2)
        .additems()
        .mark()
        .text("x")
        .frozenset()
        .tuple2()
        .stop();
    b.into_bytes()
}

/// `collections.defaultdict(list)`, `Counter` and `deque` values.
pub fn collections_types() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(2).mark();
    b.global("collections", "defaultdict")
        .global("__builtin__", "list")
        .tuple1()
        .reduce();
    b.mark().binunicode("k").empty_list().setitems();
    b.global("collections", "Counter")
        .empty_dict()
        .mark()
        .binunicode("a")
        .int(2)
        .binunicode("b")
        .int(1)
        .setitems();
    b.tuple1().reduce();
    b.global("collections", "deque")
        .empty_list()
        .mark()
        .int(1)
        .int(2)
        .int(3)
        .appends()
        .none()
        .tuple2()
        .reduce();
    b.tuple().stop();
    b.into_bytes()
}

/// A benign multi-pickle stream: two plain pickles back to back, as `pickle.dump` twice to one file.
pub fn two_plain_pickles() -> Vec<u8> {
    let mut b = PickleBuilder::new();
    b.proto(4).text("first").memoize().stop();
    b.proto(4)
        .empty_dict()
        .memoize()
        .text("epoch")
        .memoize()
        .int(5)
        .setitem()
        .stop();
    b.into_bytes()
}

/// zlib-compress `data` (for nested-payload variants).
pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Malicious and benign cases of this format.
pub fn corpus() -> Vec<Case> {
    let critical = "AEG-SCAN-101";
    let mut cases = vec![
        Case::malicious(
            "pickle/joblib-wrapper-hides-opcodes",
            "model.pt",
            joblib_wrapper_hiding_opcodes(),
            critical,
            "opcodes disguised as joblib inline array bytes, run by pickle.load/torch.load",
        ),
        Case::malicious(
            "pickle/joblib-ndarray-wrapper-side-file",
            "model.joblib",
            joblib_ndarray_wrapper_side_file(),
            critical,
            "legacy joblib NDArrayWrapper loading a side file with allow_pickle",
        ),
        Case::malicious(
            "pickle/computed-callable",
            "model.pkl",
            computed_callable(),
            "AEG-SCAN-109",
            "REDUCE on the result of another call",
        ),
        Case::benign(
            "pickle/torch-state-dict",
            "pytorch_model.bin",
            torch_state_dict(&small_model()),
            "torch.save state dict (protocol 2, persistent storages)",
        ),
        Case::benign(
            "pickle/torch-legacy",
            "model.pt",
            torch_legacy(&small_model()),
            "legacy torch.save multi-pickle stream with raw storage",
        ),
        Case::benign(
            "pickle/sklearn-logistic",
            "model.pkl",
            sklearn_logistic_regression(),
            "scikit-learn estimator with numpy arrays",
        ),
        Case::benign(
            "pickle/sklearn-protocol0",
            "model.pkl",
            sklearn_protocol0(),
            "protocol 0 copyreg._reconstructor estimator",
        ),
        Case::benign(
            "pickle/joblib-arrays",
            "model.joblib",
            joblib_arrays(false),
            "joblib inline arrays (no alignment)",
        ),
        Case::benign(
            "pickle/joblib-arrays-aligned",
            "model.joblib",
            joblib_arrays(true),
            "joblib inline arrays with alignment padding",
        ),
        Case::benign(
            "pickle/joblib-object-array",
            "model.joblib",
            joblib_object_array(false),
            "joblib object array (nested pickle)",
        ),
        Case::benign(
            "pickle/argparse-checkpoint",
            "checkpoint.pth",
            argparse_checkpoint(),
            "checkpoint with argparse.Namespace",
        ),
        Case::benign(
            "pickle/builtin-types",
            "data.pkl",
            builtin_types(),
            "set/frozenset/complex/slice",
        ),
        Case::benign(
            "pickle/collections-types",
            "noext",
            collections_types(),
            "defaultdict/Counter/deque",
        ),
        Case::benign(
            "pickle/two-plain-pickles",
            "data.dat",
            two_plain_pickles(),
            "two pickles in one stream",
        ),
        Case::malicious(
            "pickle/os-system-reduce",
            "model.pkl",
            os_system(COMMAND),
            critical,
            "GLOBAL os.system + REDUCE",
        ),
        Case::malicious(
            "pickle/posix-system-proto0",
            "noext",
            posix_system_proto0(COMMAND),
            critical,
            "posix.system at protocol 0",
        ),
        Case::malicious(
            "pickle/stack-global-memoized",
            "pytorch_model.bin",
            stack_global_memoized(),
            critical,
            "STACK_GLOBAL from memoized strings",
        ),
        Case::malicious(
            "pickle/stack-global-runtime-name",
            "model.pkl",
            stack_global_runtime_name(),
            "AEG-SCAN-103",
            "STACK_GLOBAL with a module name computed by str.join",
        ),
        Case::malicious(
            "pickle/stack-global-rot13-name",
            "model.pkl",
            stack_global_rot13_name(),
            critical,
            "STACK_GLOBAL with a rot13-decoded name",
        ),
        Case::malicious(
            "pickle/getattr-import-chain",
            "model.pkl",
            getattr_import_chain(),
            critical,
            "getattr(__import__('os'), 'system')",
        ),
        Case::malicious(
            "pickle/builtin-eval",
            "data.dat",
            builtin_eval_proto0(),
            critical,
            "__builtin__.eval of a source string",
        ),
        Case::malicious(
            "pickle/builtin-exec",
            "model.pkl",
            builtin_exec(),
            critical,
            "builtins.exec via STACK_GLOBAL",
        ),
        Case::malicious(
            "pickle/memo-collision-second-pickle",
            "data.dat",
            memo_collision_second_pickle(),
            critical,
            "payload in the second pickle reusing memo indices",
        ),
        Case::malicious(
            "pickle/put-memoize-mix",
            "model.pkl",
            put_memoize_mix(),
            critical,
            "PUT/MEMOIZE mix that desynchronises approximate memo tracking",
        ),
        Case::malicious(
            "pickle/build-slot-state-class",
            "model.pkl",
            build_slot_state_on_class(),
            "AEG-SCAN-104",
            "BUILD slot state on a class",
        ),
        Case::malicious(
            "pickle/build-dict-module",
            "model.pkl",
            build_dict_on_module(),
            "AEG-SCAN-104",
            "BUILD dict state on a module",
        ),
        Case::malicious(
            "pickle/inst-os-system",
            "noext",
            inst_os_system(),
            critical,
            "INST os system",
        ),
        Case::malicious(
            "pickle/obj-os-system",
            "model.pkl",
            obj_os_system(),
            critical,
            "OBJ with os.system",
        ),
        Case::malicious(
            "pickle/newobj-ex-popen",
            "model.pkl",
            newobj_ex_popen(),
            critical,
            "NEWOBJ_EX subprocess.Popen",
        ),
        Case::malicious(
            "pickle/nested-pickle-loads",
            "model.pkl",
            nested_pickle_loads(),
            critical,
            "pickle.loads of an embedded payload",
        ),
        Case::malicious(
            "pickle/nested-base64-loads",
            "model.pkl",
            nested_base64_loads(),
            critical,
            "pickle.loads(base64.b64decode(...))",
        ),
        Case::malicious(
            "pickle/marshal-function",
            "model.pkl",
            marshal_function(),
            critical,
            "types.FunctionType(marshal.loads(...))",
        ),
        Case::malicious(
            "pickle/torch-load-from-bytes",
            "pytorch_model.bin",
            torch_load_from_bytes(),
            critical,
            "torch.storage._load_from_bytes of an embedded payload",
        ),
        Case::malicious(
            "pickle/payload-after-garbage",
            "model.pkl",
            payload_after_garbage(),
            critical,
            "payload after garbage (resynchronisation)",
        ),
        Case::malicious(
            "pickle/dotted-glob-os-system",
            "model.pkl",
            dotted_glob_os_system(),
            critical,
            "find_class('glob', 'os.system') attribute walk",
        ),
        Case::malicious(
            "pickle/ext-opcode",
            "model.pkl",
            ext_call(),
            "AEG-SCAN-103",
            "EXT1 extension-registry global",
        ),
        Case::malicious(
            "pickle/unknown-module",
            "model.pkl",
            unknown_module_call(),
            "AEG-SCAN-102",
            "global outside the allow-list",
        ),
        Case::malicious(
            "pickle/joblib-payload-after-array",
            "model.joblib",
            joblib_payload_after_array(),
            critical,
            "payload after joblib inline array bytes",
        ),
        Case::malicious(
            "pickle/joblib-object-array-payload",
            "model.joblib",
            joblib_object_array(true),
            critical,
            "payload in a joblib object array's nested pickle",
        ),
    ];
    cases.push(Case::malicious(
        "pickle/torch-legacy-payload",
        "model.pt",
        torch_legacy_stream(&small_model(), Some(os_system(COMMAND))),
        critical,
        "payload in the sys_info pickle of a legacy torch.save stream",
    ));
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_writes_documented_bytes() {
        assert_eq!(
            os_system("id"),
            b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
        );
        assert_eq!(
            encode_long(TORCH_LEGACY_MAGIC),
            [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]
        );
        assert_eq!(encode_long(255), [0xff, 0x00]);
        assert_eq!(encode_long(-1), [0xff]);
        assert_eq!(encode_long(-256), [0x00, 0xff]);
        let mut b = PickleBuilder::new();
        b.int(5).int(300).int(-1).int(1 << 40);
        assert_eq!(
            b.to_vec(),
            b"K\x05M\x2c\x01J\xff\xff\xff\xff\x8a\x06\x00\x00\x00\x00\x00\x01"
        );
        let mut b = PickleBuilder::new();
        b.string(b"a'b\\").unicode("é\n");
        assert_eq!(b.to_vec(), b"S'a\\'b\\\\'\nV\xe9\\u000a\n");
    }

    #[test]
    fn corpus_names_are_unique_and_pickles_end_in_stop() {
        let cases = corpus();
        let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cases.len());
        for case in &cases {
            assert!(case.bytes.len() > 4, "{}", case.name);
            assert!(
                case.malicious == case.expect_rule.is_some(),
                "{}",
                case.name
            );
        }
        assert_eq!(base64_encode(b"id"), "aWQ=");
        assert_eq!(base64_encode(b"abc"), "YWJj");
    }
}
