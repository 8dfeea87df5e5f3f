//! HopSkipJump (Chen, Jordan and Wainwright, 2020): a decision-based black-box evasion attack that sees only
//! the predicted label, for models that expose nothing else (an endpoint that returns a class, a model whose
//! scores are rounded or hidden).
//!
//! HopSkipJump looks for the *smallest* adversarial change, not one inside a fixed ball: start from any
//! misclassified point (random points in the schema box, only mutable features changed), binary-search
//! towards the clean row to land on the decision boundary, then repeat: estimate the boundary's normal from
//! the labels of random points around it (Monte Carlo sign queries), step along it with a geometric step-size
//! search, and binary-search back to the boundary. Distances are measured in the units of
//! [`Constraints::distance`](crate::Constraints::distance) (each mutable feature scaled by `radius(j, 1)`),
//! L∞ or L2 per [`Constraints::norm`](crate::Constraints::norm); random directions are drawn in those scaled
//! units over the mutable features only, so immutable features never move.
//!
//! To answer "is this row robust at eps?" a row stops as soon as its adversarial is within `eps`. At the
//! end a row's best adversarial is output only when it is within the ball and, after
//! [`Constraints::finalize`](crate::Constraints::finalize), still misclassified (checked with one query; if
//! rounding broke it, the same direction pushed out to the eps sphere is tried with one more). Otherwise the
//! clean row is returned unchanged: the attack failed at this eps. Rows misclassified before any change are
//! returned unchanged after one query.
//!
//! All rows advance together: each round gathers every row's pending queries (a bisection midpoint, a step,
//! a batch of gradient probes) into one model call of bounded size. Each row has its own seeded generator,
//! so its result does not depend on which rows it shares a call with. Every query is counted and no row ever
//! gets more than `queries_per_sample`, including the initial check and the final ones.

use aegis_ml::Model;

use super::{misclassified, proba, AttackInput, AttackOutput};
use crate::rng::Rng;
use crate::{Constraints, Error, Norm};

/// Bisection tolerance (as a fraction of the way) when blending a random adversarial towards the clean row.
const BLEND_TOL: f32 = 1e-3;
/// The boundary bisection tolerance never exceeds this fraction of the distance, even in few dimensions.
const MAX_THETA: f32 = 1e-3;
/// Halvings of the step size before a row gives up.
const MAX_STEP_TRIES: u32 = 25;
/// Queries each row keeps back for the final check (and its one retry).
const RESERVE: u32 = 2;
/// Upper bound on the values sent in one model call (16 MiB of f32).
const BATCH_VALUES: usize = 1 << 22;
/// Half-width, in scaled units, of the random start along a feature without finite bounds.
const OPEN_SPAN: f32 = 10.0;
/// Mixed into the seed so HopSkipJump and other attacks draw different streams from the same `--seed`.
const SALT: u64 = 0x4853_4A00_0000_0002;

/// Settings of [`hop_skip_jump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HsjParams {
    /// Model queries allowed per row, the initial check and the final checks included.
    pub queries_per_sample: u32,
    /// Gradient probes at the first iteration (growing with the square root of the iteration).
    pub init_evals: u32,
    /// Most gradient probes in one iteration (also capped by what is left of the budget).
    pub max_num_evals: u32,
    /// Random points tried per row to find a first misclassified one.
    pub init_search_tries: u32,
}

impl Default for HsjParams {
    fn default() -> Self {
        HsjParams {
            queries_per_sample: 1000,
            init_evals: 100,
            max_num_evals: 1000,
            init_search_tries: 100,
        }
    }
}

/// HopSkipJump on any model, untargeted, stopping each row at `input.eps`.
///
/// Returns, per row, a finalized adversarial within the ball when one was found and re-checked, else the
/// clean row. `queries` counts every row sent to the model.
pub fn hop_skip_jump(
    model: &dyn Model,
    input: &AttackInput,
    params: &HsjParams,
) -> Result<AttackOutput, Error> {
    let (d, k) = check_input(model, input)?;
    let n = input.n();
    let mut out = AttackOutput {
        x_adv: input.x.to_vec(),
        queries: 0,
    };
    let ctx = Ctx::new(input, d, *params);
    let budget = params.queries_per_sample;
    if n == 0
        || budget == 0
        || ctx.mutable.is_empty()
        || !(input.eps.is_finite() && input.eps > 0.0)
    {
        return Ok(out);
    }
    let cap_rows = (BATCH_VALUES / d.max(1)).max(1);

    // Rows the model already gets wrong are not attacked.
    let wrong = misclassified(&query(model, input.x, n, k)?, input.labels, k);
    out.queries += n as u64;
    let loop_budget = budget.saturating_sub(1 + RESERVE);
    let spare = (budget - 1).min(RESERVE);
    let mut rows: Vec<Row> = (0..n)
        .filter(|&i| !wrong[i])
        .map(|i| Row::new(i, input.seed, loop_budget, spare, &ctx))
        .collect();

    // All rows advance together, one bounded model call per round.
    let mut batch: Vec<f32> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    let mut owners: Vec<(usize, usize)> = Vec::new();
    loop {
        batch.clear();
        labels.clear();
        owners.clear();
        for (r, row) in rows.iter_mut().enumerate() {
            let room = cap_rows - labels.len();
            if room == 0 {
                break;
            }
            let c = row.emit(&ctx, room, &mut batch);
            if c > 0 {
                owners.push((r, c));
                labels.extend(std::iter::repeat_n(input.labels[row.i], c));
            }
        }
        if owners.is_empty() {
            break;
        }
        let adv = misclassified(&query(model, &batch, labels.len(), k)?, &labels, k);
        out.queries += labels.len() as u64;
        let mut at = 0;
        for &(r, c) in &owners {
            rows[r].absorb(&ctx, &adv[at..at + c]);
            at += c;
        }
    }

    // Output a row's best adversarial only if it is inside the ball and still adversarial once finalized:
    // first as found, then pushed along the same direction out to the eps sphere.
    let mut pending: Vec<usize> = (0..rows.len())
        .filter(|&r| rows[r].best_dist <= input.eps)
        .collect();
    for stage in 0..2 {
        let mut cands: Vec<(usize, Vec<f32>)> = Vec::new();
        let mut next: Vec<usize> = Vec::new();
        for &r in &pending {
            let row = &mut rows[r];
            match ctx.final_candidate(row, stage) {
                Some(cand) if row.spare > 0 => {
                    row.spare -= 1;
                    cands.push((r, cand));
                }
                Some(_) => {}
                None => next.push(r),
            }
        }
        pending = next;
        for chunk in cands.chunks(cap_rows) {
            let x: Vec<f32> = chunk.iter().flat_map(|(_, c)| c.iter().copied()).collect();
            let lbl: Vec<u32> = chunk
                .iter()
                .map(|&(r, _)| input.labels[rows[r].i])
                .collect();
            let adv = misclassified(&query(model, &x, chunk.len(), k)?, &lbl, k);
            out.queries += chunk.len() as u64;
            for ((r, cand), ok) in chunk.iter().zip(adv) {
                let i = rows[*r].i;
                if ok {
                    out.x_adv[i * d..(i + 1) * d].copy_from_slice(cand);
                } else {
                    pending.push(*r);
                }
            }
        }
    }
    Ok(out)
}

/// What every row shares: the clean rows, the constraints, and the mutable features with their scales.
struct Ctx<'a> {
    x0: &'a [f32],
    d: usize,
    c: &'a Constraints,
    eps: f32,
    linf: bool,
    params: HsjParams,
    /// Mutable features, their scale `radius(j, 1)` and bounds.
    mutable: Vec<usize>,
    scale: Vec<f32>,
    lo: Vec<f32>,
    hi: Vec<f32>,
    /// Bisection tolerance (fraction of the way in L2, of the distance in L∞).
    theta: f32,
    /// Bisection steps to reach `theta`.
    bisect_steps: u32,
    /// Mean width of the box in scaled units (NaN when no feature has finite bounds).
    box_width: f32,
}

impl<'a> Ctx<'a> {
    fn new(input: &AttackInput<'a>, d: usize, params: HsjParams) -> Self {
        let c = input.constraints;
        let mutable: Vec<usize> = (0..d)
            .filter(|&j| c.radius(j, 1.0).is_finite() && c.radius(j, 1.0) > 0.0)
            .collect();
        let scale: Vec<f32> = mutable.iter().map(|&j| c.radius(j, 1.0)).collect();
        let (lo, hi): (Vec<f32>, Vec<f32>) = mutable.iter().map(|&j| c.bounds(j)).unzip();
        let m = mutable.len().max(1) as f32;
        let linf = c.norm() == Norm::Linf;
        // The paper's gamma / (d sqrt d) for L2 and gamma / d² for L∞ (gamma = 1), tightened in few dimensions.
        let theta = if linf {
            1.0 / (m * m)
        } else {
            1.0 / (m * m.sqrt())
        }
        .min(MAX_THETA);
        let bisect_steps = (1.0 / theta).log2().ceil() as u32;
        let widths: Vec<f32> = (0..mutable.len())
            .map(|t| (hi[t] - lo[t]) / scale[t])
            .filter(|w| w.is_finite() && *w > 0.0)
            .collect();
        let box_width = if widths.is_empty() {
            f32::NAN
        } else {
            widths.iter().sum::<f32>() / widths.len() as f32
        };
        Ctx {
            x0: input.x,
            d,
            c,
            eps: input.eps,
            linf,
            params,
            mutable,
            scale,
            lo,
            hi,
            theta,
            bisect_steps,
            box_width,
        }
    }

    fn row0(&self, i: usize) -> &[f32] {
        &self.x0[i * self.d..(i + 1) * self.d]
    }

    /// Distance of `x` from clean row `i` (infinite when it cannot be measured).
    fn dist(&self, i: usize, x: &[f32]) -> f32 {
        let dist = self
            .c
            .distance(self.row0(i), x)
            .first()
            .copied()
            .unwrap_or(f32::INFINITY);
        if dist.is_nan() {
            f32::INFINITY
        } else {
            dist
        }
    }

    /// Clamp the mutable features into their bounds (no panic on inverted or NaN bounds).
    fn clip(&self, x: &mut [f32]) {
        for (t, &j) in self.mutable.iter().enumerate() {
            x[j] = x[j].max(self.lo[t]).min(self.hi[t]);
        }
    }

    /// The point a fraction `a` of the way from clean row `i` to `far`.
    fn blend(&self, i: usize, far: &[f32], a: f32) -> Vec<f32> {
        let row0 = self.row0(i);
        let mut x = row0.to_vec();
        for &j in &self.mutable {
            x[j] = row0[j] + a * (far[j] - row0[j]);
        }
        x
    }

    /// The boundary bisection's point at parameter `a`: the blend in L2, `far` clipped to the L∞ ball of
    /// radius `a` in L∞ (the paper's projections).
    fn interpolate(&self, i: usize, far: &[f32], a: f32) -> Vec<f32> {
        if !self.linf {
            return self.blend(i, far, a);
        }
        let row0 = self.row0(i);
        let mut x = row0.to_vec();
        for (t, &j) in self.mutable.iter().enumerate() {
            let r = a * self.scale[t];
            x[j] = far[j].max(row0[j] - r).min(row0[j] + r);
        }
        x
    }

    /// A random point of the box that differs from clean row `i` only in mutable features.
    fn random_point(&self, i: usize, rng: &mut Rng) -> Vec<f32> {
        let mut x = self.row0(i).to_vec();
        for (t, &j) in self.mutable.iter().enumerate() {
            let (lo, hi) = (self.lo[t], self.hi[t]);
            let span = OPEN_SPAN * self.scale[t];
            let lo = if lo.is_finite() { lo } else { x[j] - span };
            let hi = if hi.is_finite() { hi } else { x[j] + span };
            x[j] = rng.range(lo, hi);
        }
        self.clip(&mut x);
        x
    }

    /// The final candidate of a row: its best adversarial finalized (stage 0) or pushed out to the eps
    /// sphere along the same direction, then finalized (stage 1); `None` if it would leave the ball.
    fn final_candidate(&self, row: &Row, stage: usize) -> Option<Vec<f32>> {
        let best = row.best.as_ref()?;
        let row0 = self.row0(row.i);
        let mut x = if stage == 0 {
            best.clone()
        } else {
            if row.best_dist.is_nan() || row.best_dist <= 0.0 {
                return None;
            }
            let mut x = self.blend(row.i, best, self.eps / row.best_dist);
            self.clip(&mut x);
            x
        };
        self.c.finalize(row0, &mut x, self.eps);
        self.c.contains(row0, &x, self.eps).then_some(x)
    }
}

/// One row's attack, advanced one model call at a time.
struct Row {
    /// Index of the row in the input.
    i: usize,
    rng: Rng,
    /// Queries left for the search.
    left: u32,
    /// Queries left for the final checks.
    spare: u32,
    /// The current point on the boundary (adversarial).
    cur: Vec<f32>,
    /// Distance of the point the last boundary bisection started from (sets the probe radius).
    dist_post: f32,
    best: Option<Vec<f32>>,
    best_dist: f32,
    iter: u32,
    phase: Phase,
}

/// Where a row is in the attack.
enum Phase {
    /// Trying random points; `pending` is the one being queried.
    Init {
        tries: u32,
        pending: Vec<f32>,
    },
    /// Bisecting between the clean row and `far`.
    Bisect(Box<Bisect>),
    /// Collecting gradient probes.
    Grad(Box<Grad>),
    /// Geometric step-size search along `dir` (scaled units over the mutable features).
    Step {
        dir: Vec<f32>,
        size: f32,
        tries: u32,
        pending: Vec<f32>,
    },
    Done,
}

/// A bisection between the clean row (parameter 0, not adversarial) and `far` (parameter `hi`, adversarial).
struct Bisect {
    /// Blending a random start in (tolerance [`BLEND_TOL`]), or landing on the boundary after a step.
    initial: bool,
    far: Vec<f32>,
    lo: f32,
    hi: f32,
    tol: f32,
    /// The last point known adversarial (the one at `hi`).
    adv: Vec<f32>,
    pending: Vec<f32>,
}

/// Monte Carlo estimate of the boundary's normal at the current point.
struct Grad {
    total: u32,
    sent: u32,
    delta: f32,
    /// Probe directions (scaled units, after clipping) of the queries in flight.
    noise: Vec<f32>,
    sum_u: Vec<f64>,
    sum_fu: Vec<f64>,
    sum_f: f64,
}

impl Row {
    fn new(i: usize, seed: u64, left: u32, spare: u32, ctx: &Ctx) -> Self {
        Row {
            i,
            rng: Rng::new(
                seed ^ SALT
                    ^ (i as u64)
                        .wrapping_add(1)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
            left,
            spare,
            cur: ctx.row0(i).to_vec(),
            dist_post: f32::INFINITY,
            best: None,
            best_dist: f32::INFINITY,
            iter: 0,
            phase: Phase::Init {
                tries: 0,
                pending: Vec::new(),
            },
        }
    }

    /// Append this row's next queries (at most `room`, `room > 0`) to `out`; returns how many (0 = done).
    fn emit(&mut self, ctx: &Ctx, room: usize, out: &mut Vec<f32>) -> usize {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return 0,
                Phase::Init { tries, .. } => {
                    if tries >= ctx.params.init_search_tries || self.left == 0 {
                        return 0;
                    }
                    let p = ctx.random_point(self.i, &mut self.rng);
                    out.extend_from_slice(&p);
                    self.left -= 1;
                    self.phase = Phase::Init { tries, pending: p };
                    return 1;
                }
                Phase::Bisect(mut b) => {
                    if b.hi - b.lo <= b.tol || self.left == 0 {
                        self.end_bisect(ctx, *b);
                        continue;
                    }
                    let mid = 0.5 * (b.lo + b.hi);
                    b.pending = if b.initial {
                        ctx.blend(self.i, &b.far, mid)
                    } else {
                        ctx.interpolate(self.i, &b.far, mid)
                    };
                    out.extend_from_slice(&b.pending);
                    self.left -= 1;
                    self.phase = Phase::Bisect(b);
                    return 1;
                }
                Phase::Grad(mut g) => {
                    let count = (g.total - g.sent).min(room as u32).min(self.left);
                    if count == 0 {
                        return 0;
                    }
                    let m = ctx.mutable.len();
                    g.noise.clear();
                    let mut u = vec![0.0f32; m];
                    for _ in 0..count {
                        for v in &mut u {
                            *v = if ctx.linf {
                                self.rng.range(-1.0, 1.0)
                            } else {
                                self.rng.normal()
                            };
                        }
                        let norm = u.iter().map(|v| v * v).sum::<f32>().sqrt();
                        let mut p = self.cur.clone();
                        for (t, &j) in ctx.mutable.iter().enumerate() {
                            let step = if norm > 0.0 { u[t] / norm } else { 0.0 };
                            p[j] = self.cur[j] + g.delta * ctx.scale[t] * step;
                        }
                        ctx.clip(&mut p);
                        // The direction actually probed, after clipping.
                        for (t, &j) in ctx.mutable.iter().enumerate() {
                            g.noise
                                .push((p[j] - self.cur[j]) / (g.delta * ctx.scale[t]));
                        }
                        out.extend_from_slice(&p);
                    }
                    g.sent += count;
                    self.left -= count;
                    self.phase = Phase::Grad(g);
                    return count as usize;
                }
                Phase::Step {
                    dir, size, tries, ..
                } => {
                    if tries >= MAX_STEP_TRIES || self.left == 0 || size.is_nan() || size <= 0.0 {
                        return 0;
                    }
                    let mut p = self.cur.clone();
                    for (t, &j) in ctx.mutable.iter().enumerate() {
                        p[j] += size * ctx.scale[t] * dir[t];
                    }
                    ctx.clip(&mut p);
                    out.extend_from_slice(&p);
                    self.left -= 1;
                    self.phase = Phase::Step {
                        dir,
                        size,
                        tries,
                        pending: p,
                    };
                    return 1;
                }
            }
        }
    }

    /// Take the model's verdicts (`true` = adversarial) on the queries last emitted.
    fn absorb(&mut self, ctx: &Ctx, adv: &[bool]) {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Done => {}
            Phase::Init { tries, pending } => {
                if adv.first() == Some(&true) {
                    let b = Bisect {
                        initial: true,
                        lo: 0.0,
                        hi: 1.0,
                        tol: BLEND_TOL,
                        adv: pending.clone(),
                        far: pending,
                        pending: Vec::new(),
                    };
                    self.phase = Phase::Bisect(Box::new(b));
                } else {
                    self.phase = Phase::Init {
                        tries: tries + 1,
                        pending: Vec::new(),
                    };
                }
            }
            Phase::Bisect(mut b) => {
                let mid = 0.5 * (b.lo + b.hi);
                if adv.first() == Some(&true) {
                    b.hi = mid;
                    b.adv = std::mem::take(&mut b.pending);
                } else {
                    b.lo = mid;
                }
                self.phase = Phase::Bisect(b);
            }
            Phase::Grad(mut g) => {
                let m = ctx.mutable.len();
                for (q, &a) in adv.iter().enumerate() {
                    let f = if a { 1.0 } else { -1.0 };
                    g.sum_f += f;
                    for (t, &u) in g.noise[q * m..(q + 1) * m].iter().enumerate() {
                        g.sum_u[t] += f64::from(u);
                        g.sum_fu[t] += f * f64::from(u);
                    }
                }
                if g.sent < g.total {
                    self.phase = Phase::Grad(g);
                    return;
                }
                self.take_step(ctx, &g);
            }
            Phase::Step {
                dir,
                size,
                tries,
                pending,
            } => {
                if adv.first() == Some(&true) {
                    self.start_boundary(ctx, pending);
                } else {
                    self.phase = Phase::Step {
                        dir,
                        size: 0.5 * size,
                        tries: tries + 1,
                        pending: Vec::new(),
                    };
                }
            }
        }
    }

    fn end_bisect(&mut self, ctx: &Ctx, b: Bisect) {
        if b.initial {
            self.start_boundary(ctx, b.adv);
        } else {
            self.on_boundary(ctx, b.adv);
        }
    }

    /// Bisect from the adversarial `far` towards the clean row in the attack's norm.
    fn start_boundary(&mut self, ctx: &Ctx, far: Vec<f32>) {
        self.dist_post = ctx.dist(self.i, &far);
        let (hi, tol) = if ctx.linf {
            (self.dist_post, self.dist_post * ctx.theta)
        } else {
            (1.0, ctx.theta)
        };
        if !hi.is_finite() {
            return;
        }
        let b = Bisect {
            initial: false,
            lo: 0.0,
            hi,
            tol,
            adv: far.clone(),
            far,
            pending: Vec::new(),
        };
        self.phase = Phase::Bisect(Box::new(b));
    }

    /// A new boundary point: keep it if it is the closest so far, stop at eps, else estimate the gradient.
    fn on_boundary(&mut self, ctx: &Ctx, p: Vec<f32>) {
        let dist = ctx.dist(self.i, &p);
        if dist < self.best_dist {
            self.best = Some(p.clone());
            self.best_dist = dist;
        }
        self.cur = p;
        if self.best_dist <= ctx.eps {
            return;
        }
        self.iter += 1;
        let grow = (f64::from(ctx.params.init_evals) * f64::from(self.iter).sqrt()) as u32;
        let total = grow
            .min(ctx.params.max_num_evals)
            .min(self.left.saturating_sub(ctx.bisect_steps + 2));
        if total < 2 {
            return;
        }
        // The paper's probe radius: a tenth of the box at first (here no more than a tenth of the distance,
        // since a raw-unit box can be far wider than the ball), then sqrt(d)·theta·dist for L2 and d·theta·dist
        // for L∞, both dist / d with gamma = 1.
        let m = ctx.mutable.len() as f32;
        let delta = if self.iter == 1 {
            0.1 * ctx.box_width.min(dist)
        } else {
            self.dist_post / m
        };
        let delta = if delta.is_finite() && delta > 0.0 {
            delta
        } else {
            0.1 * dist
        };
        if !(delta.is_finite() && delta > 0.0) {
            return;
        }
        let zeros = vec![0.0f64; ctx.mutable.len()];
        let g = Grad {
            total,
            sent: 0,
            delta,
            noise: Vec::new(),
            sum_u: zeros.clone(),
            sum_fu: zeros,
            sum_f: 0.0,
        };
        self.phase = Phase::Grad(Box::new(g));
    }

    /// Turn the probes into a direction (baseline-subtracted mean) and start the step-size search.
    fn take_step(&mut self, ctx: &Ctx, g: &Grad) {
        let n = f64::from(g.total.max(1));
        let fbar = g.sum_f / n;
        let grad: Vec<f64> = if fbar >= 1.0 {
            g.sum_u.iter().map(|u| u / n).collect()
        } else if fbar <= -1.0 {
            g.sum_u.iter().map(|u| -u / n).collect()
        } else {
            g.sum_u
                .iter()
                .zip(&g.sum_fu)
                .map(|(u, fu)| fu / n - fbar * u / n)
                .collect()
        };
        let dir: Vec<f32> = if ctx.linf {
            grad.iter()
                .map(|&v| {
                    if v > 0.0 {
                        1.0
                    } else if v < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                })
                .collect()
        } else {
            let norm = grad.iter().map(|v| v * v).sum::<f64>().sqrt();
            if !(norm > 0.0 && norm.is_finite()) {
                return;
            }
            grad.iter().map(|v| (v / norm) as f32).collect()
        };
        if dir.iter().all(|&v| v == 0.0) {
            return;
        }
        let size = ctx.dist(self.i, &self.cur) / (self.iter as f32).sqrt();
        self.phase = Phase::Step {
            dir,
            size,
            tries: 0,
            pending: Vec::new(),
        };
    }
}

/// Check that the input fits the model; returns `(n_features, n_classes)`.
fn check_input(model: &dyn Model, input: &AttackInput) -> Result<(usize, usize), Error> {
    let (d, k) = (model.n_features(), model.n_classes());
    if input.constraints.n_features() != d {
        return Err(Error::Invalid(format!(
            "hopskipjump: the constraints describe {} features, the model takes {d}",
            input.constraints.n_features()
        )));
    }
    if input.x.len() != input.n() * d {
        return Err(Error::Invalid(format!(
            "hopskipjump: {} values are not {} rows of {d} features",
            input.x.len(),
            input.n()
        )));
    }
    if k < 2 {
        return Err(Error::Invalid(format!(
            "hopskipjump: the model has {k} classes, at least 2 are needed"
        )));
    }
    if let Some(y) = input.labels.iter().find(|&&y| y as usize >= k) {
        return Err(Error::Invalid(format!(
            "hopskipjump: label {y} is not a class of a {k}-class model"
        )));
    }
    Ok((d, k))
}

/// Probabilities for `n` rows, checked to have the promised shape.
fn query(model: &dyn Model, x: &[f32], n: usize, k: usize) -> Result<Vec<f32>, Error> {
    let p = proba(model, x, n)?;
    if p.len() != n * k {
        return Err(Error::Invalid(format!(
            "hopskipjump: the model returned {} probabilities for {n} rows of {k} classes",
            p.len()
        )));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::attacks::square::test_model::*;
    use crate::EpsUnits;

    const T: f32 = 1.5;

    fn run(
        model: &Linear,
        x: &[f32],
        y: &[u32],
        c: &Constraints,
        eps: f32,
        p: &HsjParams,
    ) -> AttackOutput {
        let input = AttackInput {
            x,
            labels: y,
            eps,
            constraints: c,
            seed: 11,
        };
        hop_skip_jump(model, &input, p).unwrap()
    }

    fn flips_above_and_not_below(norm: Norm) {
        let model = Linear::two_class();
        let (x, y) = points(20, T, &[], 21);
        assert_eq!(flipped(&model, &x, &y), 0);
        let (linf, l2) = boundary_distance(T);
        let dist = if norm == Norm::Linf { linf } else { l2 };
        let c = Constraints::box_bounds(10, -10.0, 10.0, norm);
        let p = HsjParams::default();

        let strong = run(&model, &x, &y, &c, 1.5 * dist, &p);
        assert!(c.contains(&x, &strong.x_adv, 1.5 * dist));
        let n_flipped = flipped(&model, &strong.x_adv, &y);
        assert!(n_flipped >= 18, "{norm:?}: {n_flipped} of 20 flipped");
        assert!(strong.queries <= 1000 * 20);
        assert!(
            strong.queries < 1000 * 10,
            "{norm:?}: early stop saves queries ({})",
            strong.queries
        );

        let weak = run(&model, &x, &y, &c, 0.7 * dist, &p);
        assert_eq!(weak.x_adv, x, "{norm:?}: a failed row is returned clean");
        assert!(weak.queries <= 1000 * 20);
    }

    #[test]
    fn linf_flips_above_the_margin_and_never_below_it() {
        flips_above_and_not_below(Norm::Linf);
    }

    #[test]
    fn l2_flips_above_the_margin_and_never_below_it() {
        flips_above_and_not_below(Norm::L2);
    }

    #[test]
    fn immutable_features_never_move_even_when_they_weigh_most() {
        let pin = [(0, 0.25), (5, -0.4)];
        let mut model = Linear::two_class();
        model.pinned = pin.to_vec();
        let (x, y) = points(16, T, &pin, 23);
        for norm in [Norm::Linf, Norm::L2] {
            let c = Constraints::from_schema(&schema(&[0, 5]), EpsUnits::Raw, norm);
            let eps = if norm == Norm::Linf { 0.3 } else { 0.6 };
            let out = run(&model, &x, &y, &c, eps, &HsjParams::default());
            for (a, b) in x.chunks(10).zip(out.x_adv.chunks(10)) {
                assert_eq!((a[0], a[5]), (b[0], b[5]));
            }
            assert!(c.contains(&x, &out.x_adv, eps));
            assert!(flipped(&model, &out.x_adv, &y) >= 14, "{norm:?}");
        }
        assert_eq!(
            model.violations.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "a query moved a frozen feature"
        );
    }

    #[test]
    fn queries_are_counted_exactly_and_stay_within_budget() {
        let model = Linear::two_class();
        let (mut x, mut y) = points(10, T, &[], 24);
        // Two rows the model already gets wrong: one query each, returned clean.
        let (wx, wy) = points(2, T, &[], 25);
        x.extend(&wx);
        y.extend(wy.iter().map(|v| 1 - v));
        let (dist, _) = boundary_distance(T);
        let c = Constraints::box_bounds(10, -10.0, 10.0, Norm::Linf);
        for (eps, budget) in [
            (0.7 * dist, 60),
            (1.5 * dist, 60),
            (1.5 * dist, 3),
            (1.5 * dist, 1),
            (0.7 * dist, 0),
        ] {
            let before = model.seen();
            let p = HsjParams {
                queries_per_sample: budget,
                init_evals: 20,
                ..HsjParams::default()
            };
            let out = run(&model, &x, &y, &c, eps, &p);
            assert_eq!(out.queries, model.seen() - before);
            assert!(
                out.queries <= u64::from(budget) * 12,
                "{} > {budget} × 12",
                out.queries
            );
            assert_eq!(
                out.x_adv[100..],
                x[100..],
                "misclassified rows are returned unchanged"
            );
        }
        let all_wrong: Vec<u32> = model.predict(&x).iter().map(|v| 1 - v).collect();
        let out = run(&model, &x, &all_wrong, &c, dist, &HsjParams::default());
        assert_eq!((out.queries, &out.x_adv), (12, &x));
    }

    #[test]
    fn deterministic_for_a_seed() {
        let model = Linear::two_class();
        let (x, y) = points(8, T, &[], 26);
        let (_, dist) = boundary_distance(T);
        let c = Constraints::box_bounds(10, -10.0, 10.0, Norm::L2);
        let p = HsjParams {
            queries_per_sample: 300,
            ..HsjParams::default()
        };
        let a = run(&model, &x, &y, &c, 1.2 * dist, &p);
        let b = run(&model, &x, &y, &c, 1.2 * dist, &p);
        assert_eq!((&a.x_adv, a.queries), (&b.x_adv, b.queries));
        assert!(flipped(&model, &a.x_adv, &y) >= 6);
        let input = AttackInput {
            x: &x,
            labels: &y,
            eps: 1.2 * dist,
            constraints: &c,
            seed: 12,
        };
        let other = hop_skip_jump(&model, &input, &p).unwrap();
        assert_ne!(a.x_adv, other.x_adv);
    }

    #[test]
    fn integer_features_stay_whole() {
        let (schema, model, x, y) = integer_fixture(29);
        let c = Constraints::from_schema(&schema, EpsUnits::Raw, Norm::Linf);
        let out = run(&model, &x, &y, &c, 2.5, &HsjParams::default());
        assert!(c.contains(&x, &out.x_adv, 2.5));
        for row in out.x_adv.chunks(6) {
            assert!(
                row[..4].iter().all(|v| v.fract() == 0.0),
                "non-integer count in {row:?}"
            );
            assert!(schema.check_row(row).is_ok());
        }
        assert!(
            flipped(&model, &out.x_adv, &y) >= 10,
            "{} of 12 flipped",
            flipped(&model, &out.x_adv, &y)
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let model = Linear::two_class();
        let c = Constraints::box_bounds(9, -10.0, 10.0, Norm::Linf);
        let x = vec![0.0; 10];
        let wrong_width = AttackInput {
            x: &x,
            labels: &[0],
            eps: 0.1,
            constraints: &c,
            seed: 0,
        };
        assert!(hop_skip_jump(&model, &wrong_width, &HsjParams::default()).is_err());
    }
}
