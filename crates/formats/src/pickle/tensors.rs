//! What a PyTorch pickle says about its tensors, read as data: the storages it declares through persistent ids
//! (`('storage', torch.FloatStorage, '0', 'cpu', 4)`), the views `torch._utils._rebuild_tensor_v2(storage,
//! offset, size, stride, …)` builds over them, and item opcodes (`SETITEM(S)`, `APPEND(S)`) applied to a
//! tensor. Only allowed names appear in these, so an allow-list passes them; but a view that reaches past its
//! storage, a storage that declares more elements than its data holds, or an item write into a tensor are
//! memory-safety primitives against the loader (the CVE-2026-24747 class for torch < 2.10). The scanner
//! checks them; this module only extracts them.

use super::value::Value;

/// A storage declared by a persistent id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageDecl {
    /// The storage's key: its data is the archive member `data/<key>`.
    pub key: String,
    /// The storage class's name (`FloatStorage`, `UntypedStorage`, …).
    pub storage_type: String,
    /// Elements it declares.
    pub numel: u64,
    /// Offset of the persistent-id opcode.
    pub offset: u64,
}

/// A tensor view over a declared storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorView {
    /// The storage's key.
    pub key: String,
    /// Elements the storage declares.
    pub numel: u64,
    /// First element of the view.
    pub storage_offset: u64,
    /// Sizes.
    pub size: Vec<u64>,
    /// Strides, in elements.
    pub stride: Vec<u64>,
    /// Offset of the `REDUCE`.
    pub offset: u64,
}

impl TensorView {
    /// One past the last storage element the view touches (`None` on overflow); the offset itself for an
    /// empty view.
    pub fn extent(&self) -> Option<u64> {
        if self.size.contains(&0) {
            return Some(self.storage_offset);
        }
        let mut last = self.storage_offset;
        for (size, stride) in self.size.iter().zip(&self.stride) {
            last = last.checked_add((size - 1).checked_mul(*stride)?)?;
        }
        last.checked_add(1)
    }
}

/// An item opcode applied to a tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorWrite {
    /// `SETITEM`, `SETITEMS`, `APPEND` or `APPENDS`.
    pub opcode: &'static str,
    /// The callable that produced the tensor.
    pub target: String,
    /// Offset of the opcode.
    pub offset: u64,
}

/// The storage a persistent id declares, if it is a PyTorch storage id.
pub(crate) fn storage_decl(pid: &Value, offset: u64) -> Option<StorageDecl> {
    let Value::Tuple(items) = pid else {
        return None;
    };
    match items.as_slice() {
        // Legacy (pre-zip) pickles append view metadata.
        [tag, Value::Global { name, .. }, key, _location, Value::Int(numel), ..]
            if is_str(tag, "storage") =>
        {
            Some(StorageDecl {
                key: text(key)?,
                storage_type: name.to_string(),
                numel: u64::try_from(*numel).ok()?,
                offset,
            })
        }
        _ => None,
    }
}

/// The view a `_rebuild_tensor*` call builds, if `func` is one and its arguments are constants.
pub(crate) fn view(func: &Value, args: &Value, offset: u64) -> Option<TensorView> {
    let Value::Global { module, name } = func else {
        return None;
    };
    if &**module != "torch._utils" || !name.starts_with("_rebuild_tensor") {
        return None;
    }
    let Value::Tuple(args) = args else {
        return None;
    };
    let [Value::Persistent(pid), Value::Int(storage_offset), size, stride, ..] = args.as_slice()
    else {
        return None;
    };
    let decl = storage_decl(pid, offset)?;
    let size = ints(size)?;
    let stride = ints(stride)?;
    (size.len() == stride.len()).then_some(TensorView {
        key: decl.key,
        numel: decl.numel,
        storage_offset: u64::try_from(*storage_offset).ok()?,
        size,
        stride,
        offset,
    })
}

/// Whether objects made by `callable` are tensors or parameters.
pub(crate) fn makes_tensor(callable: &Value) -> Option<String> {
    let Value::Global { module, name } = callable else {
        return None;
    };
    let tensor = match &**module {
        "torch._utils" => name.starts_with("_rebuild_"),
        "torch._tensor" => name.starts_with("_rebuild_"),
        "torch" => matches!(&**name, "Tensor" | "tensor" | "from_numpy"),
        "torch.nn.parameter" => &**name == "Parameter",
        _ => false,
    };
    tensor.then(|| format!("{module}.{name}"))
}

fn is_str(v: &Value, s: &str) -> bool {
    matches!(v, Value::Str { text, .. } if &**text == s)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Str { text, .. } => Some(text.to_string()),
        _ => None,
    }
}

fn ints(v: &Value) -> Option<Vec<u64>> {
    let Value::Tuple(items) = v else {
        return None;
    };
    items
        .iter()
        .map(|i| match i {
            Value::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_of(size: &[u64], stride: &[u64], offset: u64) -> TensorView {
        TensorView {
            key: "0".into(),
            numel: 4,
            storage_offset: offset,
            size: size.to_vec(),
            stride: stride.to_vec(),
            offset: 0,
        }
    }

    #[test]
    fn extent_is_one_past_the_last_element() {
        assert_eq!(view_of(&[2, 2], &[2, 1], 0).extent(), Some(4));
        assert_eq!(view_of(&[4], &[1], 1).extent(), Some(5));
        assert_eq!(view_of(&[0, 9], &[9, 1], 3).extent(), Some(3));
        assert_eq!(view_of(&[2], &[u64::MAX], 0).extent(), None);
    }
}
