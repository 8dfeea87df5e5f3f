//! The per-unpickler state of the emulator: the value stack with its mark stack (CPython's `metastack`,
//! stored as indices into one stack as `_pickle.c` does) and the memo. A fresh [`Frame`] starts at every
//! pickle, exactly as every `pickle.load` call builds a new unpickler.
//!
//! Values are shared `Rc` graphs that a crafted pickle can nest a million levels deep (`TUPLE1` repeated);
//! Rust's default drop would recurse that deep and overflow the thread stack, so every value the emulator
//! lets go of goes through [`dispose`], which tears graphs down iteratively.

use std::collections::HashMap;
use std::rc::Rc;

use super::Value;

/// Drop a value without recursion: containers owned only by this reference are emptied onto a work list.
pub(super) fn dispose(value: Value) {
    if !owns_container(&value) {
        return; // a scalar, or a shared reference: dropping it is shallow
    }
    let mut work = vec![value];
    while let Some(v) = work.pop() {
        match v {
            Value::Tuple(rc) => {
                if let Ok(items) = Rc::try_unwrap(rc) {
                    work.extend(items);
                }
            }
            Value::List(rc) | Value::Set(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    work.extend(cell.into_inner());
                }
            }
            Value::Dict(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    for (k, v) in cell.into_inner() {
                        work.push(k);
                        work.push(v);
                    }
                }
            }
            Value::Object(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    let obj = cell.into_inner();
                    work.push(obj.callable);
                    work.push(obj.args);
                    if let Some(state) = obj.state {
                        work.push(state);
                    }
                }
            }
            Value::Persistent(rc) => {
                if let Ok(inner) = Rc::try_unwrap(rc) {
                    work.push(inner);
                }
            }
            _ => {}
        }
    }
}

/// Whether dropping `v` would free a container (and so possibly recurse).
fn owns_container(v: &Value) -> bool {
    match v {
        Value::Tuple(rc) => Rc::strong_count(rc) == 1,
        Value::List(rc) | Value::Set(rc) => Rc::strong_count(rc) == 1,
        Value::Dict(rc) => Rc::strong_count(rc) == 1,
        Value::Object(rc) => Rc::strong_count(rc) == 1,
        Value::Persistent(rc) => Rc::strong_count(rc) == 1,
        _ => false,
    }
}

/// [`dispose`] every value.
pub(super) fn dispose_all(values: impl IntoIterator<Item = Value>) {
    for v in values {
        dispose(v);
    }
}

/// The memo: a dense vector for the usual `0, 1, 2, …` indices, a map for anything else. An index lives in
/// exactly one of the two: below `dense.len()` in the vector, otherwise in the map.
#[derive(Debug, Default)]
pub(super) struct Memo {
    dense: Vec<Option<Value>>,
    sparse: HashMap<u64, Value>,
    len: usize,
}

impl Memo {
    /// Entries stored (`len(memo)`, the index `MEMOIZE` uses).
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The value at `index`.
    pub(super) fn get(&self, index: u64) -> Option<&Value> {
        match usize::try_from(index) {
            Ok(i) if i < self.dense.len() => self.dense.get(i).and_then(Option::as_ref),
            _ => self.sparse.get(&index),
        }
    }

    /// Store `value` at `index`. Returns the replaced value, or `Err(value)` when a new entry would exceed
    /// `max` entries.
    pub(super) fn put(
        &mut self,
        index: u64,
        value: Value,
        max: usize,
    ) -> Result<Option<Value>, Value> {
        let dense_len = self.dense.len();
        if let Some(slot) = usize::try_from(index)
            .ok()
            .filter(|i| *i < dense_len)
            .and_then(|i| self.dense.get_mut(i))
        {
            if slot.is_none() {
                if self.len >= max {
                    return Err(value);
                }
                self.len += 1;
            }
            return Ok(slot.replace(value));
        }
        if let Some(slot) = self.sparse.get_mut(&index) {
            return Ok(Some(std::mem::replace(slot, value)));
        }
        if self.len >= max {
            return Err(value);
        }
        self.len += 1;
        if index == dense_len as u64 {
            self.dense.push(Some(value));
            // Absorb the indices that now continue the dense run.
            while !self.sparse.is_empty() {
                match self.sparse.remove(&(self.dense.len() as u64)) {
                    Some(v) => self.dense.push(Some(v)),
                    None => break,
                }
            }
        } else {
            self.sparse.insert(index, value);
        }
        Ok(None)
    }

    fn drain(&mut self) -> impl Iterator<Item = Value> + '_ {
        self.len = 0;
        self.dense
            .drain(..)
            .flatten()
            .chain(self.sparse.drain().map(|(_, v)| v))
    }
}

/// One unpickler: stack, marks, memo and the protocol it announced.
#[derive(Debug, Default)]
pub(super) struct Frame {
    /// The value stack (all mark frames, bottom first).
    pub stack: Vec<Value>,
    /// Stack lengths at each `MARK`.
    pub marks: Vec<usize>,
    /// Whether the stack bound dropped the bottom of the stack; pops below it then yield unknown values.
    pub lost: bool,
    /// The memo.
    pub memo: Memo,
    /// Protocol announced by `PROTO`.
    pub proto: Option<u8>,
    /// Whether a protocol mismatch was already reported for this pickle.
    pub mismatch_reported: bool,
    /// Whether a store may have been missed: a text `PUT` whose index this emulator could not read exactly
    /// (malformed or over-long), where CPython's own parser may still have stored it. A later miss is then
    /// not proof that the real loader raised.
    pub memo_unreliable: bool,
}

impl Frame {
    /// Stack length at the innermost mark (0 without marks).
    pub(super) fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// Values above the innermost mark.
    pub(super) fn available(&self) -> usize {
        self.stack.len().saturating_sub(self.fence())
    }

    /// Whether values missing below the bottom of the stack may be stand-ins for dropped ones.
    pub(super) fn bottomless(&self) -> bool {
        self.lost && self.marks.is_empty()
    }

    /// Keep the stack plus marks under `max` by dropping the bottom half of whichever is larger.
    pub(super) fn collapse(&mut self) {
        self.lost = true;
        if self.marks.len() > self.stack.len() {
            let k = self.marks.len() / 2;
            self.marks.drain(..k);
        } else {
            let drop = self.stack.len() / 2;
            dispose_all(self.stack.drain(..drop));
            self.marks.retain(|m| *m >= drop);
            for m in &mut self.marks {
                *m -= drop;
            }
        }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        dispose_all(std::mem::take(&mut self.stack));
        dispose_all(self.memo.drain().collect::<Vec<_>>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_mixes_dense_and_sparse_indices() {
        let mut memo = Memo::default();
        assert!(memo.put(1, Value::Int(1), 10).unwrap().is_none());
        assert!(memo.put(0, Value::Int(0), 10).unwrap().is_none());
        assert_eq!(memo.len(), 2);
        assert!(matches!(memo.get(1), Some(Value::Int(1))));
        assert!(matches!(
            memo.put(1, Value::Int(11), 10),
            Ok(Some(Value::Int(1)))
        ));
        assert!(memo.put(1_000_000, Value::Int(7), 10).unwrap().is_none());
        assert!(matches!(memo.get(1_000_000), Some(Value::Int(7))));
        assert!(memo.get(5).is_none());
        assert_eq!(memo.len(), 3);
        assert!(memo.put(2, Value::None, 3).is_err());
        assert!(matches!(
            memo.put(0, Value::None, 3),
            Ok(Some(Value::Int(0)))
        ));
    }

    #[test]
    fn deep_values_drop_without_recursion() {
        let mut v = Value::None;
        for _ in 0..1_000_000 {
            v = Value::Tuple(Rc::new(vec![v]));
        }
        dispose(v);
        let mut frame = Frame::default();
        let mut v = Value::None;
        for _ in 0..1_000_000 {
            v = Value::List(Rc::new(std::cell::RefCell::new(vec![v])));
        }
        frame.stack.push(v);
        drop(frame);
    }

    #[test]
    fn collapse_keeps_the_top() {
        let mut frame = Frame::default();
        frame.stack.extend((0..10).map(Value::Int));
        frame.marks = vec![2, 8];
        frame.collapse();
        assert_eq!(frame.stack.len(), 5);
        assert_eq!(frame.marks, vec![3]);
        assert!(frame.lost);
    }
}
