//! Monitoring statistics as pure functions: is the data a model sees now still the data it was trained on, and
//! is a client querying a model to copy it.
//!
//! - [`special`]: the distribution functions the tests need (gamma, chi-square, normal, Kolmogorov).
//! - [`ks`]: the two-sample Kolmogorov–Smirnov test, exact for small samples and asymptotic otherwise, computed
//!   the way scipy computes it so the numbers agree.
//! - [`divergence`]: chi-square on contingency tables, PSI on reference-quantile bins, normalised Wasserstein
//!   distance and Jensen–Shannon distance.
//! - [`correction`]: multiple-testing correction across columns (Bonferroni, Holm, Benjamini–Hochberg).
//! - [`sketch`]: a KLL quantile sketch, for columns too long to keep.
//! - [`drift`]: a dataset-level comparison of a reference and a current table, with a verdict and findings.
//! - [`window`]: windowed collectors that the gateway feeds one request at a time.
//! - [`shapiro`]: the Shapiro–Wilk normality test (Royston's algorithm).
//! - [`prada`]: the PRADA model-extraction detector (Juuti et al., 2019) with coverage signals.

#![forbid(unsafe_code)]

pub mod correction;
pub mod divergence;
pub mod drift;
mod error;
pub mod feature_map;
pub mod ks;
pub mod prada;
pub mod shapiro;
pub mod sketch;
pub mod special;
pub mod window;

pub use error::Error;
