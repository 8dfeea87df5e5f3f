//! TODO(helper): ONNX protobuf.

/// Which protobuf model format a blob looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtobufKind {
    /// ONNX `ModelProto`.
    Onnx,
    /// TensorFlow `SavedModel`.
    SavedModel,
}

/// Guess whether `head` starts an ONNX or SavedModel protobuf.
pub fn sniff_protobuf(_head: &[u8]) -> Option<ProtobufKind> {
    None
}
