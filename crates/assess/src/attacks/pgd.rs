//! Projected gradient descent (Madry et al. 2018) and its step-size-free successor APGD (Croce & Hein 2020).
//!
//! PGD takes fixed steps of `step_size · eps` along the signed (L∞) or normalised (L2) gradient, projects onto
//! the ball and schema after every step, and restarts from random points inside the ball. APGD adapts its step
//! per row at checkpoints and adds momentum; with the cross-entropy loss and then a targeted DLR loss against
//! the most likely wrong classes it forms the white-box half of an AutoAttack-style ensemble. A row is frozen
//! as soon as it is misclassified (best-so-far), so later steps can never undo a success.

use aegis_ml::rng::Rng;
use aegis_ml::{argmax_rows, input_gradient, Differentiable, Loss};

use super::{AttackInput, AttackOutput};
use crate::{Constraints, Error, Norm};

/// Rows per gradient batch.
const BATCH: usize = 1024;

/// Which loss PGD ascends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PgdLoss {
    /// Cross-entropy (Madry et al.).
    #[default]
    CrossEntropy,
    /// Carlini–Wagner margin (scale-free, does not saturate).
    Margin,
}

/// PGD settings.
#[derive(Debug, Clone, Copy)]
pub struct PgdParams {
    /// Gradient steps per restart.
    pub steps: u32,
    /// Step size as a fraction of eps.
    pub step_size: f32,
    /// Restarts from random points in the ball (the first starts at the clean row when `random_start` is off).
    pub restarts: u32,
    /// Start at a random point in the ball.
    pub random_start: bool,
    /// The loss.
    pub loss: PgdLoss,
    /// Stop attacking a row once it is misclassified (assessment: the first success is the answer). Off,
    /// every row takes every step and ends at the highest-loss point found (Madry's training examples).
    pub early_stop: bool,
}

impl Default for PgdParams {
    /// PGD-40 with step 2.5·eps/40 (Madry et al.) and one random start.
    fn default() -> Self {
        PgdParams {
            steps: 40,
            step_size: 2.5 / 40.0,
            restarts: 1,
            random_start: true,
            loss: PgdLoss::CrossEntropy,
            early_stop: true,
        }
    }
}

/// Move `x` one step up the gradient: `step · radius_j · sign(g_j)` for L∞; for L2 a step of length `step`
/// along the gradient in scaled units. Immutable features (radius 0) never move.
pub fn ascent_step(c: &Constraints, x: &mut [f32], grad: &[f32], step: f32, d: usize) {
    match c.norm() {
        Norm::Linf => {
            for (i, (v, g)) in x.iter_mut().zip(grad).enumerate() {
                let r = c.radius(i % d, 1.0);
                if *g != 0.0 && r > 0.0 {
                    *v += step * r * g.signum();
                }
            }
        }
        Norm::L2 => {
            for (row, grow) in x.chunks_mut(d).zip(grad.chunks(d)) {
                let scaled: Vec<f32> = grow
                    .iter()
                    .enumerate()
                    .map(|(j, g)| g * c.radius(j, 1.0))
                    .collect();
                let norm = scaled.iter().map(|v| v * v).sum::<f32>().sqrt();
                if norm > 0.0 {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v += step * scaled[j] * c.radius(j, 1.0) / norm;
                    }
                }
            }
        }
    }
}

/// A uniformly random point in the ball around each row (L∞: per feature; L2: a random direction and radius).
pub fn random_start(c: &Constraints, x0: &[f32], eps: f32, rng: &mut Rng) -> Vec<f32> {
    let d = c.n_features();
    let mut x = x0.to_vec();
    match c.norm() {
        Norm::Linf => {
            for (i, v) in x.iter_mut().enumerate() {
                *v += rng.range(-1.0, 1.0) * c.radius(i % d, eps);
            }
        }
        Norm::L2 => {
            for row in x.chunks_mut(d) {
                let dir: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
                let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                let radius = eps * rng.uniform();
                for (j, v) in row.iter_mut().enumerate() {
                    *v += radius * dir[j] / norm * c.radius(j, 1.0);
                }
            }
        }
    }
    c.project(x0, &mut x, eps);
    x
}

fn loss_for(kind: PgdLoss, labels: &[u32]) -> Loss {
    match kind {
        PgdLoss::CrossEntropy => Loss::CrossEntropy(labels.to_vec()),
        PgdLoss::Margin => Loss::Margin(labels.to_vec()),
    }
}

/// PGD with restarts; returns for each row the first adversarial point found, else the last iterate.
pub fn pgd(
    model: &dyn Differentiable,
    input: &AttackInput,
    p: &PgdParams,
) -> Result<AttackOutput, Error> {
    let d = model.n_features();
    let k = model.n_classes();
    let c = input.constraints;
    let mut rng = Rng::new(input.seed);
    let mut out = AttackOutput {
        x_adv: input.x.to_vec(),
        queries: 0,
    };
    for start in (0..input.n()).step_by(BATCH) {
        let m = BATCH.min(input.n() - start);
        let x0 = &input.x[start * d..(start + m) * d];
        let labels = &input.labels[start..start + m];
        let mut found = vec![false; m];
        let mut best = x0.to_vec();
        for restart in 0..p.restarts.max(1) {
            let active: Vec<usize> = (0..m).filter(|&i| !found[i]).collect();
            if active.is_empty() {
                break;
            }
            let a0: Vec<f32> = aegis_ml::gather_rows(x0, d, &active);
            let a_labels: Vec<u32> = active.iter().map(|&i| labels[i]).collect();
            let mut x = if p.random_start || restart > 0 {
                random_start(c, &a0, input.eps, &mut rng)
            } else {
                a0.clone()
            };
            // Rows still being attacked; a row leaves as soon as it is misclassified, so later steps
            // compute gradients only for the rows that still need them.
            let mut live: Vec<usize> = (0..active.len()).collect();
            for step in 0..=p.steps {
                let lx: Vec<f32> = aegis_ml::gather_rows(&x, d, &live);
                let ly: Vec<u32> = live.iter().map(|&r| a_labels[r]).collect();
                let g = input_gradient(model, &lx, live.len(), &loss_for(p.loss, &ly))?;
                out.queries += live.len() as u64;
                let pred = argmax_rows(&g.logits, k);
                let mut still = Vec::with_capacity(live.len());
                for (li, &r) in live.iter().enumerate() {
                    if pred[li] != ly[li] && p.early_stop {
                        let i = active[r];
                        found[i] = true;
                        best[i * d..(i + 1) * d].copy_from_slice(&x[r * d..(r + 1) * d]);
                    } else {
                        still.push((li, r));
                    }
                }
                live = still.iter().map(|&(_, r)| r).collect();
                if step == p.steps || live.is_empty() {
                    break;
                }
                for &(li, r) in &still {
                    let row = &mut x[r * d..(r + 1) * d];
                    ascent_step(
                        c,
                        row,
                        &g.grad[li * d..(li + 1) * d],
                        p.step_size * input.eps,
                        d,
                    );
                    c.project(&a0[r * d..(r + 1) * d], row, input.eps);
                }
            }
            for (r, &i) in active.iter().enumerate() {
                if !found[i] {
                    best[i * d..(i + 1) * d].copy_from_slice(&x[r * d..(r + 1) * d]);
                }
            }
        }
        c.finalize(x0, &mut best, input.eps);
        out.x_adv[start * d..(start + m) * d].copy_from_slice(&best);
    }
    Ok(out)
}

/// APGD settings.
#[derive(Debug, Clone, Copy)]
pub struct ApgdParams {
    /// Iterations.
    pub steps: u32,
    /// Momentum weight α (0.75 in the paper).
    pub momentum: f32,
    /// Fraction of improving steps below which the step size is halved at a checkpoint (ρ = 0.75).
    pub rho: f32,
}

impl Default for ApgdParams {
    fn default() -> Self {
        ApgdParams {
            steps: 100,
            momentum: 0.75,
            rho: 0.75,
        }
    }
}

/// The loss APGD maximises.
#[derive(Debug, Clone, PartialEq)]
pub enum ApgdLoss {
    /// Untargeted cross-entropy (APGD-CE).
    CrossEntropy,
    /// Targeted DLR towards the given class per row (APGD-T).
    TargetedDlr(Vec<u32>),
}

/// Checkpoints p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), as iteration numbers.
fn checkpoints(steps: u32) -> Vec<u32> {
    let mut p = vec![0.0f32, 0.22];
    while *p.last().unwrap_or(&1.0) < 1.0 {
        let (a, b) = (p[p.len() - 2], p[p.len() - 1]);
        p.push(b + (b - a - 0.03).max(0.06));
    }
    let mut its: Vec<u32> = p
        .iter()
        .map(|v| (v * steps as f32).ceil() as u32)
        .filter(|&w| w <= steps)
        .collect();
    its.dedup();
    its
}

/// APGD (Croce & Hein 2020) with per-row step sizes, momentum and checkpoints.
pub fn apgd(
    model: &dyn Differentiable,
    input: &AttackInput,
    p: &ApgdParams,
    loss: &ApgdLoss,
) -> Result<AttackOutput, Error> {
    let d = model.n_features();
    let k = model.n_classes();
    let c = input.constraints;
    let eps = input.eps;
    let marks = checkpoints(p.steps);
    let mut out = AttackOutput {
        x_adv: input.x.to_vec(),
        queries: 0,
    };
    for start in (0..input.n()).step_by(BATCH) {
        let m = BATCH.min(input.n() - start);
        let x0 = &input.x[start * d..(start + m) * d];
        let labels = input.labels[start..start + m].to_vec();
        let make_loss = || match loss {
            ApgdLoss::CrossEntropy => Loss::CrossEntropy(labels.clone()),
            ApgdLoss::TargetedDlr(t) => {
                Loss::TargetedDlr(labels.clone(), t[start..start + m].to_vec())
            }
        };
        // Step size per row: 2·eps in the norm's units.
        let mut eta = vec![2.0f32; m];
        let mut x = x0.to_vec();
        let g = input_gradient(model, &x, m, &make_loss())?;
        out.queries += m as u64;
        let mut found = misclassified_rows(&g.logits, &labels, k);
        let mut best = x.clone();
        let mut f_best = g.loss.clone();
        let mut grad = g.grad;
        let mut prev = x.clone();
        let mut improved = vec![0u32; m];
        let mut eta_at_mark = eta.clone();
        let mut fbest_at_mark = f_best.clone();
        let mut last_mark = 0u32;
        for it in 0..p.steps {
            let mut z = x.clone();
            for r in 0..m {
                let (lo, hi) = (r * d, (r + 1) * d);
                ascent_step(c, &mut z[lo..hi], &grad[lo..hi], eta[r] * eps, d);
            }
            c.project(x0, &mut z, eps);
            let alpha = if it == 0 { 1.0 } else { p.momentum };
            let mut next = x.clone();
            for i in 0..m * d {
                next[i] = x[i] + alpha * (z[i] - x[i]) + (1.0 - alpha) * (x[i] - prev[i]);
            }
            c.project(x0, &mut next, eps);
            let g = input_gradient(model, &next, m, &make_loss())?;
            out.queries += m as u64;
            let wrong = misclassified_rows(&g.logits, &labels, k);
            for r in 0..m {
                let (lo, hi) = (r * d, (r + 1) * d);
                if wrong[r] && !found[r] {
                    found[r] = true;
                    best[lo..hi].copy_from_slice(&next[lo..hi]);
                }
                if g.loss[r] > f_best[r] {
                    improved[r] += 1;
                    if !found[r] {
                        best[lo..hi].copy_from_slice(&next[lo..hi]);
                    }
                    f_best[r] = g.loss[r];
                }
            }
            prev = std::mem::replace(&mut x, next);
            grad = g.grad;
            if found.iter().all(|&v| v) {
                break;
            }
            if marks.contains(&(it + 1)) && it + 1 > last_mark {
                let span = (it + 1 - last_mark) as f32;
                for r in 0..m {
                    let few_improvements = (improved[r] as f32) < p.rho * span;
                    let stalled = eta_at_mark[r] == eta[r] && fbest_at_mark[r] == f_best[r];
                    if few_improvements || stalled {
                        eta[r] /= 2.0;
                        // Restart the row from its best point.
                        let (lo, hi) = (r * d, (r + 1) * d);
                        x[lo..hi].copy_from_slice(&best[lo..hi]);
                        prev[lo..hi].copy_from_slice(&best[lo..hi]);
                    }
                    improved[r] = 0;
                }
                eta_at_mark.clone_from(&eta);
                fbest_at_mark.clone_from(&f_best);
                last_mark = it + 1;
            }
        }
        c.finalize(x0, &mut best, eps);
        out.x_adv[start * d..(start + m) * d].copy_from_slice(&best);
    }
    Ok(out)
}

fn misclassified_rows(logits: &[f32], labels: &[u32], k: usize) -> Vec<bool> {
    argmax_rows(logits, k)
        .iter()
        .zip(labels)
        .map(|(p, y)| p != y)
        .collect()
}

/// The `t`-th most likely wrong class per row (t = 0 is the runner-up), for APGD-T targets.
pub fn target_classes(proba: &[f32], labels: &[u32], k: usize, t: usize) -> Vec<u32> {
    proba
        .chunks(k)
        .zip(labels)
        .map(|(row, &y)| {
            let mut order: Vec<usize> = (0..k).filter(|&j| j as u32 != y).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            order.get(t).or(order.last()).map_or(y, |&j| j as u32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_follow_the_paper() {
        let w = checkpoints(100);
        assert_eq!(&w[..4], &[0, 22, 41, 57]);
        assert!(w.windows(2).all(|p| p[0] < p[1]) && *w.last().unwrap() <= 100);
    }

    #[test]
    fn targets_are_the_likeliest_wrong_classes() {
        let p = [0.5, 0.1, 0.3, 0.1, 0.2, 0.7, 0.05, 0.05];
        assert_eq!(target_classes(&p, &[0, 1], 4, 0), vec![2, 0]);
        assert_eq!(target_classes(&p, &[0, 1], 4, 1), vec![1, 2]);
    }
}
