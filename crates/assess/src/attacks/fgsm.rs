//! FGSM (Goodfellow et al. 2015): one step of size eps along the sign of the loss gradient.
//!
//! The cheapest white-box attack and the baseline every report includes: if one gradient step breaks the
//! model, nothing stronger is needed to make the point.

use aegis_ml::{input_gradient, Differentiable, Loss};

use super::{AttackInput, AttackOutput};
use crate::{Error, Norm};

/// Rows per gradient batch.
const BATCH: usize = 256;

/// One signed-gradient step of size eps (L∞) or a normalised gradient step of length eps (L2).
pub fn fgsm(model: &dyn Differentiable, input: &AttackInput) -> Result<AttackOutput, Error> {
    let d = model.n_features();
    let c = input.constraints;
    let mut x_adv = input.x.to_vec();
    let mut queries = 0;
    for start in (0..input.n()).step_by(BATCH) {
        let m = BATCH.min(input.n() - start);
        let x0 = &input.x[start * d..(start + m) * d];
        let g = input_gradient(
            model,
            x0,
            m,
            &Loss::CrossEntropy(input.labels[start..start + m].to_vec()),
        )?;
        queries += m as u64;
        let out = &mut x_adv[start * d..(start + m) * d];
        super::pgd::ascent_step(c, out, &g.grad, input.eps, d);
        c.finalize(x0, out, input.eps);
    }
    debug_assert!(c.norm() == Norm::Linf || c.norm() == Norm::L2);
    Ok(AttackOutput { x_adv, queries })
}
