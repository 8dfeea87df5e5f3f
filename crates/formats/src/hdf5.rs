//! TODO(helper): hdf5 parser.
