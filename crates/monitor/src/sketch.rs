//! KLL quantile sketch. (Stub: being written.)
