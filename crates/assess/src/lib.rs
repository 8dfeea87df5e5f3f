//! Model assessment: how far an attacker has to move an input to change the model's answer.
//!
//! [`attacks`] holds the evasion attacks, all constrained by a feature schema through [`Constraints`];
//! [`robustness`] runs them over a test set at several eps and turns the result into one definition of robust
//! accuracy, the most vulnerable features and classes, example adversarial rows, and findings.

#![forbid(unsafe_code)]
// Numeric loops here index several parallel row-major arrays at once; iterator zips would hide that.
#![allow(clippy::needless_range_loop)]

pub mod attacks;
mod constraints;
mod error;
pub mod extraction;
pub mod llm;
pub use aegis_ml::rng;
pub mod privacy;
pub mod robustness;
pub mod rules;

pub use constraints::{Constraints, EpsUnits, Norm};
pub use error::Error;
