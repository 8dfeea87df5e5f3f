//! Keras model configs (Keras 3 `config.json`, tf.keras 2 `model_config`), `.keras` v3 archives (a minimal
//! stored-only zip writer of its own) and their corpus cases.
//!
//! Lambda "bytecode" here is a stand-in shaped like `marshal.dumps(code)` (type byte `0xe3`, then the names
//! a real payload would mention as marshal short strings); it is base64-encoded the way Keras's `func_dump`
//! does. It is never valid Python and is never unmarshalled or run.

use serde_json::{json, Value};

use crate::Case;

/// Which config [`sequential_config`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Input, Dense, Dropout, Dense with Keras modules.
    Honest,
    /// A keras_hub backbone (allowed module) around Dense layers.
    KerasHub,
    /// tf.keras 2 Lambda: `function` = `[base64 code, null, null]`.
    LambdaList,
    /// Keras 3 Lambda: `function` = `{"class_name": "__lambda__", "config": {"code": ...}}`.
    Lambda3,
    /// Keras 3 function object `os.system` as a Lambda's function.
    FunctionOs,
    /// A layer class imported from `subprocess` (`Popen`).
    ModuleImport,
    /// A layer class from a user package (`acme_layers`).
    CustomModule,
    /// A `TFSMLayer` loading `/tmp/other_model`.
    Tfsm,
    /// A tf.keras 2 registered custom layer (`Custom>ScaledDense`).
    Registered,
}

/// A stand-in for `marshal.dumps(code)` of `lambda x: __import__('os').system(cmd) or x`.
pub fn fake_lambda_code(cmd: &str) -> Vec<u8> {
    let mut code = vec![
        0xe3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0x43, 0, 0, 0,
    ];
    code.extend_from_slice(b"s\x10\x00\x00\x00t\x00d\x01\x83\x01\xa0\x01|\x00\xa1\x01S\x00");
    code.extend_from_slice(b")\x02N");
    let cmd = &cmd.as_bytes()[..cmd.len().min(255)];
    code.push(b'z');
    code.push(cmd.len() as u8);
    code.extend_from_slice(cmd);
    for name in ["__import__", "os", "system"] {
        code.push(0xda);
        code.push(name.len() as u8);
        code.extend_from_slice(name.as_bytes());
    }
    code.extend_from_slice(
        b"\xa9\x01\xda\x01x\xa9\x00\xfa\x07<stdin>\xda\x08<lambda>\x01\x00\x00\x00",
    );
    code
}

/// Base64 as Python's `codecs.encode(data, "base64")` writes it: standard alphabet, `=` padding, a newline
/// after every 76 characters and at the end.
pub fn base64_lines(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut plain = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                plain.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                plain.push('=');
            }
        }
    }
    let mut out = String::new();
    for (i, c) in plain.chars().enumerate() {
        if i > 0 && i % 76 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push('\n');
    out
}

fn initializer(class: &str) -> Value {
    json!({"module": "keras.initializers", "class_name": class, "config": {"seed": null}, "registered_name": null})
}

fn dense(name: &str, units: u32, activation: &str) -> Value {
    json!({
        "module": "keras.layers", "class_name": "Dense", "registered_name": null,
        "config": {
            "name": name, "trainable": true, "dtype": "float32", "units": units, "activation": activation,
            "use_bias": true, "kernel_initializer": initializer("GlorotUniform"),
            "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
            "kernel_regularizer": null, "bias_regularizer": null, "kernel_constraint": null, "bias_constraint": null
        },
        "build_config": {"input_shape": [null, 16]}
    })
}

fn input_layer() -> Value {
    json!({
        "module": "keras.layers", "class_name": "InputLayer", "registered_name": null,
        "config": {"batch_shape": [null, 16], "dtype": "float32", "sparse": false, "name": "input_layer"}
    })
}

fn dropout() -> Value {
    json!({"module": "keras.layers", "class_name": "Dropout", "registered_name": null,
           "config": {"name": "dropout", "trainable": true, "dtype": "float32", "rate": 0.2, "seed": null}})
}

/// The odd layer of a variant (`None` for honest).
fn special_layer(variant: Variant) -> Option<Value> {
    let code = base64_lines(&fake_lambda_code("echo pwned"));
    Some(match variant {
        Variant::Honest => return None,
        Variant::KerasHub => json!({
            "module": "keras_hub.src.models.bert.bert_backbone", "class_name": "BertBackbone",
            "registered_name": "keras_hub>BertBackbone", "config": {"name": "bert_backbone", "vocabulary_size": 30522}
        }),
        Variant::LambdaList => json!({
            "class_name": "Lambda",
            "config": {"name": "lambda", "trainable": true, "dtype": "float32",
                       "function": [code, null, null], "function_type": "lambda", "module": "__main__",
                       "output_shape": null, "output_shape_type": "raw", "output_shape_module": null,
                       "arguments": {}}
        }),
        Variant::Lambda3 => json!({
            "module": "keras.layers", "class_name": "Lambda", "registered_name": null,
            "config": {"name": "lambda", "trainable": true, "dtype": "float32",
                       "function": {"class_name": "__lambda__", "config": {"code": code, "defaults": null, "closure": null}},
                       "arguments": {}}
        }),
        Variant::FunctionOs => json!({
            "module": "keras.layers", "class_name": "Lambda", "registered_name": null,
            "config": {"name": "lambda", "trainable": true, "dtype": "float32",
                       "function": {"module": "os", "class_name": "function", "config": "system", "registered_name": "function"},
                       "arguments": {}}
        }),
        Variant::ModuleImport => json!({
            "module": "subprocess", "class_name": "Popen", "registered_name": null,
            "config": {"args": ["echo", "pwned"], "name": "popen"}
        }),
        Variant::CustomModule => json!({
            "module": "acme_layers.attention", "class_name": "GatedAttention", "registered_name": "acme>GatedAttention",
            "config": {"name": "gated_attention", "units": 16}
        }),
        Variant::Tfsm => json!({
            "module": "keras.layers", "class_name": "TFSMLayer", "registered_name": null,
            "config": {"name": "tfsm_layer", "filepath": "/tmp/other_model", "call_endpoint": "serving_default"}
        }),
        Variant::Registered => json!({
            "class_name": "Custom>ScaledDense",
            "config": {"name": "scaled_dense", "units": 16, "scale": 0.5}
        }),
    })
}

/// A Sequential model config (JSON text) with an input, Dense, Dropout and Dense layers, plus the odd layer
/// of `variant` after the first Dense. tf.keras-only variants use the tf.keras 2 layout (no `module` keys).
pub fn sequential_config(variant: Variant) -> String {
    let mut layers = vec![input_layer(), dense("dense", 32, "relu")];
    layers.extend(special_layer(variant));
    layers.push(dropout());
    layers.push(dense("dense_1", 10, "softmax"));
    let tf_keras = matches!(variant, Variant::LambdaList | Variant::Registered);
    let config = if tf_keras {
        json!({"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}})
    } else {
        json!({
            "module": "keras", "class_name": "Sequential", "registered_name": null,
            "config": {"name": "sequential", "trainable": true, "dtype": "float32", "layers": layers},
            "build_config": {"input_shape": [null, 16]},
            "compile_config": {
                "optimizer": {"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.001}, "registered_name": null},
                "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]
            }
        })
    };
    config.to_string()
}

/// CRC-32 (IEEE), bitwise.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A stored-only (no compression) zip archive of `members`, as Python's `zipfile` writes with
/// `ZIP_STORED`: local headers, central directory, end record.
pub fn stored_zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0]); // version, flags, method stored
        out.extend_from_slice(&[0, 0, 0x21, 0]); // time, date (1980-01-01)
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);

        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[20, 3, 20, 0, 0, 0, 0, 0]); // made by, needed, flags, method
        central.extend_from_slice(&[0, 0, 0x21, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // extra, comment, disk, internal attrs
        central.extend_from_slice(&0o100644u32.wrapping_shl(16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    let cd_size = central.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A `.keras` v3 archive: `metadata.json`, `config.json` and `model.weights.h5`.
pub fn keras_archive(variant: Variant) -> Vec<u8> {
    let metadata = br#"{"keras_version": "3.3.3", "date_saved": "2024-05-01@10:00:00"}"#;
    let config = sequential_config(variant);
    let weights = crate::hdf5::empty_h5();
    stored_zip(&[
        ("metadata.json", metadata),
        ("config.json", config.as_bytes()),
        ("model.weights.h5", &weights),
    ])
}

/// Malicious and benign cases of this format.
pub fn corpus() -> Vec<Case> {
    const LAMBDA: &str = "Lambda layer with marshalled Python bytecode";
    const IMPORT: &str = "deserialization imports a non-Keras module";
    const FUNC: &str = "serialized reference to a gadget function (os.system)";
    const TFSM: &str = "TFSMLayer loading a SavedModel from an outside path";
    let cfg = |v| sequential_config(v).into_bytes();
    vec![
        Case::malicious(
            "keras/v3-archive-lambda",
            "model.keras",
            keras_archive(Variant::Lambda3),
            "AEG-SCAN-600",
            LAMBDA,
        ),
        Case::benign(
            "keras/v3-archive-honest",
            "model.keras",
            keras_archive(Variant::Honest),
            LAMBDA,
        ),
        Case::malicious(
            "keras/config-json-tf-keras-lambda",
            "config.json",
            cfg(Variant::LambdaList),
            "AEG-SCAN-600",
            LAMBDA,
        ),
        Case::benign(
            "keras/config-json-honest",
            "config.json",
            cfg(Variant::Honest),
            LAMBDA,
        ),
        Case::malicious(
            "keras/function-os-system",
            "config.json",
            cfg(Variant::FunctionOs),
            "AEG-SCAN-602",
            FUNC,
        ),
        Case::benign(
            "keras/keras-hub-backbone",
            "config.json",
            cfg(Variant::KerasHub),
            FUNC,
        ),
        Case::malicious(
            "keras/module-subprocess-popen",
            "config.json",
            cfg(Variant::ModuleImport),
            "AEG-SCAN-601",
            IMPORT,
        ),
        Case::benign(
            "keras/registered-custom-layer",
            "config.json",
            cfg(Variant::Registered),
            IMPORT,
        ),
        Case::malicious(
            "keras/v3-archive-tfsmlayer",
            "model.keras",
            keras_archive(Variant::Tfsm),
            "AEG-SCAN-603",
            TFSM,
        ),
        Case::benign(
            "keras/v3-archive-keras-hub",
            "model.keras",
            keras_archive(Variant::KerasHub),
            TFSM,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_python_layout() {
        assert_eq!(base64_lines(b"abc"), "YWJj\n");
        assert_eq!(base64_lines(b"ab"), "YWI=\n");
        assert_eq!(base64_lines(b"a"), "YQ==\n");
        let long = base64_lines(&[0u8; 60]);
        assert_eq!(long.lines().next().map(str::len), Some(76));
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn configs_are_valid_json() {
        for v in [
            Variant::Honest,
            Variant::LambdaList,
            Variant::Lambda3,
            Variant::Tfsm,
            Variant::Registered,
        ] {
            let _: Value = serde_json::from_str(&sequential_config(v)).unwrap();
        }
    }

    #[test]
    fn zip_ends_with_eocd() {
        let z = stored_zip(&[("a.txt", b"hello")]);
        assert_eq!(&z[z.len() - 22..z.len() - 18], b"PK\x05\x06");
        assert!(z.starts_with(b"PK\x03\x04"));
    }
}
