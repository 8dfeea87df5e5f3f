//! A symbolic emulator of the Python pickle virtual machine (protocols 0–5). It never imports or calls
//! anything: globals become [`Value::Global`] references, calls become [`Value::Object`] records and
//! [`Call`] events. The trace tells `aegis-scan` every callable the real unpickler would have imported and
//! called, with the emulated arguments, so policy decisions rest on exact stack and memo semantics rather than
//! on pattern matching over opcodes.
//!
//! Semantics follow CPython's `Lib/pickle.py` `_Unpickler` (the reference implementation of `_pickle.c`):
//! - the memo is reset at each `STOP` (every `pickle.load` call starts a fresh unpickler), so multi-pickle
//!   streams such as legacy `torch.save` files resolve each pickle's `GET`s against its own memo;
//! - `MEMOIZE` stores at `len(memo)`, `PUT`/`BINPUT`/`LONG_BINPUT` at an explicit index; both may be mixed;
//! - `STACK_GLOBAL` takes module and name from emulated stack values; if either is not a constant string the
//!   name is computed at run time and the global is reported as dynamic: the non-constant part is described
//!   as `<rendered value>` in both the [`GlobalRef`] and the pushed [`Value::Global`], so a later `REDUCE`
//!   still records a [`Call`] whose callee is that dynamic global. `EXT1/2/4` push
//!   `Value::Global { module: "copyreg.extension", name: "<code>" }`, also recorded as dynamic;
//! - a few pure functions are evaluated when their inputs are complete constants, so payload chains resolve:
//!   base64/binascii/codecs decoders, `bytes.fromhex`, `zlib.decompress` (bounded), `bytes`/`bytearray`,
//!   `str.encode`, `getattr(global, "attr")` (giving `Value::Global { name: "name.attr" }`) and
//!   `__import__`/`importlib.import_module` (giving `Value::Global { name: "" }`, the module). The call is
//!   recorded either way; globals reached only through `getattr`/`__import__` appear as callees and
//!   arguments of [`Call`]s, not in [`Trace::globals`];
//! - every other call yields a [`Value::Object`]; [`Call::callee`] and [`Call::args`] are depth-bounded
//!   snapshots taken at the call (they never alias the emulation's mutable containers);
//! - dotted names (protocol 4 `find_class` walks attributes) are kept whole: `("glob", "os.system")` is
//!   reported as module `glob`, name `os.system`, and the scanner resolves the walk;
//! - joblib's `NumpyArrayWrapper` BUILD is followed by raw array bytes (or a nested pickle for object
//!   arrays) which are skipped (or emulated) exactly as joblib's unpickler reads them;
//! - after bytes that are not a valid opcode (or a stack underflow, or a length CPython rejects), the
//!   emulator records an anomaly and resynchronises on the next `PROTO` opcode (`0x80` then 2–5) with a fresh
//!   stack and memo, so the rest of the file is still read; bytes after the last `STOP` that are not a pickle
//!   are one `TrailingData` anomaly;
//! - legacy `torch.save` streams (first pickle is the magic number `0x1950a86a20f9469cfc6c`) hold five
//!   pickles followed by raw storage bytes, which are not read ([`Trace::torch_legacy`]).
//!
//! Memory is bounded by [`crate::Limits`]: long constants keep a prefix, containers keep a bounded number of
//! items, calls are kept per callable up to a bound and otherwise counted, so a 256 MiB pickle is streamed in
//! flat memory.

mod eval;
mod joblib;
pub mod opcodes;
mod reader;
mod state;
pub mod tensors;
mod text;
mod value;
mod vm;

#[cfg(test)]
mod tests;

pub use value::{ObjectKind, PyObject, Value};
pub use vm::{emulate, Emulator};

/// Everything the emulator learned from one stream.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Highest protocol announced by a `PROTO` opcode (0 or 1 when none and only text/binary opcodes seen).
    pub protocol: Option<u8>,
    /// Number of complete pickles (`STOP` opcodes) in the stream.
    pub pickles: u32,
    /// Opcodes executed.
    pub opcodes: u64,
    /// Bytes consumed from the stream.
    pub bytes: u64,
    /// Every distinct global imported, in order of first appearance.
    pub globals: Vec<GlobalRef>,
    /// Calls made by the pickle (REDUCE, INST, OBJ, NEWOBJ, NEWOBJ_EX, BUILD), bounded per callable.
    pub calls: Vec<Call>,
    /// Persistent ids loaded (`PERSID`/`BINPERSID`): PyTorch storages use these.
    pub persistent_ids: u64,
    /// Structural oddities: garbage, underflows, memo misses, limits hit, resynchronisation.
    pub anomalies: Vec<Anomaly>,
    /// The stream is a legacy (pre-zip) `torch.save` file: its first pickle is the magic number, and the
    /// bytes after its fifth pickle are raw tensor storage, which was not read.
    pub torch_legacy: bool,
    /// joblib `NumpyArrayWrapper` arrays whose inline data was skipped (or whose nested pickle was emulated).
    pub joblib_arrays: u64,
    /// PyTorch storages declared by persistent ids (bounded; see [`tensors`]).
    pub storages: Vec<tensors::StorageDecl>,
    /// Tensor views built over declared storages (bounded).
    pub tensor_views: Vec<tensors::TensorView>,
    /// Item opcodes applied to tensors (bounded).
    pub tensor_writes: Vec<tensors::TensorWrite>,
}

/// A global the unpickler would import (`find_class(module, name)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRef {
    /// Module, e.g. `torch._utils`.
    pub module: String,
    /// Qualified name, possibly dotted (attribute walk), e.g. `_rebuild_tensor_v2` or `os.system`.
    pub name: String,
    /// Offset of the first opcode that imported it.
    pub offset: u64,
    /// Opcode that imported it: `GLOBAL`, `STACK_GLOBAL`, `INST` or `EXT1/2/4`.
    pub opcode: &'static str,
    /// How many times it was imported.
    pub count: u64,
    /// Whether module or name was computed at run time (not a constant string). `module`/`name` then hold a
    /// description of the emulated value.
    pub dynamic: bool,
}

/// What made a call happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// `REDUCE`: `callable(*args)`.
    Reduce,
    /// `INST`: protocol 0 class instantiation.
    Inst,
    /// `OBJ`: protocol 1 class instantiation.
    Obj,
    /// `NEWOBJ`: `cls.__new__(cls, *args)`.
    NewObj,
    /// `NEWOBJ_EX`: `cls.__new__(cls, *args, **kwargs)`.
    NewObjEx,
    /// `BUILD`: `obj.__setstate__(state)` or `obj.__dict__.update(state)` plus `setattr` for slot state.
    Build,
}

impl CallKind {
    /// The opcode name.
    pub fn opcode(self) -> &'static str {
        match self {
            CallKind::Reduce => "REDUCE",
            CallKind::Inst => "INST",
            CallKind::Obj => "OBJ",
            CallKind::NewObj => "NEWOBJ",
            CallKind::NewObjEx => "NEWOBJ_EX",
            CallKind::Build => "BUILD",
        }
    }
}

/// One call the unpickler would make.
#[derive(Debug, Clone)]
pub struct Call {
    /// What is called. For REDUCE/NEWOBJ this is the emulated callable or class; for BUILD it is the object
    /// being built (its `__setstate__` runs) — a [`Value::Global`] here means a class or module is mutated.
    pub callee: Value,
    /// How.
    pub kind: CallKind,
    /// Offset of the opcode.
    pub offset: u64,
    /// The emulated arguments (a tuple for REDUCE/OBJ/NEWOBJ, `(args, kwargs)` for NEWOBJ_EX, the state for
    /// BUILD).
    pub args: Value,
    /// For BUILD: whether the state was a `(dict, slotstate)` pair with a non-empty slot state (`setattr`).
    pub slot_state: bool,
    /// Times this callable was called with this kind (only the first few calls are kept as separate entries).
    pub count: u64,
}

/// A structural oddity found while emulating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Which kind.
    pub kind: AnomalyKind,
    /// Stream offset.
    pub offset: u64,
    /// Human detail (opcode byte, indices, which limit).
    pub detail: String,
}

/// Kinds of [`Anomaly`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// A byte that is not an opcode of any protocol.
    UnknownOpcode,
    /// An opcode popped more than the stack (or mark stack) held.
    StackUnderflow,
    /// `GET` of a memo index never `PUT` in the current pickle.
    MemoMiss,
    /// The stream ended inside an opcode or before `STOP`.
    Truncated,
    /// Bytes after the last `STOP` that are not a pickle.
    TrailingData,
    /// The emulator skipped garbage and resumed at a `PROTO` opcode.
    Resynchronised,
    /// An opcode newer than the announced protocol (loaders accept it, but writers never emit it).
    ProtocolMismatch,
    /// A bound from [`crate::Limits`] was hit; the detail names it.
    LimitHit,
    /// A value of the wrong type for the opcode (e.g. `SETITEMS` on a non-dict, `REDUCE` args not a tuple).
    TypeConfusion,
    /// A joblib array header could not be interpreted, so its raw bytes could not be skipped exactly.
    JoblibArray,
}
