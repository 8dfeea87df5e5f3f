//! TODO(helper): savedmodel parser.
