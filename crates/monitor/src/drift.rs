//! Dataset drift: compare a reference and a current frame. (Stub: being written.)
