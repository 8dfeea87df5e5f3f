//! Keras model configurations (`config.json` of `.keras` v3 zips, the `model_config` attribute of Keras 2
//! `.h5` files, the per-object metadata of `keras_metadata.pb`), read as JSON data.
//!
//! A Keras config is a tree of objects `{"class_name", "config", "module"?, "registered_name"?}`. Loading one
//! imports `module`, looks up `class_name` there and calls it with `config`; a `Lambda` layer carries Python
//! bytecode (`marshal` of a code object, base64) that `safe_mode=False` or old Keras runs on load.
//! [`analyze_config`] walks the tree (depth- and count-bounded) and lists every such reference as an
//! [`Item`]; deciding what is dangerous is left to `aegis-scan`. Nothing is imported or executed: lambda
//! bytecode is only base64-decoded and searched for the names it mentions.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};

use crate::{Error, Limits, Result};

const FORMAT: &str = "keras";

/// Deepest JSON nesting walked (serde_json itself refuses more than 128 levels when parsing).
pub const MAX_JSON_DEPTH: usize = 128;

/// One thing in a Keras config that makes loading import or run code, or read another file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// Python bytecode of a lambda (a `Lambda` layer function or any `__lambda__` object).
    Lambda {
        /// JSON path of the function value.
        path: String,
        /// Name of the layer, when known.
        layer: Option<String>,
        /// Which serialization: `tf.keras func_dump list`, `keras 3 __lambda__`, `legacy string`.
        style: &'static str,
        /// Length of the decoded bytecode (0 when it did not decode).
        code_len: usize,
        /// Whether the decoded bytes start like a marshalled code object.
        marshal_code: bool,
        /// Names and constants found in the bytecode.
        strings: Vec<String>,
    },
    /// An object whose class is imported from a module (`module` + `class_name`).
    ClassImport {
        /// JSON path of the object.
        path: String,
        /// Module loading imports.
        module: String,
        /// Class looked up in it.
        class_name: String,
    },
    /// A reference to a named function in a module (Keras 3 `{"class_name": "function"}` objects, or a
    /// `Lambda` whose `function_type` is `function`).
    FunctionRef {
        /// JSON path of the object.
        path: String,
        /// Module (empty when the config gives none).
        module: String,
        /// Function name.
        function: String,
    },
    /// A `TFSMLayer`: loads another SavedModel from a path when the model is loaded.
    TfsmLayer {
        /// JSON path of the layer.
        path: String,
        /// Layer name.
        layer: Option<String>,
        /// The path it loads.
        filepath: String,
    },
    /// A layer whose config names a file it reads at load time (`StringLookup`/`IntegerLookup`/
    /// `TextVectorization` with `vocabulary` a path: any local file, or a URL through `tf.io.gfile`).
    FileRead {
        /// JSON path of the layer.
        path: String,
        /// Layer name.
        layer: Option<String>,
        /// Layer class.
        class_name: String,
        /// Config key holding the path.
        key: String,
        /// The path or URL.
        file: String,
    },
    /// A custom object registered with `register_keras_serializable` (needs user code to load).
    RegisteredObject {
        /// JSON path of the object.
        path: String,
        /// Class name.
        class_name: String,
        /// Registered name (`package>Name`).
        registered_name: String,
        /// Module, when given.
        module: Option<String>,
    },
}

/// What [`analyze_config`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigReport {
    /// References found, in document order.
    pub items: Vec<Item>,
    /// Objects with `class_name` walked.
    pub objects: u64,
    /// Whether part of the tree was deeper than [`MAX_JSON_DEPTH`].
    pub depth_limited: bool,
    /// Whether the walk stopped at `max_entries` values.
    pub truncated: bool,
}

/// Parse a JSON document of at most `limits.max_header` bytes.
pub fn parse_json(bytes: &[u8], limits: &Limits) -> Result<Value> {
    if bytes.len() as u64 > limits.max_header {
        return Err(Error::limit(
            FORMAT,
            "JSON size",
            bytes.len() as u64,
            limits.max_header,
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::malformed(FORMAT, e.column() as u64, e.to_string()))
}

/// An object in Keras serialization form: a string `class_name` and a `config`.
fn is_keras_object(v: &Value) -> bool {
    v.get("class_name").is_some_and(Value::is_string) && v.get("config").is_some()
}

/// Whether a JSON document is a Keras model config: a Keras object at the root, or under one of the keys
/// wrappers use (`model_config`, `modelTopology`, `config`).
pub fn looks_like_keras_config(v: &Value) -> bool {
    is_keras_object(v)
        || ["model_config", "modelTopology", "config"]
            .iter()
            .any(|k| v.get(k).is_some_and(is_keras_object))
}

/// Modules Keras itself ships (`keras`, `keras.*`, `keras_hub`, `keras_nlp`, `keras_cv`, `tf_keras`,
/// `tensorflow.keras`, `keras_core`).
pub fn is_keras_module(module: &str) -> bool {
    const ROOTS: &[&str] = &[
        "keras",
        "keras_nlp",
        "keras_hub",
        "keras_cv",
        "keras_core",
        "tf_keras",
        "tensorflow.keras",
    ];
    ROOTS.iter().any(|root| {
        module
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// Keras modules whose functions only compute (activations, losses, metrics, initializers, regularizers,
/// constraints, optimizers and their schedules, ops, random): a serialized reference to a function there is
/// what honest configs hold. Keras functions elsewhere (`keras.utils.get_file`, `keras.saving.load_model`,
/// `keras.config.enable_unsafe_deserialization`, dataset loaders) download, read or write files, or turn
/// safety off: they are trusted by what they do, not by living under `keras`.
pub fn is_keras_compute_module(module: &str) -> bool {
    const COMPUTE: &[&str] = &[
        "activations",
        "losses",
        "metrics",
        "initializers",
        "regularizers",
        "constraints",
        "optimizers",
        "schedules",
        "ops",
        "random",
    ];
    is_keras_module(module) && module.split('.').any(|part| COMPUTE.contains(&part))
}

/// Lookup layers whose `vocabulary` may be a file path.
const VOCABULARY_LAYERS: &[&str] = &["StringLookup", "IntegerLookup", "TextVectorization"];

/// A registration by a Keras package itself (`keras_hub>BertBackbone` from a `keras_hub` module).
fn keras_registration(registered: &str, module: Option<&str>) -> bool {
    let package = registered.split_once('>').map(|(p, _)| p);
    module.is_some_and(is_keras_module) && package.is_some_and(is_keras_module)
}

/// Walk a Keras config and list the code and file references it makes.
pub fn analyze_config(v: &Value, limits: &Limits) -> ConfigReport {
    let mut walker = ConfigWalker {
        report: ConfigReport::default(),
        budget: limits.max_entries,
    };
    walker.value(v, "$", 0, None);
    walker.report
}

struct ConfigWalker {
    report: ConfigReport,
    budget: u64,
}

impl ConfigWalker {
    /// Walk `v`; `layer` is the name of the innermost enclosing object that has one.
    fn value(&mut self, v: &Value, path: &str, depth: usize, layer: Option<&str>) {
        if self.budget == 0 {
            self.report.truncated = true;
            return;
        }
        self.budget -= 1;
        if depth >= MAX_JSON_DEPTH {
            self.report.depth_limited = true;
            return;
        }
        match v {
            Value::Object(map) => {
                let own = v
                    .get("config")
                    .and_then(|c| c.get("name"))
                    .and_then(Value::as_str);
                let layer = own.or(layer);
                if is_keras_object(v)
                    || v.get("class_name").and_then(Value::as_str) == Some("__lambda__")
                {
                    self.report.objects += 1;
                    self.object(map, path, layer);
                }
                for (k, child) in map {
                    self.value(child, &format!("{path}.{k}"), depth + 1, layer);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    self.value(child, &format!("{path}[{i}]"), depth + 1, layer);
                }
            }
            _ => {}
        }
    }

    /// Inspect one `{"class_name", "config", ...}` object; its children are walked by the caller.
    fn object(&mut self, map: &Map<String, Value>, path: &str, layer: Option<&str>) {
        let class_name = map
            .get("class_name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let module = map.get("module").and_then(Value::as_str);
        let config = map.get("config");
        let layer = layer.map(str::to_owned);
        match class_name {
            "__lambda__" => self.lambda_object(map, path, layer),
            "Lambda" => self.lambda_layer(config, path, layer),
            "function" => {
                if let Some(function) = config.and_then(Value::as_str) {
                    let module = module.unwrap_or_default();
                    if !is_keras_compute_module(module) {
                        self.report.items.push(Item::FunctionRef {
                            path: path.to_owned(),
                            module: module.to_owned(),
                            function: function.to_owned(),
                        });
                    }
                }
                return;
            }
            "TFSMLayer" => {
                if let Some(fp) = config
                    .and_then(|c| c.get("filepath"))
                    .and_then(Value::as_str)
                {
                    self.report.items.push(Item::TfsmLayer {
                        path: path.to_owned(),
                        layer,
                        filepath: fp.to_owned(),
                    });
                }
            }
            name if VOCABULARY_LAYERS.contains(&name) => {
                if let Some(file) = config
                    .and_then(|c| c.get("vocabulary"))
                    .and_then(Value::as_str)
                {
                    self.report.items.push(Item::FileRead {
                        path: path.to_owned(),
                        layer: layer.clone(),
                        class_name: name.to_owned(),
                        key: "vocabulary".to_owned(),
                        file: file.to_owned(),
                    });
                }
            }
            _ => {}
        }
        if let Some(module) = module {
            // A Keras function deserialized as if it were a layer class: Keras imports the module and calls
            // the attribute with the config (CVE-2025-8747: `keras.utils.get_file` downloads anywhere).
            let function_shaped = class_name
                .trim_start_matches('_')
                .chars()
                .next()
                .is_some_and(char::is_lowercase);
            if is_keras_module(module) && function_shaped && !is_keras_compute_module(module) {
                self.report.items.push(Item::FunctionRef {
                    path: path.to_owned(),
                    module: module.to_owned(),
                    function: class_name.to_owned(),
                });
                return;
            }
            if !is_keras_module(module) {
                self.report.items.push(Item::ClassImport {
                    path: path.to_owned(),
                    module: module.to_owned(),
                    class_name: class_name.to_owned(),
                });
                return;
            }
        }
        let registered = map.get("registered_name").and_then(Value::as_str);
        let custom = match registered {
            Some(r) => {
                !r.is_empty()
                    && (r != class_name || r.contains('>'))
                    && !keras_registration(r, module)
            }
            None => class_name.contains('>'),
        };
        if custom {
            self.report.items.push(Item::RegisteredObject {
                path: path.to_owned(),
                class_name: class_name.to_owned(),
                registered_name: registered.unwrap_or(class_name).to_owned(),
                module: module.map(str::to_owned),
            });
        }
    }

    /// Keras 3: `{"class_name": "__lambda__", "code": ...}` (Lambda layer) or
    /// `{"class_name": "__lambda__", "config": {"value": [code, defaults, closure]}}` (any lambda).
    fn lambda_object(&mut self, map: &Map<String, Value>, path: &str, layer: Option<String>) {
        let config = map.get("config");
        let code = map
            .get("code")
            .or_else(|| config.and_then(|c| c.get("code")))
            .or_else(|| config.and_then(|c| c.get("value")))
            .or_else(|| map.get("value"));
        let code = match code {
            Some(Value::Array(parts)) => parts.first().and_then(Value::as_str),
            Some(other) => other.as_str(),
            None => None,
        };
        self.push_lambda(path, layer, "keras 3 __lambda__", code.unwrap_or_default());
    }

    /// tf.keras 2 `Lambda`: `config.function` is `[code, defaults, closure]` or, for `function_type`
    /// `lambda`, the code string; `function_type` `function` names a module function. `output_shape` may be
    /// a lambda too.
    fn lambda_layer(&mut self, config: Option<&Value>, path: &str, layer: Option<String>) {
        let Some(config) = config else { return };
        for (key, type_key) in [
            ("function", "function_type"),
            ("output_shape", "output_shape_type"),
        ] {
            let kind = config.get(type_key).and_then(Value::as_str);
            let sub = format!("{path}.config.{key}");
            match config.get(key) {
                Some(Value::Array(parts)) => {
                    let Some(code) = parts.first().and_then(Value::as_str) else {
                        continue;
                    };
                    if key == "function"
                        || kind == Some("lambda")
                        || decode_base64(code).is_some_and(|c| c.len() >= 16)
                    {
                        self.push_lambda(&sub, layer.clone(), "tf.keras func_dump list", code);
                    }
                }
                Some(Value::String(s)) if kind == Some("lambda") => {
                    self.push_lambda(&sub, layer.clone(), "legacy string", s);
                }
                Some(Value::String(s))
                    if kind == Some("function") || (key == "function" && kind.is_none()) =>
                {
                    let module = config
                        .get("module")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !is_keras_compute_module(module) {
                        self.report.items.push(Item::FunctionRef {
                            path: sub,
                            module: module.to_owned(),
                            function: s.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
    }

    fn push_lambda(&mut self, path: &str, layer: Option<String>, style: &'static str, code: &str) {
        let decoded = decode_base64(code).unwrap_or_default();
        self.report.items.push(Item::Lambda {
            path: path.to_owned(),
            layer,
            style,
            code_len: decoded.len(),
            marshal_code: matches!(decoded.first(), Some(0x63 | 0xe3)),
            strings: crate::marshal::strings(&decoded),
        });
    }
}

/// Base64 as Python's `codecs.encode(..., "base64")` writes it: standard alphabet, newlines every 76
/// characters, padding present (accepted either way).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return None;
    }
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine.decode(compact.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_test_support::keras as gen;
    use serde_json::json;

    fn analyze(v: &Value) -> ConfigReport {
        analyze_config(v, &Limits::default())
    }

    #[test]
    fn honest_sequential_has_no_items() {
        let v: Value = serde_json::from_str(&gen::sequential_config(gen::Variant::Honest)).unwrap();
        assert!(looks_like_keras_config(&v));
        let report = analyze(&v);
        assert!(report.items.is_empty(), "{:?}", report.items);
        assert!(report.objects >= 3);
    }

    #[test]
    fn finds_tf_keras_lambda_bytecode() {
        let v: Value =
            serde_json::from_str(&gen::sequential_config(gen::Variant::LambdaList)).unwrap();
        let report = analyze(&v);
        let Some(Item::Lambda {
            code_len,
            strings,
            marshal_code,
            ..
        }) = report.items.first()
        else {
            panic!("{:?}", report.items)
        };
        assert!(*code_len > 0 && *marshal_code);
        assert!(strings.iter().any(|s| s == "system"), "{strings:?}");
    }

    #[test]
    fn finds_keras3_lambda_and_function_refs() {
        let v: Value =
            serde_json::from_str(&gen::sequential_config(gen::Variant::Lambda3)).unwrap();
        assert!(matches!(
            analyze(&v).items.first(),
            Some(Item::Lambda {
                style: "keras 3 __lambda__",
                ..
            })
        ));
        let v: Value =
            serde_json::from_str(&gen::sequential_config(gen::Variant::FunctionOs)).unwrap();
        let items = analyze(&v).items;
        assert!(
            items.iter().any(|i| matches!(i, Item::FunctionRef { module, function, .. } if module == "os" && function == "system")),
            "{items:?}"
        );
    }

    #[test]
    fn module_imports_and_custom_objects() {
        let v = json!({"module": "keras", "class_name": "Sequential", "registered_name": null, "config": {
        "layers": [
            {"module": "subprocess", "class_name": "Popen", "config": {}, "registered_name": null},
            {"module": "my_pkg.layers", "class_name": "Block", "config": {}, "registered_name": "my_pkg>Block"},
            {"module": "keras.src.models.functional", "class_name": "Functional", "config": {}, "registered_name": "Functional"},
            {"module": "keras.layers", "class_name": "Dense", "config": {}, "registered_name": "Custom>Dense"},
            {"module": "keras_hub.src.models.gemma", "class_name": "GemmaBackbone", "config": {}, "registered_name": "keras_hub>GemmaBackbone"},
            {"class_name": "TFSMLayer", "config": {"name": "t", "filepath": "/tmp/other"}}
        ]}});
        let items = analyze(&v).items;
        assert!(items
            .iter()
            .any(|i| matches!(i, Item::ClassImport { module, .. } if module == "subprocess")));
        assert!(items
            .iter()
            .any(|i| matches!(i, Item::ClassImport { module, .. } if module == "my_pkg.layers")));
        assert!(items.iter().any(|i| matches!(i, Item::RegisteredObject { registered_name, .. } if registered_name == "Custom>Dense")));
        assert!(items
            .iter()
            .any(|i| matches!(i, Item::TfsmLayer { filepath, .. } if filepath == "/tmp/other")));
        assert!(!items.iter().any(
            |i| matches!(i, Item::RegisteredObject { class_name, .. } if class_name == "Functional")
        ));
        assert_eq!(items.len(), 4, "{items:?}");
    }

    #[test]
    fn keras_modules() {
        assert!(is_keras_module("keras"));
        assert!(is_keras_module("keras.layers"));
        assert!(is_keras_module("tensorflow.keras.layers"));
        assert!(is_keras_module("keras_hub.src.models"));
        assert!(!is_keras_module("kerasevil"));
        assert!(!is_keras_module("os"));
        assert!(!is_keras_module("tensorflow"));
    }

    #[test]
    fn deep_and_large_documents_are_bounded() {
        let mut v = json!({"class_name": "Lambda", "config": {"function": ["YWJj", null, null]}});
        for _ in 0..200 {
            v = json!({ "x": v });
        }
        let report = analyze(&v);
        assert!(report.depth_limited);
        let limits = Limits {
            max_entries: 5,
            ..Limits::default()
        };
        let big = json!({"a": [1, 2, 3, 4, 5, 6, 7, 8]});
        assert!(analyze_config(&big, &limits).truncated);
    }

    #[test]
    fn base64_decoding_accepts_python_line_breaks() {
        assert_eq!(decode_base64("YWJj\nZGVm\n"), Some(b"abcdef".to_vec()));
        assert_eq!(decode_base64("!!"), None);
    }

    #[test]
    fn parse_json_is_bounded() {
        let limits = Limits {
            max_header: 4,
            ..Limits::default()
        };
        assert!(parse_json(b"{\"a\": 1}", &limits).unwrap_err().is_limit());
        assert!(parse_json(b"{", &Limits::default()).is_err());
    }
}
