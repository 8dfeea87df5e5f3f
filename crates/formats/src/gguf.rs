//! TODO(helper): gguf parser.
