//! The emulator loop: reads opcodes from a stream and applies CPython's `_Unpickler` semantics to symbolic
//! values, recording every import ([`GlobalRef`]), call ([`Call`]) and oddity ([`Anomaly`]) in a [`Trace`].
//!
//! Assumptions and choices (see the module docs of [`super`] for the semantics):
//! - the stream may hold several pickles; each `STOP` ends one and the next starts with a fresh stack and memo;
//!   bytes after a `STOP` that fail before their own `STOP` are one `TrailingData` anomaly (or a
//!   `Resynchronised` one when a `PROTO` follows), never one anomaly per byte;
//! - an unknown opcode, a stack underflow or a length CPython rejects ends the pickle: the emulator records
//!   it and resumes at the next `0x80 0x02..=0x05`;
//! - constants beyond [`Limits::max_kept_constant`] (and beyond a per-pickle budget of kept bytes) keep a
//!   prefix; the rest is skipped, never buffered;
//! - every value the emulator drops goes through [`dispose`], which frees deep graphs without recursion, and
//!   every mutable container created by a pickle is emptied when the pickle ends, so reference cycles do not
//!   leak. Calls keep depth-bounded *snapshots* of their callee and arguments.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::rc::{Rc, Weak};

use super::eval;
use super::joblib::{self, ArrayData};
use super::opcodes as op;
use super::reader::{Halt, Input, Step};
use super::state::{dispose, dispose_all, Frame};
use super::tensors;
use super::text;
use super::{Anomaly, AnomalyKind, Call, CallKind, GlobalRef, ObjectKind, PyObject, Trace, Value};
use crate::{Error, Limits, Result};

/// Constants up to this size are always kept whole (names, keys, small payloads).
const SMALL_CONSTANT: usize = 4096;
/// Longest kept line of a name or number argument.
const MAX_LINE: usize = 4096;
/// Anomalies recorded per kind; further ones are dropped after one `LimitHit`.
const MAX_ANOMALIES_PER_KIND: usize = 256;
/// Nodes and depth of the snapshot a [`Call`] keeps of its callee and arguments.
const SNAPSHOT_NODES: usize = 2048;
const SNAPSHOT_DEPTH: usize = 8;
/// Distinct names interned (module and global names repeat a lot).
const MAX_INTERNED: usize = 65_536;
/// Items kept in containers per pickle, over all containers.
const MAX_ITEMS_PER_PICKLE: usize = 1 << 22;
/// The magic number legacy `torch.save` pickles first, `0x1950a86a20f9469cfc6c`.
const TORCH_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// Storage declarations, tensor views and tensor writes kept per stream (a checkpoint has thousands at most).
const MAX_TENSOR_RECORDS: usize = 1 << 16;
/// Pickles a legacy `torch.save` stream holds before its raw storage bytes.
const TORCH_LEGACY_PICKLES: u32 = 5;

/// The pickle VM emulator.
#[derive(Debug)]
pub struct Emulator<'l> {
    limits: &'l Limits,
    base_offset: u64,
    joblib: bool,
    strict: bool,
}

impl<'l> Emulator<'l> {
    /// An emulator bounded by `limits`.
    pub fn new(limits: &'l Limits) -> Self {
        Emulator {
            limits,
            base_offset: 0,
            joblib: true,
            strict: false,
        }
    }

    /// Stop at the first structural error (an unknown opcode, a stack underflow, a memo miss) or at the first
    /// bytes after a `STOP` that do not form a pickle, as `pickle.load` does, instead of resynchronising on
    /// the next `PROTO`. For bytes that are some other format first: only what a real load reaches counts.
    pub fn strict(mut self, on: bool) -> Self {
        self.strict = on;
        self
    }

    /// Whether to read the stream as joblib's unpickler does (skip inline array bytes after a
    /// `NumpyArrayWrapper` BUILD; the default) or as plain `pickle.load`/`torch.load` do (those bytes are
    /// opcodes). The loader of a file is unknown, so the scanner emulates both when a wrapper appears.
    pub fn joblib(mut self, on: bool) -> Self {
        self.joblib = on;
        self
    }

    /// Report offsets relative to an enclosing blob in which the stream starts at `offset`.
    pub fn base_offset(mut self, offset: u64) -> Self {
        self.base_offset = offset;
        self
    }

    /// Emulate every pickle in `reader` until end of stream. Malformed data becomes anomalies; only a read
    /// error (other than end of stream) is an `Err`.
    pub fn run<R: Read>(self, reader: R) -> Result<Trace> {
        let mut machine = Machine::new(self.limits, self.base_offset, reader);
        machine.joblib = self.joblib;
        machine.strict = self.strict;
        match machine.run() {
            Err(Halt::Io(source)) => {
                let offset = self.base_offset.saturating_add(machine.input.offset());
                machine.end_pickle();
                Err(Error::io("pickle", offset, source))
            }
            _ => Ok(machine.finish()),
        }
    }
}

/// Emulate every pickle in `reader` with `limits`.
pub fn emulate<R: Read>(reader: R, limits: &Limits) -> Result<Trace> {
    Emulator::new(limits).run(reader)
}

/// What one opcode did to the control flow.
enum Flow {
    Continue,
    Stop(Value),
}

/// How a pickle ended.
enum PickleEnd {
    /// At its `STOP`.
    Stop,
    /// It was not a pickle (bytes after a previous `STOP` that failed before their own).
    NotAPickle,
}

/// Dedupe key of a callee: its global, the class of an instance, or a kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CalleeKey {
    Global(Rc<str>, Rc<str>),
    Instance(Rc<str>, Rc<str>),
    Unknown(Rc<str>),
    Kind(&'static str),
}

/// Calls kept for one key.
#[derive(Debug, Clone, Copy)]
struct CallSlot {
    kept: usize,
    last: usize,
}

/// A mutable container created by the pickle, emptied when the pickle ends (breaks reference cycles).
enum Tracked {
    Seq(Weak<RefCell<Vec<Value>>>),
    Map(Weak<RefCell<Vec<(Value, Value)>>>),
    Obj(Weak<RefCell<PyObject>>),
}

impl Tracked {
    fn alive(&self) -> bool {
        match self {
            Tracked::Seq(w) => w.strong_count() > 0,
            Tracked::Map(w) => w.strong_count() > 0,
            Tracked::Obj(w) => w.strong_count() > 0,
        }
    }

    /// Empty the container if it still exists.
    fn clear(self) {
        match self {
            Tracked::Seq(w) => {
                if let Some(rc) = w.upgrade() {
                    let items = rc.try_borrow_mut().map(|mut v| std::mem::take(&mut *v));
                    dispose_all(items.unwrap_or_default());
                }
            }
            Tracked::Map(w) => {
                if let Some(rc) = w.upgrade() {
                    let pairs = rc.try_borrow_mut().map(|mut v| std::mem::take(&mut *v));
                    dispose_all(
                        pairs
                            .unwrap_or_default()
                            .into_iter()
                            .flat_map(|(k, v)| [k, v]),
                    );
                }
            }
            Tracked::Obj(w) => {
                if let Some(rc) = w.upgrade() {
                    if let Ok(mut obj) = rc.try_borrow_mut() {
                        let args = std::mem::replace(&mut obj.args, Value::None);
                        let state = obj.state.take();
                        let callable = std::mem::replace(&mut obj.callable, Value::None);
                        drop(obj);
                        dispose_all([args, callable].into_iter().chain(state));
                    }
                }
            }
        }
    }
}

/// Bounds hit so far (each is reported once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Stack,
    Memo,
    ContainerItems,
    PickleItems,
    Pickles,
    Depth,
    Globals,
    Calls,
    KeptBytes,
    Decompressed,
}

impl Bound {
    fn describe(self, limits: &Limits) -> String {
        match self {
            Bound::Stack => format!(
                "max_stack ({}): the bottom of the stack was dropped",
                limits.max_stack
            ),
            Bound::Memo => format!("max_memo ({}): later PUTs are ignored", limits.max_memo),
            Bound::ContainerItems => format!(
                "max_container_items ({}): later items are dropped",
                limits.max_container_items
            ),
            Bound::PickleItems => format!(
                "{MAX_ITEMS_PER_PICKLE} container items per pickle: later items are dropped"
            ),
            Bound::Pickles => format!(
                "max_pickles ({}): the rest of the stream was not read",
                limits.max_pickles
            ),
            Bound::Depth => format!(
                "max_depth ({}): nested joblib pickle not emulated",
                limits.max_depth
            ),
            Bound::Globals => format!(
                "max_entries ({}) distinct globals: later ones are not recorded",
                limits.max_entries
            ),
            Bound::Calls => format!(
                "max_entries ({}) distinct calls: later ones are not recorded",
                limits.max_entries
            ),
            Bound::KeptBytes => {
                "kept constant bytes per pickle: later pure functions were not evaluated".to_owned()
            }
            Bound::Decompressed => format!(
                "max_kept_constant ({}) bytes of decompressed output: the result is a prefix",
                limits.max_kept_constant
            ),
        }
    }
}

/// Labels of unknown values, allocated once.
#[derive(Debug)]
struct Labels {
    memo_miss: Rc<str>,
    lost: Rc<str>,
    cut: Rc<str>,
    buffer: Rc<str>,
    malformed: Rc<str>,
    long_int: Rc<str>,
}

impl Default for Labels {
    fn default() -> Self {
        Labels {
            memo_miss: Rc::from("memo miss"),
            lost: Rc::from("dropped by the stack bound"),
            cut: Rc::from("…"),
            buffer: Rc::from("out-of-band buffer"),
            malformed: Rc::from("malformed argument"),
            long_int: Rc::from("integer literal too long"),
        }
    }
}

/// The emulator's state over one stream.
struct Machine<'l, R> {
    limits: &'l Limits,
    base: u64,
    input: Input<R>,
    trace: Trace,
    frame: Frame,
    /// Outer unpicklers suspended while a joblib object array's nested pickle runs.
    saved: Vec<Frame>,
    op_offset: u64,
    op_code: u8,
    scratch: Vec<u8>,
    line: Vec<u8>,
    labels: Labels,
    interned: HashSet<Rc<str>>,
    global_index: HashMap<(Rc<str>, Rc<str>, bool), usize>,
    call_index: HashMap<(CallKind, CalleeKey), CallSlot>,
    tracked: Vec<Tracked>,
    sweep_at: usize,
    kept_budget: usize,
    snapshot_budget: usize,
    pickle_items: usize,
    bounds_hit: Vec<Bound>,
    anomaly_counts: HashMap<AnomalyKind, usize>,
    binary_seen: bool,
    top_level_stops: u32,
    /// Read joblib inline arrays (see [`Emulator::joblib`]).
    joblib: bool,
    /// Stop at the first structural error (see [`Emulator::strict`]).
    strict: bool,
}

impl<'l, R: Read> Machine<'l, R> {
    fn new(limits: &'l Limits, base: u64, reader: R) -> Self {
        Machine {
            limits,
            base,
            input: Input::new(reader),
            trace: Trace::default(),
            frame: Frame::default(),
            saved: Vec::new(),
            op_offset: 0,
            op_code: 0,
            scratch: Vec::new(),
            line: Vec::new(),
            labels: Labels::default(),
            interned: HashSet::new(),
            global_index: HashMap::new(),
            call_index: HashMap::new(),
            tracked: Vec::new(),
            sweep_at: 4096,
            kept_budget: Self::pickle_budget(limits),
            snapshot_budget: Self::pickle_budget(limits),
            pickle_items: 0,
            bounds_hit: Vec::new(),
            anomaly_counts: HashMap::new(),
            binary_seen: false,
            top_level_stops: 0,
            joblib: true,
            strict: false,
        }
    }

    /// Bytes of large constants kept whole per pickle.
    fn pickle_budget(limits: &Limits) -> usize {
        limits
            .max_kept_constant
            .saturating_mul(4)
            .max(SMALL_CONSTANT)
    }

    fn finish(mut self) -> Trace {
        self.end_pickle();
        let mut trace = std::mem::take(&mut self.trace);
        trace.bytes = self.input.offset();
        if trace.protocol.is_none() && trace.opcodes > 0 {
            trace.protocol = Some(u8::from(self.binary_seen));
        }
        trace
    }

    // ----- the stream -----

    /// Emulate pickles until the stream ends.
    fn run(&mut self) -> Step<()> {
        let mut after_stop = false;
        loop {
            if after_stop {
                if self.trace.torch_legacy && self.top_level_stops >= TORCH_LEGACY_PICKLES {
                    return Ok(()); // the rest is raw storage data
                }
                if self.trace.pickles >= self.limits.max_pickles {
                    self.bound(Bound::Pickles);
                    return Ok(());
                }
            }
            let (first, second) = self.input.peek2()?;
            if first.is_none() {
                return Ok(());
            }
            let starts_with_proto =
                first == Some(op::PROTO) && second.is_some_and(|p| p <= op::HIGHEST_PROTOCOL);
            let tentative = after_stop && !starts_with_proto;
            let start = self.input.offset();
            match self.run_pickle(tentative) {
                Ok(PickleEnd::Stop) => after_stop = true,
                Ok(PickleEnd::NotAPickle) => {
                    if self.strict || !self.skip_trailing(start)? {
                        return Ok(());
                    }
                    after_stop = false;
                }
                Err(Halt::Eof) => {
                    let detail = match op::info(self.op_code) {
                        Some((name, _)) if self.op_offset < self.input.offset() => {
                            format!(
                                "the stream ends inside {name} (pickle started at {})",
                                self.base + start
                            )
                        }
                        _ => format!(
                            "the stream ends before STOP (pickle started at {})",
                            self.base + start
                        ),
                    };
                    self.anomaly(AnomalyKind::Truncated, detail);
                    return Ok(());
                }
                Err(Halt::Fatal) => {
                    let from = self.input.offset();
                    self.end_pickle();
                    if self.strict || !self.resync(from)? {
                        return Ok(());
                    }
                    after_stop = false;
                }
                Err(io @ Halt::Io(_)) => return Err(io),
            }
        }
    }

    /// Run one pickle up to its `STOP`. A `tentative` pickle (after a previous `STOP`, without `PROTO`)
    /// that fails before its `STOP` is reported as not a pickle, its anomalies withdrawn.
    fn run_pickle(&mut self, tentative: bool) -> Step<PickleEnd> {
        let anomalies_before = self.trace.anomalies.len();
        loop {
            match self.step() {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop(value)) => {
                    if let Some(outer) = self.saved.pop() {
                        // A joblib object array: its nested pickle replaces the wrapper on the outer stack.
                        let inner = std::mem::replace(&mut self.frame, outer);
                        drop(inner);
                        match self.frame.stack.last_mut() {
                            Some(top) => dispose(std::mem::replace(top, value)),
                            None => self.frame.stack.push(value),
                        }
                        continue;
                    }
                    self.top_level_stops += 1;
                    if self.top_level_stops == 1 && is_torch_magic(&value) {
                        self.trace.torch_legacy = true;
                    }
                    dispose(value);
                    self.end_pickle();
                    return Ok(PickleEnd::Stop);
                }
                Err(Halt::Fatal | Halt::Eof) if tentative => {
                    self.trace.anomalies.truncate(anomalies_before);
                    self.end_pickle();
                    return Ok(PickleEnd::NotAPickle);
                }
                Err(halt) => return Err(halt),
            }
        }
    }

    /// Skip bytes after a `STOP` that are not a pickle: resume at the next `PROTO` or report trailing data.
    fn skip_trailing(&mut self, start: u64) -> Step<bool> {
        let found = self.input.find_proto()?;
        let skipped = self.input.offset() - start;
        if found {
            let detail = format!("skipped {skipped} bytes after a STOP that do not form a pickle");
            self.anomaly_at(AnomalyKind::Resynchronised, self.input.offset(), detail);
        } else {
            let detail = format!("{skipped} bytes after the last STOP are not a pickle");
            self.anomaly_at(AnomalyKind::TrailingData, start, detail);
        }
        Ok(found)
    }

    /// After a fatal error at `from`: resume at the next `PROTO`.
    fn resync(&mut self, from: u64) -> Step<bool> {
        if !self.input.find_proto()? {
            return Ok(false);
        }
        let at = self.input.offset();
        let detail = format!(
            "resumed at a PROTO opcode after skipping {} bytes",
            at - from
        );
        self.anomaly_at(AnomalyKind::Resynchronised, at, detail);
        Ok(true)
    }

    /// Forget the pickle: fresh stack and memo, suspended frames dropped, containers emptied.
    fn end_pickle(&mut self) {
        self.saved.clear();
        self.frame = Frame::default();
        for t in self.tracked.drain(..) {
            t.clear();
        }
        self.sweep_at = 4096;
        self.kept_budget = Self::pickle_budget(self.limits);
        self.pickle_items = 0;
    }

    // ----- records -----

    /// Absolute offset of the current opcode.
    fn at(&self) -> u64 {
        self.base.saturating_add(self.op_offset)
    }

    fn anomaly(&mut self, kind: AnomalyKind, detail: String) {
        self.anomaly_at(kind, self.op_offset, detail);
    }

    /// Record an anomaly at stream offset `offset` (bounded per kind).
    fn anomaly_at(&mut self, kind: AnomalyKind, offset: u64, detail: String) {
        let count = self.anomaly_counts.entry(kind).or_insert(0);
        *count += 1;
        let offset = self.base.saturating_add(offset);
        if *count <= MAX_ANOMALIES_PER_KIND {
            self.trace.anomalies.push(Anomaly {
                kind,
                offset,
                detail,
            });
        } else if *count == MAX_ANOMALIES_PER_KIND + 1 {
            self.trace.anomalies.push(Anomaly {
                kind: AnomalyKind::LimitHit,
                offset,
                detail: format!("more than {MAX_ANOMALIES_PER_KIND} anomalies of kind {kind:?}: later ones are not recorded"),
            });
        }
    }

    /// Record that a bound was hit (once per bound).
    fn bound(&mut self, bound: Bound) {
        if !self.bounds_hit.contains(&bound) {
            self.bounds_hit.push(bound);
            let detail = bound.describe(self.limits);
            self.anomaly(AnomalyKind::LimitHit, detail);
        }
    }

    /// Intern a name.
    fn intern(&mut self, bytes: &[u8]) -> Rc<str> {
        let s = String::from_utf8_lossy(bytes);
        if let Some(rc) = self.interned.get(s.as_ref()) {
            return rc.clone();
        }
        let rc: Rc<str> = Rc::from(s.as_ref());
        if self.interned.len() < MAX_INTERNED {
            self.interned.insert(rc.clone());
        }
        rc
    }

    /// Record an import.
    fn global(&mut self, module: &Rc<str>, name: &Rc<str>, opcode: &'static str, dynamic: bool) {
        let key = (module.clone(), name.clone(), dynamic);
        if let Some(&i) = self.global_index.get(&key) {
            if let Some(g) = self.trace.globals.get_mut(i) {
                g.count += 1;
            }
            return;
        }
        if self.trace.globals.len() as u64 >= self.limits.max_entries {
            self.bound(Bound::Globals);
            return;
        }
        self.global_index.insert(key, self.trace.globals.len());
        self.trace.globals.push(GlobalRef {
            module: module.to_string(),
            name: name.to_string(),
            offset: self.at(),
            opcode,
            count: 1,
            dynamic,
        });
    }

    /// `persistent_load(pid)`: push the result, and note a PyTorch storage declaration.
    fn persistent(&mut self, pid: Value) {
        self.trace.persistent_ids += 1;
        if self.trace.storages.len() < MAX_TENSOR_RECORDS {
            if let Some(decl) = tensors::storage_decl(&pid, self.at()) {
                self.trace.storages.push(decl);
            }
        }
        self.push(Value::Persistent(Rc::new(pid)));
    }

    /// Note an item opcode applied to a tensor (an exploit primitive: no writer produces one).
    fn note_tensor_write(&mut self, target: &Value) {
        let Value::Object(obj) = target else {
            return;
        };
        let made_by = tensors::makes_tensor(&obj.borrow().callable);
        if let Some(made_by) = made_by {
            if self.trace.tensor_writes.len() < MAX_TENSOR_RECORDS {
                self.trace.tensor_writes.push(tensors::TensorWrite {
                    opcode: op::name(self.op_code),
                    target: made_by,
                    offset: self.at(),
                });
            }
        }
    }

    /// Record a call, keeping at most `max_calls_per_callable` entries per callee and kind.
    fn record_call(&mut self, kind: CallKind, callee: &Value, args: &Value, slot_state: bool) {
        let key = (kind, callee_key(callee));
        let max = self.limits.max_calls_per_callable.max(1);
        let slot = self.call_index.get(&key).copied();
        if let Some(slot) = slot.filter(|s| s.kept >= max) {
            if let Some(call) = self.trace.calls.get_mut(slot.last) {
                call.count += 1;
            }
            return;
        }
        if slot.is_none() && self.trace.calls.len() as u64 >= self.limits.max_entries {
            self.bound(Bound::Calls);
            return;
        }
        let call = Call {
            callee: self.snapshot(callee),
            kind,
            offset: self.at(),
            args: self.snapshot(args),
            slot_state,
            count: 1,
        };
        let index = self.trace.calls.len();
        self.trace.calls.push(call);
        let kept = slot.map_or(0, |s| s.kept) + 1;
        self.call_index.insert(key, CallSlot { kept, last: index });
    }

    /// A depth- and size-bounded copy of `v` that shares no mutable container with the emulation.
    fn snapshot(&mut self, v: &Value) -> Value {
        let mut nodes = SNAPSHOT_NODES;
        self.snap(v, SNAPSHOT_DEPTH, &mut nodes)
    }

    fn snap(&mut self, v: &Value, depth: usize, nodes: &mut usize) -> Value {
        let container = matches!(
            v,
            Value::Tuple(_)
                | Value::List(_)
                | Value::Dict(_)
                | Value::Set(_)
                | Value::Object(_)
                | Value::Persistent(_)
        );
        if container && (depth == 0 || *nodes == 0) {
            return Value::Unknown(self.labels.cut.clone());
        }
        *nodes = nodes.saturating_sub(1);
        match v {
            Value::Bytes { data, len } if data.len() > SMALL_CONSTANT => {
                if self.snapshot_budget >= data.len() {
                    self.snapshot_budget -= data.len();
                    return v.clone();
                }
                Value::Bytes {
                    data: Rc::from(data.get(..SMALL_CONSTANT).unwrap_or(data)),
                    len: *len,
                }
            }
            Value::Str { text, len } if text.len() > SMALL_CONSTANT => {
                if self.snapshot_budget >= text.len() {
                    self.snapshot_budget -= text.len();
                    return v.clone();
                }
                let mut cut = SMALL_CONSTANT;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                Value::Str {
                    text: Rc::from(text.get(..cut).unwrap_or("")),
                    len: *len,
                }
            }
            Value::Tuple(items) => {
                let items = items
                    .iter()
                    .map(|i| self.snap(i, depth - 1, nodes))
                    .collect();
                Value::Tuple(Rc::new(items))
            }
            Value::List(items) | Value::Set(items) => {
                let copy: Vec<Value> = items
                    .borrow()
                    .iter()
                    .map(|i| self.snap(i, depth - 1, nodes))
                    .collect();
                let copy = Rc::new(RefCell::new(copy));
                if matches!(v, Value::Set(_)) {
                    Value::Set(copy)
                } else {
                    Value::List(copy)
                }
            }
            Value::Dict(pairs) => {
                let copy = pairs
                    .borrow()
                    .iter()
                    .map(|(k, val)| {
                        (
                            self.snap(k, depth - 1, nodes),
                            self.snap(val, depth - 1, nodes),
                        )
                    })
                    .collect();
                Value::Dict(Rc::new(RefCell::new(copy)))
            }
            Value::Object(obj) => {
                let obj = obj.borrow();
                let copy = PyObject {
                    callable: self.snap(&obj.callable, depth - 1, nodes),
                    kind: obj.kind,
                    args: self.snap(&obj.args, depth - 1, nodes),
                    state: obj.state.as_ref().map(|s| self.snap(s, depth - 1, nodes)),
                    offset: obj.offset,
                };
                Value::Object(Rc::new(RefCell::new(copy)))
            }
            Value::Persistent(pid) => Value::Persistent(Rc::new(self.snap(pid, depth - 1, nodes))),
            other => other.clone(),
        }
    }

    // ----- containers -----

    fn track(&mut self, t: Tracked) {
        self.tracked.push(t);
        if self.tracked.len() >= self.sweep_at {
            self.tracked.retain(Tracked::alive);
            self.sweep_at = (self.tracked.len() * 2).max(4096);
        }
    }

    /// Keep at most `max_container_items` items (and the per-pickle item budget).
    fn cap_items(&mut self, mut items: Vec<Value>) -> Vec<Value> {
        let max = self.limits.max_container_items;
        if items.len() > max {
            self.bound(Bound::ContainerItems);
            dispose_all(items.split_off(max));
        }
        let room = MAX_ITEMS_PER_PICKLE.saturating_sub(self.pickle_items);
        if items.len() > room {
            self.bound(Bound::PickleItems);
            dispose_all(items.split_off(room));
        }
        self.pickle_items += items.len();
        items
    }

    /// Whether one more item fits in a container already holding `len`.
    fn item_fits(&mut self, len: usize) -> bool {
        if len >= self.limits.max_container_items {
            self.bound(Bound::ContainerItems);
            return false;
        }
        if self.pickle_items >= MAX_ITEMS_PER_PICKLE {
            self.bound(Bound::PickleItems);
            return false;
        }
        self.pickle_items += 1;
        true
    }

    fn new_list(&mut self, items: Vec<Value>) -> Value {
        let rc = Rc::new(RefCell::new(self.cap_items(items)));
        self.track(Tracked::Seq(Rc::downgrade(&rc)));
        Value::List(rc)
    }

    fn new_set(&mut self, items: Vec<Value>) -> Value {
        let rc = Rc::new(RefCell::new(self.cap_items(items)));
        self.track(Tracked::Seq(Rc::downgrade(&rc)));
        Value::Set(rc)
    }

    fn new_dict(&mut self, pairs: Vec<(Value, Value)>) -> Value {
        let rc = Rc::new(RefCell::new(pairs));
        self.track(Tracked::Map(Rc::downgrade(&rc)));
        Value::Dict(rc)
    }

    fn new_tuple(&mut self, items: Vec<Value>) -> Value {
        Value::Tuple(Rc::new(self.cap_items(items)))
    }

    fn new_object(&mut self, callable: Value, kind: ObjectKind, args: Value) -> Value {
        let rc = Rc::new(RefCell::new(PyObject {
            callable,
            kind,
            args,
            state: None,
            offset: self.at(),
        }));
        self.track(Tracked::Obj(Rc::downgrade(&rc)));
        Value::Object(rc)
    }

    /// Pairs from a flat key/value list (a trailing odd item is dropped as CPython's `IndexError` would).
    fn pairs(&mut self, items: Vec<Value>) -> Vec<(Value, Value)> {
        let mut items = self.cap_items(items);
        if items.len() % 2 == 1 {
            self.anomaly(
                AnomalyKind::TypeConfusion,
                format!("{} with an odd number of items", op::name(self.op_code)),
            );
            if let Some(last) = items.pop() {
                dispose(last);
            }
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        pairs
    }

    // ----- the stack -----

    fn push(&mut self, v: Value) {
        let max = self.limits.max_stack.max(16);
        if self.frame.stack.len() + self.frame.marks.len() >= max {
            self.bound(Bound::Stack);
            self.frame.collapse();
        }
        self.frame.stack.push(v);
    }

    fn underflow<T>(&mut self, what: &str) -> Step<T> {
        let detail = format!("{} {what}", op::name(self.op_code));
        self.anomaly(AnomalyKind::StackUnderflow, detail);
        Err(Halt::Fatal)
    }

    /// Ensure `n` values above the innermost mark.
    fn need(&mut self, n: usize) -> Step<()> {
        if self.frame.available() >= n || self.frame.bottomless() {
            return Ok(());
        }
        self.underflow("pops more values than the stack holds above the mark")
    }

    /// Pop after [`Self::need`].
    fn pop(&mut self) -> Value {
        if self.frame.available() > 0 {
            if let Some(v) = self.frame.stack.pop() {
                return v;
            }
        }
        Value::Unknown(self.labels.lost.clone())
    }

    /// Index of the top value (`stack[-1]`).
    fn top(&mut self) -> Step<usize> {
        if self.frame.available() > 0 {
            return Ok(self.frame.stack.len() - 1);
        }
        if self.frame.bottomless() {
            self.frame
                .stack
                .push(Value::Unknown(self.labels.lost.clone()));
            return Ok(self.frame.stack.len() - 1);
        }
        self.underflow("needs a value on the stack")
    }

    fn top_value(&mut self) -> Step<Value> {
        let i = self.top()?;
        Ok(self.frame.stack.get(i).cloned().unwrap_or(Value::None))
    }

    /// Replace the value at `i`, disposing of the old one.
    fn replace_at(&mut self, i: usize, v: Value) {
        match self.frame.stack.get_mut(i) {
            Some(slot) => dispose(std::mem::replace(slot, v)),
            None => self.frame.stack.push(v),
        }
    }

    /// Ensure a mark exists.
    fn need_mark(&mut self) -> Step<()> {
        if !self.frame.marks.is_empty() || self.frame.lost {
            return Ok(());
        }
        self.underflow("needs a MARK and there is none")
    }

    /// `pop_mark()` after [`Self::need_mark`].
    fn pop_mark(&mut self) -> Vec<Value> {
        match self.frame.marks.pop() {
            Some(m) => {
                let m = m.min(self.frame.stack.len());
                self.frame.stack.split_off(m)
            }
            None => std::mem::take(&mut self.frame.stack),
        }
    }

    /// The top value after popping a mark frame, or an underflow that first disposes of `items`.
    fn top_after_mark(&mut self, items: Vec<Value>) -> Step<(usize, Vec<Value>)> {
        if self.frame.available() > 0 || self.frame.bottomless() {
            let i = self.top()?;
            return Ok((i, items));
        }
        dispose_all(items);
        self.underflow("needs a value below its MARK")
    }

    // ----- reading arguments -----

    /// Bytes of a constant of `len` bytes to keep.
    fn keep_for(&mut self, len: u64) -> usize {
        let want = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(self.limits.max_kept_constant);
        if want <= SMALL_CONSTANT {
            return want;
        }
        let keep = want.min(self.kept_budget.max(SMALL_CONSTANT));
        self.kept_budget = self.kept_budget.saturating_sub(keep);
        keep
    }

    /// Read a constant of `len` bytes into `self.scratch` (a prefix when long).
    fn read_constant(&mut self, len: u64) -> Step<u64> {
        let keep = self.keep_for(len);
        self.input.take(len, keep, &mut self.scratch)?;
        Ok(len)
    }

    fn bytes_constant(&mut self, len: u64) -> Step<Value> {
        self.read_constant(len)?;
        Ok(Value::Bytes {
            data: Rc::from(self.scratch.as_slice()),
            len,
        })
    }

    fn str_constant(&mut self, len: u64) -> Step<Value> {
        self.read_constant(len)?;
        Ok(text::str_value(&self.scratch, len))
    }

    /// A Python 2 `str` (`STRING`, `BINSTRING`): text when it is UTF-8, bytes otherwise.
    fn py2_string(&self, kept: &[u8], len: u64) -> Value {
        match std::str::from_utf8(kept) {
            Err(e) if kept.len() as u64 == len || e.error_len().is_some() => Value::Bytes {
                data: Rc::from(kept),
                len,
            },
            _ => text::str_value(kept, len),
        }
    }

    /// A length that CPython reads as a signed or platform-bounded size: negative or above `isize::MAX` is
    /// rejected (`UnpicklingError`) and ends the pickle.
    fn checked_len(&mut self, len: i128) -> Step<u64> {
        match u64::try_from(len) {
            Ok(n) if n <= i64::MAX as u64 => Ok(n),
            _ => {
                let detail = format!(
                    "{} declares an invalid length {len}",
                    op::name(self.op_code)
                );
                self.anomaly(AnomalyKind::TypeConfusion, detail);
                Err(Halt::Fatal)
            }
        }
    }

    /// Read a text line argument, apply `decode` to it.
    fn with_line<T>(
        &mut self,
        keep: usize,
        decode: impl FnOnce(&mut Self, &[u8], u64) -> T,
    ) -> Step<T> {
        let mut line = std::mem::take(&mut self.line);
        let result = self.input.line(keep, &mut line);
        let out = result.map(|total| decode(self, &line, total));
        line.clear();
        self.line = line;
        out
    }

    /// A module or global name line.
    fn read_name(&mut self) -> Step<Rc<str>> {
        self.with_line(MAX_LINE, |m, line, _| m.intern(line))
    }

    /// A malformed argument: record it and stand in an unknown value.
    fn malformed(&mut self, what: &str) -> Value {
        let detail = format!(
            "{} has a malformed argument ({what})",
            op::name(self.op_code)
        );
        self.anomaly(AnomalyKind::TypeConfusion, detail);
        Value::Unknown(self.labels.malformed.clone())
    }

    // ----- opcodes -----

    fn step(&mut self) -> Step<Flow> {
        self.op_offset = self.input.offset();
        self.op_code = 0;
        let code = self.input.byte()?;
        self.op_code = code;
        self.trace.opcodes += 1;
        let Some((name, proto)) = op::info(code) else {
            self.anomaly(
                AnomalyKind::UnknownOpcode,
                format!("byte 0x{code:02x} is not a pickle opcode"),
            );
            return Err(Halt::Fatal);
        };
        if proto >= 1 {
            self.binary_seen = true;
        }
        let announced = self.frame.proto.unwrap_or(1);
        if proto > announced && code != op::PROTO && !self.frame.mismatch_reported {
            self.frame.mismatch_reported = true;
            let detail =
                format!("{name} (protocol {proto}) in a pickle announcing protocol {announced}");
            self.anomaly(AnomalyKind::ProtocolMismatch, detail);
        }
        self.exec(code)
    }

    fn exec(&mut self, code: u8) -> Step<Flow> {
        match code {
            op::STOP => {
                self.need(1)?;
                self.trace.pickles += 1;
                return Ok(Flow::Stop(self.pop()));
            }
            op::PROTO => self.proto()?,
            op::FRAME => {
                self.input.array::<8>()?;
            }
            op::MARK => {
                let max = self.limits.max_stack.max(16);
                if self.frame.stack.len() + self.frame.marks.len() >= max {
                    self.bound(Bound::Stack);
                    self.frame.collapse();
                }
                self.frame.marks.push(self.frame.stack.len());
            }
            op::POP => self.pop_op()?,
            op::POP_MARK => {
                self.need_mark()?;
                let items = self.pop_mark();
                dispose_all(items);
            }
            op::DUP => {
                let v = self.top_value()?;
                self.push(v);
            }
            op::NONE => self.push(Value::None),
            op::NEWTRUE => self.push(Value::Bool(true)),
            op::NEWFALSE => self.push(Value::Bool(false)),
            op::INT => {
                let v = self.with_line(MAX_LINE, |m, line, total| match line {
                    b"00" => Value::Bool(false),
                    b"01" => Value::Bool(true),
                    _ if total > line.len() as u64 => Value::Unknown(m.labels.long_int.clone()),
                    _ => {
                        text::parse_int(line, true).unwrap_or_else(|| m.malformed("not an integer"))
                    }
                })?;
                self.push(v);
            }
            op::LONG => {
                let v = self.with_line(MAX_LINE, |m, line, total| {
                    let digits = line.strip_suffix(b"L").unwrap_or(line);
                    if total > line.len() as u64 {
                        Value::Unknown(m.labels.long_int.clone())
                    } else {
                        text::parse_int(digits, true)
                            .unwrap_or_else(|| m.malformed("not an integer"))
                    }
                })?;
                self.push(v);
            }
            op::FLOAT => {
                let v = self.with_line(MAX_LINE, |m, line, _| {
                    let parsed = std::str::from_utf8(line)
                        .ok()
                        .and_then(|s| s.trim().replace('_', "").parse::<f64>().ok());
                    parsed.map_or_else(|| m.malformed("not a float"), Value::Float)
                })?;
                self.push(v);
            }
            op::BININT => {
                let v = i32::from_le_bytes(self.input.array()?);
                self.push(Value::Int(i64::from(v)));
            }
            op::BININT1 => {
                let v = self.input.byte()?;
                self.push(Value::Int(i64::from(v)));
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.input.array()?);
                self.push(Value::Int(i64::from(v)));
            }
            op::LONG1 => {
                let n = self.input.byte()?;
                self.input
                    .take(u64::from(n), usize::from(n), &mut self.scratch)?;
                let v = text::decode_long(&self.scratch);
                self.push(v);
            }
            op::LONG4 => {
                let n = i32::from_le_bytes(self.input.array()?);
                let n = self.checked_len(i128::from(n))?;
                self.input.take(n, SMALL_CONSTANT, &mut self.scratch)?;
                let v = text::decode_long(&self.scratch);
                self.push(v);
            }
            op::BINFLOAT => {
                let v = f64::from_be_bytes(self.input.array()?);
                self.push(Value::Float(v));
            }
            op::STRING => self.string_op()?,
            op::BINSTRING => {
                let n = i32::from_le_bytes(self.input.array()?);
                let n = self.checked_len(i128::from(n))?;
                self.read_constant(n)?;
                let v = self.py2_string(&self.scratch, n);
                self.push(v);
            }
            op::SHORT_BINSTRING => {
                let n = u64::from(self.input.byte()?);
                self.read_constant(n)?;
                let v = self.py2_string(&self.scratch, n);
                self.push(v);
            }
            op::BINBYTES => {
                let n = u64::from(u32::from_le_bytes(self.input.array()?));
                let v = self.bytes_constant(n)?;
                self.push(v);
            }
            op::SHORT_BINBYTES => {
                let n = u64::from(self.input.byte()?);
                let v = self.bytes_constant(n)?;
                self.push(v);
            }
            op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = u64::from_le_bytes(self.input.array()?);
                let n = self.checked_len(i128::from(n))?;
                let v = self.bytes_constant(n)?;
                self.push(v);
            }
            op::UNICODE => self.unicode_op()?,
            op::BINUNICODE => {
                let n = u64::from(u32::from_le_bytes(self.input.array()?));
                let v = self.str_constant(n)?;
                self.push(v);
            }
            op::SHORT_BINUNICODE => {
                let n = u64::from(self.input.byte()?);
                let v = self.str_constant(n)?;
                self.push(v);
            }
            op::BINUNICODE8 => {
                let n = u64::from_le_bytes(self.input.array()?);
                let n = self.checked_len(i128::from(n))?;
                let v = self.str_constant(n)?;
                self.push(v);
            }
            op::EMPTY_TUPLE => self.push(Value::Tuple(Rc::new(Vec::new()))),
            op::TUPLE => {
                self.need_mark()?;
                let items = self.pop_mark();
                let v = self.new_tuple(items);
                self.push(v);
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(code - op::TUPLE1) + 1;
                self.need(n)?;
                let mut items: Vec<Value> = (0..n).map(|_| self.pop()).collect();
                items.reverse();
                let v = self.new_tuple(items);
                self.push(v);
            }
            op::EMPTY_LIST => {
                let v = self.new_list(Vec::new());
                self.push(v);
            }
            op::LIST => {
                self.need_mark()?;
                let items = self.pop_mark();
                let v = self.new_list(items);
                self.push(v);
            }
            op::EMPTY_DICT => {
                let v = self.new_dict(Vec::new());
                self.push(v);
            }
            op::DICT => {
                self.need_mark()?;
                let items = self.pop_mark();
                let pairs = self.pairs(items);
                let v = self.new_dict(pairs);
                self.push(v);
            }
            op::EMPTY_SET => {
                let v = self.new_set(Vec::new());
                self.push(v);
            }
            op::FROZENSET => {
                self.need_mark()?;
                let items = self.pop_mark();
                let v = self.new_set(items);
                self.push(v);
            }
            op::APPEND => {
                self.need(2)?;
                let v = self.pop();
                let i = self.top()?;
                self.extend_at(i, vec![v]);
            }
            op::APPENDS => {
                self.need_mark()?;
                let items = self.pop_mark();
                let (i, items) = self.top_after_mark(items)?;
                self.extend_at(i, items);
            }
            op::SETITEM => {
                self.need(3)?;
                let v = self.pop();
                let k = self.pop();
                let i = self.top()?;
                self.set_items_at(i, vec![(k, v)]);
            }
            op::SETITEMS => {
                self.need_mark()?;
                let items = self.pop_mark();
                let (i, items) = self.top_after_mark(items)?;
                let pairs = self.pairs(items);
                self.set_items_at(i, pairs);
            }
            op::ADDITEMS => {
                self.need_mark()?;
                let items = self.pop_mark();
                let (i, items) = self.top_after_mark(items)?;
                self.add_items_at(i, items);
            }
            op::GET => {
                let index = self.with_line(MAX_LINE, |_, line, total| {
                    (text::parse_int(line, false), total > line.len() as u64)
                })?;
                match index {
                    (index, false) => self.get_op(index)?,
                    // An index longer than the kept line: what CPython reads is not known here.
                    (_, true) => {
                        let v = self.malformed("memo index longer than the kept line");
                        self.push(v);
                    }
                }
            }
            op::BINGET => {
                let index = self.input.byte()?;
                self.memo_get(u64::from(index))?;
            }
            op::LONG_BINGET => {
                let index = u32::from_le_bytes(self.input.array()?);
                self.memo_get(u64::from(index))?;
            }
            op::PUT => {
                let index = self.with_line(MAX_LINE, |_, line, total| {
                    (text::parse_int(line, false), total > line.len() as u64)
                })?;
                match index {
                    (Some(Value::Int(i)), false) if i >= 0 => self.memo_put(i as u64)?,
                    _ => {
                        self.frame.memo_unreliable = true;
                        self.malformed("not a memo index");
                    }
                }
            }
            op::BINPUT => {
                let index = self.input.byte()?;
                self.memo_put(u64::from(index))?;
            }
            op::LONG_BINPUT => {
                let index = u32::from_le_bytes(self.input.array()?);
                self.memo_put(u64::from(index))?;
            }
            op::MEMOIZE => {
                let index = self.frame.memo.len() as u64;
                self.memo_put(index)?;
            }
            op::PERSID => {
                let pid = self.with_line(SMALL_CONSTANT, |_, line, total| {
                    text::str_value(line, total)
                })?;
                self.persistent(pid);
            }
            op::BINPERSID => {
                self.need(1)?;
                let pid = self.pop();
                self.persistent(pid);
            }
            op::GLOBAL => {
                let module = self.read_name()?;
                let name = self.read_name()?;
                self.global(&module, &name, "GLOBAL", false);
                self.push(Value::Global { module, name });
            }
            op::STACK_GLOBAL => self.stack_global()?,
            op::EXT1 => {
                let code = self.input.byte()?;
                self.extension("EXT1", i64::from(code));
            }
            op::EXT2 => {
                let code = u16::from_le_bytes(self.input.array()?);
                self.extension("EXT2", i64::from(code));
            }
            op::EXT4 => {
                let code = i32::from_le_bytes(self.input.array()?);
                self.extension("EXT4", i64::from(code));
            }
            op::REDUCE => self.reduce()?,
            op::BUILD => self.build()?,
            op::INST => self.inst()?,
            op::OBJ => self.obj()?,
            op::NEWOBJ => {
                self.need(2)?;
                let args = self.pop();
                let cls = self.pop();
                self.check_args(&args);
                self.record_call(CallKind::NewObj, &cls, &args, false);
                let v = self.new_object(cls, ObjectKind::New, args);
                self.push(v);
            }
            op::NEWOBJ_EX => {
                self.need(3)?;
                let kwargs = self.pop();
                let args = self.pop();
                let cls = self.pop();
                self.check_args(&args);
                let call_args = Value::Tuple(Rc::new(vec![args, kwargs]));
                self.record_call(CallKind::NewObjEx, &cls, &call_args, false);
                let v = self.new_object(cls, ObjectKind::New, call_args);
                self.push(v);
            }
            op::NEXT_BUFFER => self.push(Value::Unknown(self.labels.buffer.clone())),
            op::READONLY_BUFFER => {
                self.top()?;
            }
            _ => {
                self.anomaly(
                    AnomalyKind::UnknownOpcode,
                    format!("byte 0x{code:02x} is not a pickle opcode"),
                );
                return Err(Halt::Fatal);
            }
        }
        Ok(Flow::Continue)
    }

    fn proto(&mut self) -> Step<()> {
        let p = self.input.byte()?;
        self.frame.proto = Some(p);
        self.trace.protocol = Some(self.trace.protocol.map_or(p, |q| q.max(p)));
        if p > op::HIGHEST_PROTOCOL {
            let detail = format!(
                "unsupported protocol {p} (CPython reads up to {})",
                op::HIGHEST_PROTOCOL
            );
            self.anomaly(AnomalyKind::ProtocolMismatch, detail);
        }
        Ok(())
    }

    /// `POP`: the top value, or the whole mark frame when it is empty (CPython's `load_pop`).
    fn pop_op(&mut self) -> Step<()> {
        if self.frame.available() > 0 {
            let v = self.pop();
            dispose(v);
            return Ok(());
        }
        if !self.frame.marks.is_empty() {
            let items = self.pop_mark();
            dispose_all(items);
            return Ok(());
        }
        if self.frame.lost {
            return Ok(());
        }
        self.underflow("on an empty stack")
    }

    fn string_op(&mut self) -> Step<()> {
        let keep = self
            .limits
            .max_kept_constant
            .min(self.kept_budget.max(SMALL_CONSTANT));
        let v = self.with_line(keep, |m, line, total| {
            let complete = total == line.len() as u64;
            let quoted = line.len() >= 2
                && matches!(line.first(), Some(b'"' | b'\''))
                && line.first() == line.last();
            if !complete {
                let body = line.get(1..).unwrap_or(&[]);
                return m.py2_string(body, total.saturating_sub(2).max(body.len() as u64 + 1));
            }
            if !quoted {
                return m.malformed("STRING argument is not quoted");
            }
            match text::escape_decode(line.get(1..line.len() - 1).unwrap_or(&[])) {
                Some(data) => m.py2_string(&data, data.len() as u64),
                None => m.malformed("bad escape"),
            }
        })?;
        self.charge(&v);
        self.push(v);
        Ok(())
    }

    fn unicode_op(&mut self) -> Step<()> {
        let keep = self
            .limits
            .max_kept_constant
            .min(self.kept_budget.max(SMALL_CONSTANT));
        let v = self.with_line(keep, |m, line, total| {
            let complete = total == line.len() as u64;
            match text::raw_unicode_escape(line) {
                Some(s) if complete => Value::str(&s),
                Some(s) => Value::Str {
                    len: total.max(s.len() as u64 + 1),
                    text: Rc::from(s),
                },
                None if complete => m.malformed("bad raw-unicode-escape"),
                None => {
                    let s = String::from_utf8_lossy(line);
                    Value::Str {
                        len: total.max(s.len() as u64 + 1),
                        text: Rc::from(s.as_ref()),
                    }
                }
            }
        })?;
        self.charge(&v);
        self.push(v);
        Ok(())
    }

    /// Charge a kept text constant against the per-pickle budget.
    fn charge(&mut self, v: &Value) {
        let size = match v {
            Value::Str { text, .. } => text.len(),
            Value::Bytes { data, .. } => data.len(),
            _ => 0,
        };
        if size > SMALL_CONSTANT {
            self.kept_budget = self.kept_budget.saturating_sub(size);
        }
    }

    fn get_op(&mut self, index: Option<Value>) -> Step<()> {
        match index {
            Some(Value::Int(i)) if i >= 0 => self.memo_get(i as u64),
            _ => {
                let v = self.malformed("not a memo index");
                self.push(v);
                Ok(())
            }
        }
    }

    /// A memo read. Every real unpickler (CPython's C and Python ones, and the subclasses of them that
    /// joblib and PyTorch use) raises on an index never stored, so the pickle ends there: nothing after it
    /// runs. Only when this emulator itself may have missed a store (the memo bound, or a text `PUT` index it
    /// could not read exactly) can a miss be ours, and then the value is unknown rather than absent.
    fn memo_get(&mut self, index: u64) -> Step<()> {
        match self.frame.memo.get(index) {
            Some(v) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            None => {
                let detail = format!(
                    "{} of memo index {index}, never stored in this pickle",
                    op::name(self.op_code)
                );
                self.anomaly(AnomalyKind::MemoMiss, detail);
                if self.bounds_hit.contains(&Bound::Memo) || self.frame.memo_unreliable {
                    self.push(Value::Unknown(self.labels.memo_miss.clone()));
                    Ok(())
                } else {
                    Err(Halt::Fatal)
                }
            }
        }
    }

    fn memo_put(&mut self, index: u64) -> Step<()> {
        let v = self.top_value()?;
        match self.frame.memo.put(index, v, self.limits.max_memo) {
            Ok(Some(old)) => dispose(old),
            Ok(None) => {}
            Err(v) => {
                dispose(v);
                self.bound(Bound::Memo);
            }
        }
        Ok(())
    }

    /// `APPEND`/`APPENDS` onto the value at `i`.
    fn extend_at(&mut self, i: usize, items: Vec<Value>) {
        let target = self.frame.stack.get(i).cloned();
        match &target {
            Some(Value::List(list)) => {
                for item in items {
                    let len = list.borrow().len();
                    if self.item_fits(len) {
                        list.borrow_mut().push(item);
                    } else {
                        dispose(item);
                    }
                }
            }
            // An instance's own `append`/`extend` runs; its class is already recorded.
            Some(obj @ Value::Object(_)) => {
                self.note_tensor_write(obj);
                dispose_all(items)
            }
            Some(Value::Unknown(_)) => dispose_all(items),
            other => {
                let what = other.as_ref().map_or("nothing", Value::type_name);
                let detail = format!("{} onto a {what}", op::name(self.op_code));
                self.anomaly(AnomalyKind::TypeConfusion, detail);
                dispose_all(items);
            }
        }
        if let Some(t) = target {
            dispose(t);
        }
    }

    /// `SETITEM`/`SETITEMS` on the value at `i`.
    fn set_items_at(&mut self, i: usize, pairs: Vec<(Value, Value)>) {
        let target = self.frame.stack.get(i).cloned();
        match &target {
            Some(Value::Dict(dict)) => {
                for (k, v) in pairs {
                    let len = dict.borrow().len();
                    if self.item_fits(len) {
                        dict.borrow_mut().push((k, v));
                    } else {
                        dispose(k);
                        dispose(v);
                    }
                }
            }
            Some(obj @ Value::Object(_)) => {
                self.note_tensor_write(obj);
                dispose_all(pairs.into_iter().flat_map(|(k, v)| [k, v]))
            }
            Some(Value::Unknown(_)) => dispose_all(pairs.into_iter().flat_map(|(k, v)| [k, v])),
            other => {
                let what = other.as_ref().map_or("nothing", Value::type_name);
                let detail = format!("{} on a {what}", op::name(self.op_code));
                self.anomaly(AnomalyKind::TypeConfusion, detail);
                dispose_all(pairs.into_iter().flat_map(|(k, v)| [k, v]));
            }
        }
        if let Some(t) = target {
            dispose(t);
        }
    }

    /// `ADDITEMS` on the value at `i`.
    fn add_items_at(&mut self, i: usize, items: Vec<Value>) {
        let target = self.frame.stack.get(i).cloned();
        match &target {
            Some(Value::Set(set)) => {
                for item in items {
                    let len = set.borrow().len();
                    if self.item_fits(len) {
                        set.borrow_mut().push(item);
                    } else {
                        dispose(item);
                    }
                }
            }
            Some(Value::Object(_) | Value::Unknown(_)) => dispose_all(items),
            other => {
                let what = other.as_ref().map_or("nothing", Value::type_name);
                self.anomaly(AnomalyKind::TypeConfusion, format!("ADDITEMS on a {what}"));
                dispose_all(items);
            }
        }
        if let Some(t) = target {
            dispose(t);
        }
    }

    /// `STACK_GLOBAL`: module and name from the stack; non-constant ones make a dynamic global. Every real
    /// unpickler raises unless both are exactly `str`, so an operand that cannot be one ends the pickle
    /// (joblib's nested object-array pickles, read as plain `pickle.load` reads them, do this).
    fn stack_global(&mut self) -> Step<()> {
        self.need(2)?;
        let name = self.pop();
        let module = self.pop();
        if never_str(&module) || never_str(&name) {
            let detail = format!(
                "STACK_GLOBAL of a {} and a {}: loaders raise (both must be str)",
                module.type_name(),
                name.type_name()
            );
            self.anomaly(AnomalyKind::TypeConfusion, detail);
            dispose(module);
            dispose(name);
            return Err(Halt::Fatal);
        }
        let (m, n) = (constant_str(&module), constant_str(&name));
        let dynamic = m.is_none() || n.is_none();
        let m = m.unwrap_or_else(|| describe(&module));
        let n = n.unwrap_or_else(|| describe(&name));
        self.global(&m, &n, "STACK_GLOBAL", dynamic);
        self.push(Value::Global { module: m, name: n });
        dispose(module);
        dispose(name);
        Ok(())
    }

    /// `EXT1`/`EXT2`/`EXT4`: a global from the copyreg extension registry, unknowable here.
    fn extension(&mut self, opcode: &'static str, code: i64) {
        let module: Rc<str> = Rc::from("copyreg.extension");
        let name: Rc<str> = Rc::from(code.to_string());
        self.global(&module, &name, opcode, true);
        self.push(Value::Global { module, name });
    }

    /// Note arguments that are not a tuple (CPython's `cls.__new__(cls, *args)` needs an iterable).
    fn check_args(&mut self, args: &Value) {
        if !matches!(args, Value::Tuple(_) | Value::List(_) | Value::Unknown(_)) {
            let detail = format!(
                "{} arguments are a {}, not a tuple",
                op::name(self.op_code),
                args.type_name()
            );
            self.anomaly(AnomalyKind::TypeConfusion, detail);
        }
    }

    /// Evaluate a pure function on complete constants, within the per-pickle budget.
    fn evaluate(&mut self, func: &Value, args: &Value) -> Option<Value> {
        if !eval::is_evaluable(func) {
            return None;
        }
        let items: Vec<Value> = match args {
            Value::Tuple(items) => items.as_ref().clone(),
            Value::List(items) => items.borrow().clone(),
            _ => return None,
        };
        let input: usize = items
            .iter()
            .map(|v| match v {
                Value::Str { text, .. } => text.len(),
                Value::Bytes { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        if input > SMALL_CONSTANT {
            if input > self.kept_budget {
                self.bound(Bound::KeptBytes);
                return None;
            }
            self.kept_budget -= input;
        }
        let max_out = self
            .limits
            .max_kept_constant
            .min(self.kept_budget.max(SMALL_CONSTANT));
        let result = eval::evaluate(func, &Value::Tuple(Rc::new(items)), max_out)?;
        if result.truncated {
            self.bound(Bound::Decompressed);
        }
        self.charge(&result.value);
        Some(result.value)
    }

    /// `REDUCE`: `stack[-1] = stack[-1](*args)`.
    fn reduce(&mut self) -> Step<()> {
        self.need(2)?;
        let args = self.pop();
        let i = self.top()?;
        let func = self.frame.stack.get(i).cloned().unwrap_or(Value::None);
        if !matches!(args, Value::Tuple(_) | Value::List(_) | Value::Unknown(_)) {
            let detail = format!("REDUCE arguments are a {}, not a tuple", args.type_name());
            self.anomaly(AnomalyKind::TypeConfusion, detail);
        }
        self.record_call(CallKind::Reduce, &func, &args, false);
        if self.trace.tensor_views.len() < MAX_TENSOR_RECORDS {
            if let Some(view) = tensors::view(&func, &args, self.at()) {
                self.trace.tensor_views.push(view);
            }
        }
        let result = match self.evaluate(&func, &args) {
            Some(v) => {
                dispose(args);
                v
            }
            None => self.new_object(func.clone(), ObjectKind::Call, args),
        };
        self.replace_at(i, result);
        dispose(func);
        Ok(())
    }

    /// `BUILD`: `stack[-1].__setstate__(state)` (or `__dict__` update plus `setattr` of slot state).
    fn build(&mut self) -> Step<()> {
        self.need(2)?;
        let state = self.pop();
        let i = self.top()?;
        let inst = self.frame.stack.get(i).cloned().unwrap_or(Value::None);
        let slot_state = match &state {
            Value::Tuple(items) if items.len() == 2 => match items.get(1) {
                Some(Value::Dict(d)) => !d.borrow().is_empty(),
                _ => false,
            },
            _ => false,
        };
        self.record_call(CallKind::Build, &inst, &state, slot_state);
        let mut wrapper = false;
        if let Value::Object(obj) = &inst {
            wrapper = joblib::is_array_wrapper(&obj.borrow());
            let old = obj.borrow_mut().state.replace(state.clone());
            if let Some(old) = old {
                dispose(old);
            }
        }
        // joblib's own unpickler reads inline arrays; inside an object array's nested pickle (read by plain
        // `pickle.load`) and for every other loader the bytes that follow are opcodes.
        let result = if wrapper && self.joblib && self.saved.is_empty() {
            self.joblib_array(&state)
        } else {
            Ok(())
        };
        dispose(state);
        dispose(inst);
        result
    }

    /// After a joblib `NumpyArrayWrapper` BUILD: skip the inline array bytes, or start the nested pickle of
    /// an object array.
    fn joblib_array(&mut self, state: &Value) -> Step<()> {
        match joblib::array_data(state) {
            Ok(ArrayData::Raw { padded, bytes }) => {
                self.trace.joblib_arrays += 1;
                if padded {
                    let padding = self.input.byte()?;
                    self.input.skip(u64::from(padding))?;
                }
                self.input.skip(bytes)
            }
            Ok(ArrayData::Pickle) => {
                self.trace.joblib_arrays += 1;
                if self.saved.len() + 1 >= self.limits.max_depth {
                    self.bound(Bound::Depth);
                    let detail = "object array nested too deep".to_owned();
                    self.anomaly(AnomalyKind::JoblibArray, detail);
                    return Err(Halt::Fatal);
                }
                let outer = std::mem::take(&mut self.frame);
                self.saved.push(outer);
                Ok(())
            }
            Err(detail) => {
                self.anomaly(
                    AnomalyKind::JoblibArray,
                    format!("joblib array data cannot be skipped: {detail}"),
                );
                Err(Halt::Fatal)
            }
        }
    }

    /// `INST module name`: `klass(*args)` with the mark frame as arguments.
    fn inst(&mut self) -> Step<()> {
        let module = self.read_name()?;
        let name = self.read_name()?;
        self.global(&module, &name, "INST", false);
        self.need_mark()?;
        let items = self.pop_mark();
        let args = self.new_tuple(items);
        self.instantiate(CallKind::Inst, Value::Global { module, name }, args);
        Ok(())
    }

    /// `OBJ`: the first item of the mark frame is the class, the rest its arguments.
    fn obj(&mut self) -> Step<()> {
        self.need_mark()?;
        let mut items = self.pop_mark();
        if items.is_empty() {
            return self.underflow("needs a class after its MARK");
        }
        let cls = items.remove(0);
        let args = self.new_tuple(items);
        self.instantiate(CallKind::Obj, cls, args);
        Ok(())
    }

    /// CPython's `_instantiate`.
    fn instantiate(&mut self, kind: CallKind, klass: Value, args: Value) {
        self.record_call(kind, &klass, &args, false);
        let v = match self.evaluate(&klass, &args) {
            Some(v) => {
                dispose(args);
                dispose(klass);
                v
            }
            None => self.new_object(klass, ObjectKind::Instance, args),
        };
        self.push(v);
    }
}

/// The text of a complete constant `str`.
fn constant_str(v: &Value) -> Option<Rc<str>> {
    match v {
        Value::Str { text, len } if text.len() as u64 == *len => Some(text.clone()),
        _ => None,
    }
}

/// Whether `v` can never be exactly a `str` when a real loader reaches it: constants of other types, containers,
/// and objects allocated by NEWOBJ/NEWOBJ_EX (`cls.__new__(cls, …)`) of a plain class name that is not a name
/// of `str` (`str`, `unicode`, `basestring`, `Text`, `text_type`). A class whose `__new__` returns a str is
/// itself imported, and judged, as a global. Call results and INST/OBJ objects (`klass(*args)` calls any
/// callable: `copyreg._reconstructor(str, str, "os")` is `"os"`), globals (a module constant can be a str),
/// attribute walks and unknown values may be strings.
fn never_str(v: &Value) -> bool {
    match v {
        Value::None
        | Value::Bool(_)
        | Value::Int(_)
        | Value::BigInt(_)
        | Value::Float(_)
        | Value::Bytes { .. }
        | Value::Tuple(_)
        | Value::List(_)
        | Value::Dict(_)
        | Value::Set(_) => true,
        Value::Object(obj) => {
            let obj = obj.borrow();
            obj.kind == ObjectKind::New
                && matches!(obj.callable.as_global(), Some((_, name))
                    if !name.contains('.')
                        && !matches!(name, "str" | "unicode" | "basestring" | "Text" | "text_type"))
        }
        _ => false,
    }
}

/// A description of a value used as a name, for dynamic globals: `<…>`.
fn describe(v: &Value) -> Rc<str> {
    Rc::from(format!("<{}>", v.render(160)))
}

/// Whether `v` is legacy `torch.save`'s magic number.
fn is_torch_magic(v: &Value) -> bool {
    matches!(v, Value::BigInt(b) if text::trim_long(b) == TORCH_MAGIC)
}

/// The dedupe key of a callee.
fn callee_key(v: &Value) -> CalleeKey {
    match v {
        Value::Global { module, name } => CalleeKey::Global(module.clone(), name.clone()),
        Value::Object(_) => match class_of(v, 4) {
            Some((m, n)) => CalleeKey::Instance(m, n),
            None => CalleeKey::Kind("object"),
        },
        Value::Unknown(why) => CalleeKey::Unknown(why.clone()),
        other => CalleeKey::Kind(other.type_name()),
    }
}

/// The class of an emulated instance (looking through `copyreg` reconstructors).
fn class_of(v: &Value, depth: usize) -> Option<(Rc<str>, Rc<str>)> {
    let Value::Object(obj) = v else { return None };
    if depth == 0 {
        return None;
    }
    let obj = obj.borrow();
    match &obj.callable {
        Value::Global { module, name } => {
            let reconstructor = matches!(
                (module.as_ref(), name.as_ref()),
                (
                    "copyreg" | "copy_reg",
                    "_reconstructor" | "__newobj__" | "__newobj_ex__"
                )
            );
            if reconstructor {
                if let Value::Tuple(items) = &obj.args {
                    if let Some(Value::Global { module, name }) = items.first() {
                        return Some((module.clone(), name.clone()));
                    }
                }
            }
            Some((module.clone(), name.clone()))
        }
        other => class_of(other, depth - 1),
    }
}
