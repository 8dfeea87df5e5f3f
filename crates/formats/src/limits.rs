//! Hard bounds on everything a parser allocates or recurses into. The defaults fit real models (multi-GiB
//! checkpoints, thousands of tensors) while keeping a crafted file from exhausting memory or time.

/// Bounds shared by all parsers. Every field has a sane default; the CLI may override some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Nesting depth of archives and nested payloads (zip in tar in zip, pickle in pickle).
    pub max_depth: usize,
    /// Members listed in one archive.
    pub max_members: u64,
    /// Total bytes decompressed from one archive (all members).
    pub max_expanded_bytes: u64,
    /// Bytes of one member or nested payload held in memory (nested archives, payload constants).
    pub max_in_memory: u64,
    /// Bytes of a bytes/str constant kept in full by the pickle VM; longer ones keep a prefix only.
    pub max_kept_constant: usize,
    /// Elements kept per emulated list, tuple, dict or set; further ones are counted, not kept.
    pub max_container_items: usize,
    /// Emulated pickle stack depth plus mark depth.
    pub max_stack: usize,
    /// Emulated pickle memo entries.
    pub max_memo: usize,
    /// Pickles (STOP opcodes) read from one stream.
    pub max_pickles: u32,
    /// Distinct call sites kept per callable by the pickle VM (later calls are only counted).
    pub max_calls_per_callable: usize,
    /// Bytes of a JSON header (safetensors, Keras config).
    pub max_header: u64,
    /// Entries in a metadata table (GGUF key/values, tensors; safetensors tensors).
    pub max_entries: u64,
    /// Length of one string read from a binary header.
    pub max_string: u64,
    /// Bytes of a protobuf (ONNX, SavedModel) decoded in memory.
    pub max_protobuf: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 8,
            max_members: 100_000,
            max_expanded_bytes: 64 << 30,
            max_in_memory: 512 << 20,
            max_kept_constant: 8 << 20,
            max_container_items: 4096,
            max_stack: 100_000,
            max_memo: 1_000_000,
            max_pickles: 4096,
            max_calls_per_callable: 8,
            max_header: 100 << 20,
            max_entries: 1_000_000,
            max_string: 16 << 20,
            max_protobuf: 2 << 30,
        }
    }
}
