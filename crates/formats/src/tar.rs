//! TODO(helper): tar parser.
