//! Pickle opcode bytes of protocols 0–5, their names and the protocol that introduced them, as listed in
//! CPython's `Lib/pickletools.py`. Only the emulator uses these; they are public so tests and the scanner
//! can name opcodes without repeating the table.

#![allow(missing_docs)]

pub const MARK: u8 = b'(';
pub const STOP: u8 = b'.';
pub const POP: u8 = b'0';
pub const POP_MARK: u8 = b'1';
pub const DUP: u8 = b'2';
pub const FLOAT: u8 = b'F';
pub const INT: u8 = b'I';
pub const BININT: u8 = b'J';
pub const BININT1: u8 = b'K';
pub const LONG: u8 = b'L';
pub const BININT2: u8 = b'M';
pub const NONE: u8 = b'N';
pub const PERSID: u8 = b'P';
pub const BINPERSID: u8 = b'Q';
pub const REDUCE: u8 = b'R';
pub const STRING: u8 = b'S';
pub const BINSTRING: u8 = b'T';
pub const SHORT_BINSTRING: u8 = b'U';
pub const UNICODE: u8 = b'V';
pub const BINUNICODE: u8 = b'X';
pub const APPEND: u8 = b'a';
pub const BUILD: u8 = b'b';
pub const GLOBAL: u8 = b'c';
pub const DICT: u8 = b'd';
pub const EMPTY_DICT: u8 = b'}';
pub const APPENDS: u8 = b'e';
pub const GET: u8 = b'g';
pub const BINGET: u8 = b'h';
pub const INST: u8 = b'i';
pub const LONG_BINGET: u8 = b'j';
pub const LIST: u8 = b'l';
pub const EMPTY_LIST: u8 = b']';
pub const OBJ: u8 = b'o';
pub const PUT: u8 = b'p';
pub const BINPUT: u8 = b'q';
pub const LONG_BINPUT: u8 = b'r';
pub const SETITEM: u8 = b's';
pub const TUPLE: u8 = b't';
pub const EMPTY_TUPLE: u8 = b')';
pub const SETITEMS: u8 = b'u';
pub const BINFLOAT: u8 = b'G';
pub const PROTO: u8 = 0x80;
pub const NEWOBJ: u8 = 0x81;
pub const EXT1: u8 = 0x82;
pub const EXT2: u8 = 0x83;
pub const EXT4: u8 = 0x84;
pub const TUPLE1: u8 = 0x85;
pub const TUPLE2: u8 = 0x86;
pub const TUPLE3: u8 = 0x87;
pub const NEWTRUE: u8 = 0x88;
pub const NEWFALSE: u8 = 0x89;
pub const LONG1: u8 = 0x8a;
pub const LONG4: u8 = 0x8b;
pub const BINBYTES: u8 = b'B';
pub const SHORT_BINBYTES: u8 = b'C';
pub const SHORT_BINUNICODE: u8 = 0x8c;
pub const BINUNICODE8: u8 = 0x8d;
pub const BINBYTES8: u8 = 0x8e;
pub const EMPTY_SET: u8 = 0x8f;
pub const ADDITEMS: u8 = 0x90;
pub const FROZENSET: u8 = 0x91;
pub const NEWOBJ_EX: u8 = 0x92;
pub const STACK_GLOBAL: u8 = 0x93;
pub const MEMOIZE: u8 = 0x94;
pub const FRAME: u8 = 0x95;
pub const BYTEARRAY8: u8 = 0x96;
pub const NEXT_BUFFER: u8 = 0x97;
pub const READONLY_BUFFER: u8 = 0x98;

/// Highest protocol CPython reads.
pub const HIGHEST_PROTOCOL: u8 = 5;

/// The opcode's name and the protocol that introduced it, or `None` for a byte that is no opcode.
pub fn info(op: u8) -> Option<(&'static str, u8)> {
    Some(match op {
        MARK => ("MARK", 0),
        STOP => ("STOP", 0),
        POP => ("POP", 0),
        POP_MARK => ("POP_MARK", 1),
        DUP => ("DUP", 0),
        FLOAT => ("FLOAT", 0),
        INT => ("INT", 0),
        BININT => ("BININT", 1),
        BININT1 => ("BININT1", 1),
        LONG => ("LONG", 0),
        BININT2 => ("BININT2", 1),
        NONE => ("NONE", 0),
        PERSID => ("PERSID", 0),
        BINPERSID => ("BINPERSID", 1),
        REDUCE => ("REDUCE", 0),
        STRING => ("STRING", 0),
        BINSTRING => ("BINSTRING", 1),
        SHORT_BINSTRING => ("SHORT_BINSTRING", 1),
        UNICODE => ("UNICODE", 0),
        BINUNICODE => ("BINUNICODE", 1),
        APPEND => ("APPEND", 0),
        BUILD => ("BUILD", 0),
        GLOBAL => ("GLOBAL", 0),
        DICT => ("DICT", 0),
        EMPTY_DICT => ("EMPTY_DICT", 1),
        APPENDS => ("APPENDS", 1),
        GET => ("GET", 0),
        BINGET => ("BINGET", 1),
        INST => ("INST", 0),
        LONG_BINGET => ("LONG_BINGET", 1),
        LIST => ("LIST", 0),
        EMPTY_LIST => ("EMPTY_LIST", 1),
        OBJ => ("OBJ", 1),
        PUT => ("PUT", 0),
        BINPUT => ("BINPUT", 1),
        LONG_BINPUT => ("LONG_BINPUT", 1),
        SETITEM => ("SETITEM", 0),
        TUPLE => ("TUPLE", 0),
        EMPTY_TUPLE => ("EMPTY_TUPLE", 1),
        SETITEMS => ("SETITEMS", 1),
        BINFLOAT => ("BINFLOAT", 1),
        PROTO => ("PROTO", 2),
        NEWOBJ => ("NEWOBJ", 2),
        EXT1 => ("EXT1", 2),
        EXT2 => ("EXT2", 2),
        EXT4 => ("EXT4", 2),
        TUPLE1 => ("TUPLE1", 2),
        TUPLE2 => ("TUPLE2", 2),
        TUPLE3 => ("TUPLE3", 2),
        NEWTRUE => ("NEWTRUE", 2),
        NEWFALSE => ("NEWFALSE", 2),
        LONG1 => ("LONG1", 2),
        LONG4 => ("LONG4", 2),
        BINBYTES => ("BINBYTES", 3),
        SHORT_BINBYTES => ("SHORT_BINBYTES", 3),
        SHORT_BINUNICODE => ("SHORT_BINUNICODE", 4),
        BINUNICODE8 => ("BINUNICODE8", 4),
        BINBYTES8 => ("BINBYTES8", 4),
        EMPTY_SET => ("EMPTY_SET", 4),
        ADDITEMS => ("ADDITEMS", 4),
        FROZENSET => ("FROZENSET", 4),
        NEWOBJ_EX => ("NEWOBJ_EX", 4),
        STACK_GLOBAL => ("STACK_GLOBAL", 4),
        MEMOIZE => ("MEMOIZE", 4),
        FRAME => ("FRAME", 4),
        BYTEARRAY8 => ("BYTEARRAY8", 5),
        NEXT_BUFFER => ("NEXT_BUFFER", 5),
        READONLY_BUFFER => ("READONLY_BUFFER", 5),
        _ => return None,
    })
}

/// The opcode's name, or `"?"`.
pub fn name(op: u8) -> &'static str {
    info(op).map_or("?", |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_every_opcode_once() {
        let known: Vec<u8> = (0..=255u8).filter(|b| info(*b).is_some()).collect();
        assert_eq!(known.len(), 68);
        assert_eq!(name(0x99), "?");
        assert_eq!(info(FRAME), Some(("FRAME", 4)));
    }
}
