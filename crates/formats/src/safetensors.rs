//! TODO(helper): safetensors parser.
