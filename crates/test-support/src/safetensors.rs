//! safetensors writers: an honest file laid out like the reference library writes it (header padded with
//! spaces to a multiple of 8, tensors contiguous in order, `__metadata__` of strings), and one file per defect
//! the scanner must notice. Headers are written as text by hand so that defects the JSON libraries cannot
//! express (duplicate keys) can be produced.

use crate::Case;

/// A tensor for [`write`]: name, dtype, shape and raw little-endian data.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// Name (JSON key).
    pub name: String,
    /// dtype, e.g. `F32`.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Raw bytes.
    pub data: Vec<u8>,
}

impl Tensor {
    /// An `F32` tensor filled with `0.5`.
    pub fn f32(name: &str, shape: &[u64]) -> Tensor {
        let n: u64 = shape.iter().product();
        let data = (0..n).flat_map(|_| 0.5f32.to_le_bytes()).collect();
        Tensor {
            name: name.to_owned(),
            dtype: "F32".to_owned(),
            shape: shape.to_vec(),
            data,
        }
    }
}

/// A file with an honest layout: tensors in the given order, contiguous, header padded with spaces.
pub fn write(tensors: &[Tensor], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut entries = Vec::new();
    if !metadata.is_empty() {
        let meta: Vec<String> = metadata
            .iter()
            .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
            .collect();
        entries.push(format!("\"__metadata__\":{{{}}}", meta.join(",")));
    }
    let mut offset = 0u64;
    let mut buffer = Vec::new();
    for t in tensors {
        let end = offset + t.data.len() as u64;
        entries.push(entry(&t.name, &t.dtype, &t.shape, offset, end));
        buffer.extend_from_slice(&t.data);
        offset = end;
    }
    raw(&format!("{{{}}}", entries.join(",")), &buffer)
}

/// One tensor entry as JSON text (`"name":{...}`).
pub fn entry(name: &str, dtype: &str, shape: &[u64], begin: u64, end: u64) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!(
        "{}:{{\"dtype\":{},\"shape\":[{}],\"data_offsets\":[{begin},{end}]}}",
        json_str(name),
        json_str(dtype),
        dims.join(",")
    )
}

/// A file from header text and buffer, header padded with spaces to a multiple of 8 like the reference writer.
pub fn raw(header: &str, buffer: &[u8]) -> Vec<u8> {
    let mut text = header.as_bytes().to_vec();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    raw_bytes(&text, buffer)
}

/// A file from header bytes (not padded, not necessarily UTF-8) and buffer.
pub fn raw_bytes(header: &[u8], buffer: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(buffer);
    out
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A small honest model: three F32 tensors and `{"format": "pt"}` metadata.
pub fn honest() -> Vec<u8> {
    write(
        &[
            Tensor::f32("embed.weight", &[4, 2]),
            Tensor::f32("fc.bias", &[2]),
            Tensor::f32("fc.weight", &[2, 2]),
        ],
        &[("format", "pt")],
    )
}

/// Header that is not valid JSON.
pub fn invalid_json() -> Vec<u8> {
    raw(
        r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#,
        &[0; 8],
    )
}

/// Tensor `w` declared twice with different ranges: readers disagree on which one is the real tensor.
pub fn duplicate_key() -> Vec<u8> {
    let header = format!(
        "{{{},{}}}",
        entry("w", "F32", &[2], 0, 8),
        entry("w", "F32", &[2], 8, 16)
    );
    raw(&header, &[0; 16])
}

/// `w` is F32 `[4]` (16 bytes) but its range covers 8.
pub fn size_mismatch() -> Vec<u8> {
    raw(&format!("{{{}}}", entry("w", "F32", &[4], 0, 8)), &[0; 8])
}

/// A dtype no reader knows.
pub fn unknown_dtype() -> Vec<u8> {
    raw(&format!("{{{}}}", entry("w", "F31", &[2], 0, 8)), &[0; 8])
}

/// `w` ends far past the buffer.
pub fn out_of_bounds() -> Vec<u8> {
    raw(
        &format!("{{{}}}", entry("w", "F32", &[1024], 0, 4096)),
        &[0; 8],
    )
}

/// `a` and `b` share their bytes.
pub fn overlap() -> Vec<u8> {
    let header = format!(
        "{{{},{}}}",
        entry("a", "F32", &[2], 0, 8),
        entry("b", "F32", &[4], 0, 16)
    );
    raw(&header, &[0; 16])
}

/// 16 bytes between `a` and `b` belong to no tensor.
pub fn gap() -> Vec<u8> {
    let header = format!(
        "{{{},{}}}",
        entry("a", "F32", &[2], 0, 8),
        entry("b", "F32", &[2], 24, 32)
    );
    raw(&header, &[0; 32])
}

/// An honest file with `extra` appended after the last tensor.
pub fn trailing_bytes(extra: &[u8]) -> Vec<u8> {
    let mut bytes = honest();
    bytes.extend_from_slice(extra);
    bytes
}

/// `__metadata__` with a number value (the reference loader refuses the file).
pub fn metadata_not_string() -> Vec<u8> {
    let header = format!(
        "{{\"__metadata__\":{{\"format\":\"pt\",\"epoch\":3}},{}}}",
        entry("w", "F32", &[2], 0, 8)
    );
    raw(&header, &[0; 8])
}

/// Honest layout whose metadata carries a code string.
pub fn suspicious_metadata() -> Vec<u8> {
    write(
        &[Tensor::f32("w", &[2])],
        &[
            ("format", "pt"),
            ("hook", "__import__('os').system('echo pwned')"),
        ],
    )
}

/// A benign twin with a different size and more metadata, like a fine-tuning export.
pub fn honest_with_metadata() -> Vec<u8> {
    write(
        &[
            Tensor::f32("model.layers.0.mlp.down_proj.weight", &[8, 4]),
            Tensor::f32("model.layers.0.mlp.up_proj.weight", &[4, 8]),
            Tensor {
                name: "model.norm.weight".into(),
                dtype: "BF16".into(),
                shape: vec![4],
                data: vec![0x80, 0x3f, 0x80, 0x3f, 0x80, 0x3f, 0x80, 0x3f],
            },
        ],
        &[
            ("format", "pt"),
            ("modelspec.architecture", "llama"),
            ("training", "{\"epochs\": \"3\", \"lr\": \"2e-5\"}"),
        ],
    )
}

/// Malicious and benign cases of this format.
pub fn corpus() -> Vec<Case> {
    let m = |name: &str, bytes, rule, technique| {
        Case::malicious(
            &format!("safetensors/{name}"),
            "model.safetensors",
            bytes,
            rule,
            technique,
        )
    };
    let b = |name: &str, bytes, technique| {
        Case::benign(
            &format!("safetensors/{name}"),
            "model.safetensors",
            bytes,
            technique,
        )
    };
    vec![
        m(
            "invalid-json",
            invalid_json(),
            "AEG-SCAN-300",
            "header that is not valid JSON",
        ),
        b("honest", honest(), "honest safetensors file"),
        m(
            "unknown-dtype",
            unknown_dtype(),
            "AEG-SCAN-301",
            "tensor with an unknown dtype",
        ),
        b(
            "honest-bf16",
            honest_with_metadata(),
            "honest file with BF16 and metadata",
        ),
        m(
            "size-mismatch",
            size_mismatch(),
            "AEG-SCAN-302",
            "range smaller than dtype x shape",
        ),
        b(
            "honest-sizes",
            write(&[Tensor::f32("w", &[4])], &[]),
            "range equal to dtype x shape",
        ),
        m(
            "out-of-bounds",
            out_of_bounds(),
            "AEG-SCAN-303",
            "tensor range past the buffer",
        ),
        b(
            "honest-single",
            write(&[Tensor::f32("w", &[1024])], &[]),
            "large tensor inside the buffer",
        ),
        m(
            "overlap",
            overlap(),
            "AEG-SCAN-304",
            "two tensors aliasing the same bytes",
        ),
        b(
            "honest-adjacent",
            write(&[Tensor::f32("a", &[2]), Tensor::f32("b", &[4])], &[]),
            "adjacent tensors",
        ),
        m(
            "duplicate-key",
            duplicate_key(),
            "AEG-SCAN-306",
            "tensor name declared twice",
        ),
        b(
            "honest-similar-names",
            write(&[Tensor::f32("w", &[2]), Tensor::f32("w.1", &[2])], &[]),
            "similar but distinct tensor names",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_header_is_padded_and_parses_as_json() {
        let bytes = honest();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let json: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(json["fc.bias"]["data_offsets"], serde_json::json!([32, 40]));
        assert_eq!(bytes.len(), 8 + n + 56);
    }

    #[test]
    fn corpus_has_twins() {
        let cases = corpus();
        assert!(cases.iter().filter(|c| c.malicious).count() >= 6);
        assert!(cases.iter().filter(|c| !c.malicious).count() >= 6);
    }
}
