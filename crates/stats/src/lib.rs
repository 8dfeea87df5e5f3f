//! Small numerics shared by several pillars, in a leaf crate so that a pillar needing a seeded generator or a
//! chi-square tail does not pull in the model backends (candle, tract) or the statistics of another pillar.
//!
//! - [`rng`]: the seeded generator every attack, audit and training run draws from, so `--seed` reproduces a
//!   run exactly.
//! - [`special`]: log-gamma, incomplete gamma, chi-square and normal tails, following scipy's algorithms.

#![forbid(unsafe_code)]

pub mod rng;
pub mod special;
