//! TODO(helper): keras parser.
