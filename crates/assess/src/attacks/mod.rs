//! Evasion attacks. White-box attacks (FGSM, PGD, APGD) follow exact input gradients of a
//! [`Differentiable`](aegis_ml::Differentiable) model; black-box attacks (Square, HopSkipJump) need only
//! `predict_proba` and count every query against a per-sample budget.
//!
//! Every attack takes the same [`AttackInput`] and returns an [`AttackOutput`]: adversarial rows that are
//! already valid under the [`Constraints`](crate::Constraints) (projected after each step, finalized at the
//! end). Rows the attack could not flip are returned unchanged, or as the best-so-far candidate, which is
//! still inside the ball. Whether a row is adversarial is decided by the caller, who re-checks every row on
//! the model: an attack's own bookkeeping is never trusted.

pub mod fgsm;
pub mod hsj;
pub mod pgd;
pub mod square;

use aegis_ml::Model;

use crate::{Constraints, Error};

/// What every attack is given.
#[derive(Debug, Clone, Copy)]
pub struct AttackInput<'a> {
    /// Clean rows, row-major.
    pub x: &'a [f32],
    /// True class per row.
    pub labels: &'a [u32],
    /// The ball radius (see [`Constraints::radius`]).
    pub eps: f32,
    /// Ball, bounds, immutables, integers, one-hot groups.
    pub constraints: &'a Constraints,
    /// Seed for any randomness.
    pub seed: u64,
}

impl AttackInput<'_> {
    /// Number of rows.
    pub fn n(&self) -> usize {
        self.labels.len()
    }
}

/// What every attack returns.
#[derive(Debug, Clone, Default)]
pub struct AttackOutput {
    /// Candidate adversarial rows (valid inputs inside the ball), row-major, same order as the input.
    pub x_adv: Vec<f32>,
    /// Model queries spent (forward passes counted per row; a gradient counts as one query).
    pub queries: u64,
}

/// Rows whose prediction differs from the label, given probabilities for them.
pub(crate) fn misclassified(proba: &[f32], labels: &[u32], k: usize) -> Vec<bool> {
    aegis_ml::argmax_rows(proba, k)
        .iter()
        .zip(labels)
        .map(|(p, y)| p != y)
        .collect()
}

/// Margin loss per row: the true class's probability minus the best other class's (negative = misclassified).
pub(crate) fn margins(proba: &[f32], labels: &[u32], k: usize) -> Vec<f32> {
    proba
        .chunks(k)
        .zip(labels)
        .map(|(p, &y)| {
            let other = p
                .iter()
                .enumerate()
                .filter(|(j, _)| *j as u32 != y)
                .map(|(_, &v)| v)
                .fold(f32::MIN, f32::max);
            p[y as usize] - other
        })
        .collect()
}

/// Predict a batch, mapping model errors into ours.
pub(crate) fn proba(model: &dyn Model, x: &[f32], n: usize) -> Result<Vec<f32>, Error> {
    Ok(aegis_ml::predict_proba_batched(model, x, n, 512)?)
}
