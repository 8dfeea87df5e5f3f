//! Keras model configs (Keras 3 `config.json`, tf.keras 2 `model_config`), `.keras` v3 archives (a minimal
//! stored-only zip writer of its own) and their corpus cases.
//!
//! Lambda "bytecode" here is a stand-in shaped like `marshal.dumps(code)` (type byte `0xe3`, then the names
//! a real payload would mention as marshal short strings); it is base64-encoded the way Keras's `func_dump`
//! does. It is never valid Python and is never unmarshalled or run.

use crate::Case;

pub use crate::keras_config::{
    base64_lines, config_first, fake_lambda_code, sequential_config, Variant,
};

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
            "keras/get-file-as-layer",
            "model.keras",
            keras_archive(Variant::GetFile),
            "AEG-SCAN-602",
            "keras.utils.get_file deserialized as a layer (CVE-2025-8747 class)",
        ),
        Case::malicious(
            "keras/string-lookup-vocabulary-file",
            "model.keras",
            keras_archive(Variant::VocabularyFile),
            "AEG-SCAN-606",
            "StringLookup reading its vocabulary from a host file (CVE-2025-12058 class)",
        ),
        Case::benign(
            "keras/string-lookup-inline-vocabulary",
            "model.keras",
            keras_archive(Variant::VocabularyInline),
            "StringLookup with its vocabulary inline",
        ),
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
            let _: serde_json::Value = serde_json::from_str(&sequential_config(v)).unwrap();
        }
    }

    #[test]
    fn zip_ends_with_eocd() {
        let z = stored_zip(&[("a.txt", b"hello")]);
        assert_eq!(&z[z.len() - 22..z.len() - 18], b"PK\x05\x06");
        assert!(z.starts_with(b"PK\x03\x04"));
    }
}
