//! TODO(helper): npy parser.
