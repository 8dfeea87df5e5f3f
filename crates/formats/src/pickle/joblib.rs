//! joblib's `NumpyArrayWrapper`: `joblib.dump` pickles a wrapper object and, right after its `BUILD`, writes
//! the array's raw bytes (or, for object arrays, a complete nested pickle) straight into the stream; joblib's
//! unpickler reads them in `NumpyArrayWrapper.read_array`. This module recognises the wrapper and computes how
//! many bytes follow, from the wrapper's state (`shape`, `dtype`, `numpy_array_alignment_bytes`) and the
//! emulated `numpy.dtype` object (its reduce string such as `'f8'` and its `BUILD` state with `elsize` and
//! `flags`).

use super::{PyObject, Value};

/// What follows a wrapper's `BUILD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArrayData {
    /// Raw bytes; when `padded`, one padding-length byte and that many padding bytes come first.
    Raw {
        /// Whether an alignment padding block precedes the data.
        padded: bool,
        /// Bytes of array data.
        bytes: u64,
    },
    /// A complete nested pickle (object dtype).
    Pickle,
}

/// Whether `obj` is a `joblib.numpy_pickle.NumpyArrayWrapper` instance, created directly (`NEWOBJ`,
/// `REDUCE`) or through a `copyreg` reconstructor.
pub(super) fn is_array_wrapper(obj: &PyObject) -> bool {
    if is_wrapper_class(&obj.callable) {
        return true;
    }
    match obj.callable.as_global() {
        Some(("copyreg" | "copy_reg", "_reconstructor" | "__newobj__" | "__newobj_ex__")) => {
            match &obj.args {
                Value::Tuple(items) => items.first().is_some_and(is_wrapper_class),
                _ => false,
            }
        }
        _ => false,
    }
}

fn is_wrapper_class(v: &Value) -> bool {
    matches!(v.as_global(), Some((module, "NumpyArrayWrapper")) if module == "joblib.numpy_pickle"
        || module.ends_with(".joblib.numpy_pickle"))
}

/// Look up a string key in a dict value (the last binding wins, as in a Python dict).
pub(super) fn dict_get(dict: &Value, key: &str) -> Option<Value> {
    match dict {
        Value::Dict(pairs) => pairs
            .borrow()
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v.clone()),
        _ => None,
    }
}

/// The data that follows a wrapper whose `BUILD` state is `state`.
pub(super) fn array_data(state: &Value) -> Result<ArrayData, String> {
    // BUILD with `(dict, slotstate)` updates `__dict__` and then `setattr`s the slot state, so slot entries
    // override dict entries: lay them over before reading shape and dtype.
    let dict = match state {
        Value::Tuple(items) if items.len() == 2 => {
            let base = items.first().cloned().unwrap_or(Value::None);
            match (&base, items.get(1)) {
                (Value::Dict(pairs), Some(Value::Dict(slots))) => {
                    let mut merged = pairs.borrow().clone();
                    for (key, value) in slots.borrow().iter() {
                        let name = key.as_str();
                        merged.retain(|(k, _)| name.is_none() || k.as_str() != name);
                        merged.push((key.clone(), value.clone()));
                    }
                    Value::Dict(std::rc::Rc::new(std::cell::RefCell::new(merged)))
                }
                (Value::None, Some(slots @ Value::Dict(_))) => slots.clone(),
                _ => base,
            }
        }
        other => other.clone(),
    };
    if !matches!(dict, Value::Dict(_)) {
        return Err(format!(
            "wrapper state is a {}, not a dict",
            dict.type_name()
        ));
    }
    let shape = dict_get(&dict, "shape").ok_or("no 'shape' in the wrapper state")?;
    let count = element_count(&shape)?;
    let dtype = dict_get(&dict, "dtype").ok_or("no 'dtype' in the wrapper state")?;
    let (itemsize, hasobject) = dtype_layout(&dtype)?;
    if hasobject {
        return Ok(ArrayData::Pickle);
    }
    let padded = !matches!(
        dict_get(&dict, "numpy_array_alignment_bytes"),
        None | Some(Value::None)
    );
    let bytes = count
        .checked_mul(itemsize)
        .ok_or("array byte size overflows")?;
    Ok(ArrayData::Raw { padded, bytes })
}

/// `prod(shape)`, 1 for `()`.
fn element_count(shape: &Value) -> Result<u64, String> {
    let dims = shape
        .items()
        .ok_or_else(|| format!("shape is a {}, not a tuple", shape.type_name()))?;
    dims.iter().try_fold(1u64, |acc, d| match d {
        Value::Int(n) => {
            let n = u64::try_from(*n).map_err(|_| format!("negative dimension {n}"))?;
            acc.checked_mul(n)
                .ok_or_else(|| "element count overflows".to_owned())
        }
        other => Err(format!("dimension is a {}, not an int", other.type_name())),
    })
}

/// `(itemsize, hasobject)` of an emulated `numpy.dtype(…)` object.
fn dtype_layout(dtype: &Value) -> Result<(u64, bool), String> {
    let Value::Object(obj) = dtype else {
        return Err(format!(
            "dtype is a {}, not a numpy.dtype object",
            dtype.type_name()
        ));
    };
    let obj = obj.borrow();
    let is_dtype = matches!(obj.callable.as_global(), Some((m, n)) if m.starts_with("numpy") && (n == "dtype" || n.ends_with("DType")));
    if !is_dtype {
        return Err("dtype was not made by numpy.dtype".to_owned());
    }
    let code = match &obj.args {
        Value::Tuple(items) => items.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
    .ok_or("numpy.dtype arguments carry no type string")?;
    // numpy's `__setstate__`: `(version, endian, subdescr, names, fields, elsize, alignment, flags)`. The
    // element size only applies to flexible kinds (S, U, V); flags are only read from version 3 on.
    let (version, elsize, flags) = match &obj.state {
        Some(Value::Tuple(items)) => (int_at(items, 0), int_at(items, 5), int_at(items, 7)),
        _ => (None, None, None),
    };
    let code = code.trim_start_matches(['<', '>', '|', '=']);
    // Datetime units (`M8[ns]`) do not change the item size.
    let code = code.split('[').next().unwrap_or(code);
    let mut chars = code.chars();
    let kind = chars.next().ok_or("empty dtype string")?;
    let flags = flags.filter(|_| version.is_some_and(|v| v >= 3));
    let hasobject = kind == 'O' || flags.is_some_and(|f| f & 1 != 0);
    if hasobject {
        return Ok((8, true));
    }
    let flexible = matches!(kind, 'S' | 'a' | 'U' | 'V');
    if let Some(elsize) = elsize.filter(|e| *e > 0 && flexible) {
        return Ok((elsize as u64, false));
    }
    let digits = chars.as_str();
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("dtype '{code}' has no item size"))?;
    let size = match kind {
        'U' => n.checked_mul(4).ok_or("dtype size overflows")?,
        'b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'a' | 'V' | 'M' | 'm' => n,
        other => return Err(format!("unknown dtype kind '{other}'")),
    };
    Ok((size, false))
}

fn int_at(items: &[Value], i: usize) -> Option<i64> {
    match items.get(i) {
        Some(Value::Int(v)) => Some(*v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::super::ObjectKind;
    use super::*;

    fn global(m: &str, n: &str) -> Value {
        Value::Global {
            module: Rc::from(m),
            name: Rc::from(n),
        }
    }

    fn tuple(items: Vec<Value>) -> Value {
        Value::Tuple(Rc::new(items))
    }

    fn dtype(code: &str, elsize: i64, flags: i64) -> Value {
        let state = tuple(vec![
            Value::Int(3),
            Value::str("<"),
            Value::None,
            Value::None,
            Value::None,
            Value::Int(elsize),
            Value::Int(-1),
            Value::Int(flags),
        ]);
        Value::Object(Rc::new(RefCell::new(PyObject {
            callable: global("numpy", "dtype"),
            kind: ObjectKind::Call,
            args: tuple(vec![
                Value::str(code),
                Value::Bool(false),
                Value::Bool(true),
            ]),
            state: Some(state),
            offset: 0,
        })))
    }

    fn state(shape: Vec<i64>, dtype: Value, aligned: bool) -> Value {
        let mut pairs = vec![
            (
                Value::str("shape"),
                tuple(shape.into_iter().map(Value::Int).collect()),
            ),
            (Value::str("order"), Value::str("C")),
            (Value::str("dtype"), dtype),
        ];
        if aligned {
            pairs.push((Value::str("numpy_array_alignment_bytes"), Value::Int(16)));
        }
        Value::Dict(Rc::new(RefCell::new(pairs)))
    }

    #[test]
    fn sizes_follow_the_dtype() {
        let raw = |code: &str, elsize: i64, shape: Vec<i64>| {
            array_data(&state(shape, dtype(code, elsize, 0), false))
        };
        assert_eq!(
            raw("f8", -1, vec![2, 3]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 48
            })
        );
        assert_eq!(
            raw("i4", -1, vec![]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 4
            })
        );
        assert_eq!(
            raw("u1", -1, vec![5]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 5
            })
        );
        assert_eq!(
            raw("b1", -1, vec![5]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 5
            })
        );
        assert_eq!(
            raw("c16", -1, vec![1]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 16
            })
        );
        assert_eq!(
            raw("f2", -1, vec![3]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 6
            })
        );
        assert_eq!(
            raw("U5", -1, vec![2]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 40
            })
        );
        assert_eq!(
            raw("U5", 20, vec![2]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 40
            })
        );
        assert_eq!(
            raw("S5", -1, vec![2]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 10
            })
        );
        assert_eq!(
            raw("V16", 16, vec![1]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 16
            })
        );
        assert_eq!(
            raw("M8", -1, vec![4]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 32
            })
        );
        assert_eq!(
            raw("<m8", -1, vec![1, 0]),
            Ok(ArrayData::Raw {
                padded: false,
                bytes: 0
            })
        );
        assert_eq!(raw("O8", -1, vec![3]), Ok(ArrayData::Pickle));
        assert_eq!(
            array_data(&state(vec![2], dtype("V16", 16, 63), false)),
            Ok(ArrayData::Pickle)
        );
        assert_eq!(
            array_data(&state(vec![2], dtype("f8", -1, 0), true)),
            Ok(ArrayData::Raw {
                padded: true,
                bytes: 16
            })
        );
        assert!(raw("x9", -1, vec![1]).is_err());
        assert!(raw("f8", -1, vec![-1]).is_err());
        assert!(raw("f8", -1, vec![i64::MAX, 4]).is_err());
        assert!(array_data(&Value::Int(1)).is_err());
        assert!(array_data(&state(vec![1], Value::str("f8"), false)).is_err());
    }

    #[test]
    fn recognises_wrapper_instances() {
        let make = |callable: Value, args: Value| PyObject {
            callable,
            kind: ObjectKind::Instance,
            args,
            state: None,
            offset: 0,
        };
        let class = global("joblib.numpy_pickle", "NumpyArrayWrapper");
        assert!(is_array_wrapper(&make(class.clone(), tuple(vec![]))));
        let via = make(
            global("copyreg", "_reconstructor"),
            tuple(vec![class, global("builtins", "object"), Value::None]),
        );
        assert!(is_array_wrapper(&via));
        let old = global("joblib.numpy_pickle", "NDArrayWrapper");
        assert!(!is_array_wrapper(&make(old, tuple(vec![]))));
    }
}
