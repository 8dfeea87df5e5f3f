//! What an attacker may change: the perturbation ball intersected with the feature schema.
//!
//! Every attack in this crate calls [`Constraints::project`] after each step and [`Constraints::finalize`] on
//! its answer, so an adversarial row never leaves the eps ball, never changes an immutable feature, keeps
//! integers whole and one-hot groups one-hot, and stays inside each feature's bounds. An attack that found an
//! "adversarial" row no real input could take would overstate the risk.

use aegis_core::{FeatureKind, Schema};

/// How `eps` is measured per feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EpsUnits {
    /// eps in the feature's own units (what ART and Foolbox use).
    #[default]
    Raw,
    /// eps as a fraction of the feature's valid range (`max - min`), so one eps fits features of any scale.
    Range,
}

/// The perturbation norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Norm {
    /// Each feature moves at most its eps.
    #[default]
    Linf,
    /// The per-feature-scaled Euclidean distance is at most eps.
    L2,
}

/// Per-feature bounds, mutability, integrality and one-hot groups, compiled from a [`Schema`].
#[derive(Debug, Clone)]
pub struct Constraints {
    lo: Vec<f32>,
    hi: Vec<f32>,
    /// Multiplier turning a global eps into a feature's radius (0 for immutable features).
    scale: Vec<f32>,
    /// A fixed radius from the schema, overriding the global eps.
    fixed: Vec<Option<f32>>,
    kind: Vec<FeatureKind>,
    groups: Vec<Vec<usize>>,
    norm: Norm,
}

impl Constraints {
    /// Constraints from a schema whose features are the model's inputs, in order.
    pub fn from_schema(schema: &Schema, units: EpsUnits, norm: Norm) -> Self {
        let n = schema.features.len();
        let mut c = Constraints {
            lo: schema.features.iter().map(|f| f.min).collect(),
            hi: schema.features.iter().map(|f| f.max).collect(),
            scale: schema
                .features
                .iter()
                .map(|f| match (f.immutable, units) {
                    (true, _) => 0.0,
                    (false, EpsUnits::Raw) => 1.0,
                    (false, EpsUnits::Range) => f.range(),
                })
                .collect(),
            fixed: schema
                .features
                .iter()
                .map(|f| if f.immutable { Some(0.0) } else { f.eps })
                .collect(),
            kind: schema.features.iter().map(|f| f.kind).collect(),
            groups: Vec::new(),
            norm,
        };
        for g in &schema.one_hot {
            let cols: Vec<usize> = g
                .columns
                .iter()
                .filter_map(|name| schema.index(name))
                .collect();
            if g.immutable {
                for &i in &cols {
                    c.scale[i] = 0.0;
                    c.fixed[i] = Some(0.0);
                }
            }
            if cols.len() > 1 {
                c.groups.push(cols);
            }
        }
        debug_assert_eq!(c.lo.len(), n);
        c
    }

    /// No schema: every feature continuous within `[lo, hi]` (e.g. pixels in `[0, 1]`).
    pub fn box_bounds(d: usize, lo: f32, hi: f32, norm: Norm) -> Self {
        Constraints {
            lo: vec![lo; d],
            hi: vec![hi; d],
            scale: vec![1.0; d],
            fixed: vec![None; d],
            kind: vec![FeatureKind::Continuous; d],
            groups: Vec::new(),
            norm,
        }
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.lo.len()
    }

    /// The norm the ball is measured in.
    pub fn norm(&self) -> Norm {
        self.norm
    }

    /// Whether feature `j` may change at all.
    pub fn is_mutable(&self, j: usize) -> bool {
        self.radius(j, 1.0) > 0.0
    }

    /// Per-feature scale for eps: the L∞ radius of feature `j` at eps, or the L2 weight.
    pub fn radius(&self, j: usize, eps: f32) -> f32 {
        match self.fixed[j] {
            Some(r) => r,
            None => eps * self.scale[j],
        }
    }

    /// The eps in both units over the mutable features: `(raw_min, raw_max, range_min, range_max)`, the
    /// radius in feature units and as a fraction of the feature's valid range (features with a zero range
    /// are left out of the fraction).
    pub fn radius_summary(&self, eps: f32) -> (f32, f32, f32, f32) {
        let (mut raw, mut frac) = ((f32::MAX, 0.0f32), (f32::MAX, 0.0f32));
        for j in (0..self.n_features()).filter(|&j| self.is_mutable(j)) {
            let r = self.radius(j, eps);
            raw = (raw.0.min(r), raw.1.max(r));
            let range = self.hi[j] - self.lo[j];
            if range > 0.0 {
                frac = (frac.0.min(r / range), frac.1.max(r / range));
            }
        }
        let fix = |(a, b): (f32, f32)| if a == f32::MAX { (0.0, 0.0) } else { (a, b) };
        let (raw, frac) = (fix(raw), fix(frac));
        (raw.0, raw.1, frac.0, frac.1)
    }

    /// Lower and upper bound of feature `j`.
    pub fn bounds(&self, j: usize) -> (f32, f32) {
        (self.lo[j], self.hi[j])
    }

    /// Project `x` (a batch of rows) onto the ball of radius `eps` around `x0` and the feature bounds.
    /// Immutable features are reset to their original value.
    pub fn project(&self, x0: &[f32], x: &mut [f32], eps: f32) {
        let d = self.n_features();
        for (row0, row) in x0.chunks(d).zip(x.chunks_mut(d)) {
            match self.norm {
                Norm::Linf => {
                    for j in 0..d {
                        let r = self.radius(j, eps);
                        let v = row[j].clamp(row0[j] - r, row0[j] + r);
                        row[j] = if v.is_finite() {
                            v.clamp(self.lo[j], self.hi[j])
                        } else {
                            row0[j]
                        };
                    }
                }
                Norm::L2 => self.project_l2_row(row0, row, eps),
            }
        }
    }

    /// L2 ball in scaled units (δ_j / s_j) over the features measured by eps, then the box; features with a
    /// fixed radius are clamped to it on their own, immutable ones reset.
    fn project_l2_row(&self, row0: &[f32], row: &mut [f32], eps: f32) {
        self.shrink_l2(row0, row, eps, |_| true);
        for j in 0..row.len() {
            if !row[j].is_finite() {
                row[j] = row0[j];
            }
            if let Some(r) = self.fixed[j] {
                row[j] = row[j].clamp(row0[j] - r, row0[j] + r);
            }
            row[j] = row[j].clamp(self.lo[j], self.hi[j]);
        }
    }

    /// Scale the eps-measured change of the features `movable` selects so the row's L2 distance is ≤ eps.
    fn shrink_l2(&self, row0: &[f32], row: &mut [f32], eps: f32, movable: impl Fn(usize) -> bool) {
        let d = row.len();
        let measured = |j: usize| self.fixed[j].is_none() && self.scale[j] > 0.0;
        let (mut fixed_part, mut movable_part) = (0.0f64, 0.0f64);
        for j in (0..d).filter(|&j| measured(j) && row[j].is_finite()) {
            let z = ((row[j] - row0[j]) / self.scale[j]) as f64;
            if movable(j) {
                movable_part += z * z;
            } else {
                fixed_part += z * z;
            }
        }
        let budget = (eps as f64 * eps as f64 - fixed_part).max(0.0);
        if movable_part > budget && movable_part > 0.0 {
            let f = (budget / movable_part).sqrt() as f32;
            for j in (0..d).filter(|&j| measured(j) && movable(j)) {
                row[j] = row0[j] + (row[j] - row0[j]) * f;
            }
        }
    }

    /// Make each row a valid input: [`project`](Self::project), then whole numbers for integer and binary
    /// features (rounded toward the original when rounding would leave the ball), then one hot column per
    /// one-hot group (the largest, if the group may change at this eps).
    pub fn finalize(&self, x0: &[f32], x: &mut [f32], eps: f32) {
        self.project(x0, x, eps);
        let d = self.n_features();
        for (row0, row) in x0.chunks(d).zip(x.chunks_mut(d)) {
            for j in 0..d {
                if matches!(self.kind[j], FeatureKind::Integer | FeatureKind::Binary) {
                    let r = self.radius(j, eps);
                    let mut v = row[j].round();
                    if (v - row0[j]).abs() > r + 1e-6 {
                        v = if row[j] > row0[j] {
                            row[j].floor()
                        } else {
                            row[j].ceil()
                        };
                    }
                    row[j] = v.clamp(self.lo[j].ceil(), self.hi[j].floor());
                }
            }
            for g in &self.groups {
                let can_switch = g.iter().all(|&j| {
                    self.radius(j, eps) >= 1.0 || self.norm == Norm::L2 && self.radius(j, 1.0) > 0.0
                });
                let hot = if can_switch {
                    let mut best = g[0];
                    for &j in g {
                        if row[j] > row[best] {
                            best = j;
                        }
                    }
                    best
                } else {
                    let mut orig = g[0];
                    for &j in g {
                        if row0[j] > row0[orig] {
                            orig = j;
                        }
                    }
                    orig
                };
                for &j in g {
                    row[j] = if j == hot { 1.0 } else { 0.0 };
                }
            }
            if self.norm == Norm::L2 {
                // Rounding can push an L2 row just outside the ball: shrink only what is continuous, and if
                // the whole numbers alone exceed the budget, put them back.
                let continuous = |j: usize| self.kind[j] == FeatureKind::Continuous;
                self.shrink_l2(row0, row, eps, continuous);
                if self.distance(row0, row)[0] > eps * (1.0 + 1e-5) {
                    for j in (0..d).filter(|&j| !continuous(j)) {
                        row[j] = row0[j];
                    }
                    self.shrink_l2(row0, row, eps, continuous);
                }
            }
        }
    }

    /// The distance of `x` from `x0` in this norm, per row (scaled units for L2; for L∞ the largest
    /// `|δ_j| / radius_j(1)` over mutable features, i.e. the eps the change needs).
    pub fn distance(&self, x0: &[f32], x: &[f32]) -> Vec<f32> {
        let d = self.n_features();
        x0.chunks(d)
            .zip(x.chunks(d))
            .map(|(a, b)| {
                let mut acc = 0.0f32;
                for j in 0..d {
                    let delta = (b[j] - a[j]).abs();
                    // Features with a fixed radius are checked on their own by `contains`.
                    if delta == 0.0 || self.fixed[j].is_some_and(|r| r > 0.0) {
                        continue;
                    }
                    let s = self.radius(j, 1.0);
                    let z = if s > 0.0 { delta / s } else { f32::INFINITY };
                    acc = match self.norm {
                        Norm::Linf => acc.max(z),
                        Norm::L2 => acc + z * z,
                    };
                }
                if self.norm == Norm::L2 {
                    acc.sqrt()
                } else {
                    acc
                }
            })
            .collect()
    }

    /// Whether each row of `x` is within the ball of `eps` around `x0` and inside the bounds (tolerance 1e-4
    /// relative), i.e. whether the attack kept its promise.
    pub fn contains(&self, x0: &[f32], x: &[f32], eps: f32) -> bool {
        let d = self.n_features();
        let inside_bounds = x.chunks(d).all(|row| {
            row.iter()
                .enumerate()
                .all(|(j, &v)| v >= self.lo[j] - 1e-4 && v <= self.hi[j] + 1e-4)
        });
        let fixed_ok = x0.chunks(d).zip(x.chunks(d)).all(|(a, b)| {
            (0..d).all(|j| self.fixed[j].is_none_or(|r| (b[j] - a[j]).abs() <= r + 1e-4))
        });
        let eps_ok = self
            .distance(x0, x)
            .iter()
            .all(|&dist| dist <= eps * (1.0 + 1e-4) + 1e-5);
        inside_bounds && fixed_ok && eps_ok
    }
}

#[cfg(test)]
mod tests {
    use aegis_core::{FeatureSpec, OneHotGroup};

    use super::*;

    fn spec(name: &str, kind: FeatureKind, min: f32, max: f32, immutable: bool) -> FeatureSpec {
        FeatureSpec {
            name: name.into(),
            kind,
            min,
            max,
            immutable,
            eps: None,
        }
    }

    fn schema() -> Schema {
        Schema {
            features: vec![
                spec("age", FeatureKind::Integer, 18.0, 99.0, true),
                spec("amount", FeatureKind::Continuous, 0.0, 100.0, false),
                spec("n_tx", FeatureKind::Integer, 0.0, 50.0, false),
                spec("de", FeatureKind::Binary, 0.0, 1.0, false),
                spec("fr", FeatureKind::Binary, 0.0, 1.0, false),
            ],
            one_hot: vec![OneHotGroup {
                name: "country".into(),
                columns: vec!["de".into(), "fr".into()],
                immutable: false,
            }],
        }
    }

    #[test]
    fn projection_keeps_ball_bounds_and_immutables() {
        let c = Constraints::from_schema(&schema(), EpsUnits::Range, Norm::Linf);
        let x0 = [30.0, 50.0, 10.0, 1.0, 0.0];
        let mut x = [45.0, 99.0, 30.0, 0.2, 0.9];
        c.finalize(&x0, &mut x, 0.1);
        assert_eq!(x[0], 30.0, "immutable age changed");
        assert_eq!(x[1], 60.0, "amount left the 10% ball");
        assert_eq!(x[2], 15.0, "integer left the ball or is not whole");
        assert_eq!((x[3], x[4]), (1.0, 0.0), "category switched at a small eps");
        assert!(c.contains(&x0, &x, 0.1));
        assert!(schema().check_row(&x).is_ok());
        let mut far = x;
        far[1] = 75.0;
        assert!(!c.contains(&x0, &far, 0.1));
    }

    #[test]
    fn large_eps_allows_a_category_switch() {
        let c = Constraints::from_schema(&schema(), EpsUnits::Range, Norm::Linf);
        let x0 = [30.0, 50.0, 10.0, 1.0, 0.0];
        let mut x = [30.0, 50.0, 10.0, 0.2, 0.9];
        c.finalize(&x0, &mut x, 1.0);
        assert_eq!((x[3], x[4]), (0.0, 1.0));
        assert!(schema().check_row(&x).is_ok());
    }

    #[test]
    fn per_feature_eps_is_a_fixed_radius_that_contains_accepts() {
        let mut s = schema();
        s.features[1].eps = Some(5.0);
        let c = Constraints::from_schema(&s, EpsUnits::Range, Norm::Linf);
        let x0 = [30.0, 50.0, 10.0, 1.0, 0.0];
        let mut x = [30.0, 90.0, 12.0, 1.0, 0.0];
        c.finalize(&x0, &mut x, 0.1);
        assert_eq!(x[1], 55.0, "amount moved more than its own eps");
        assert!(c.contains(&x0, &x, 0.1));
        let mut far = x;
        far[1] = 56.0;
        assert!(!c.contains(&x0, &far, 0.1));
        let (raw_lo, raw_hi, frac_lo, frac_hi) = c.radius_summary(0.1);
        assert_eq!((raw_lo, raw_hi), (0.1, 5.0));
        assert!((frac_lo - 0.05).abs() < 1e-6 && (frac_hi - 0.1).abs() < 1e-6);
    }

    #[test]
    fn l2_projection_shrinks_onto_the_sphere() {
        let c = Constraints::box_bounds(2, -10.0, 10.0, Norm::L2);
        let x0 = [0.0, 0.0];
        let mut x = [3.0, 4.0];
        c.project(&x0, &mut x, 1.0);
        assert!((x[0] - 0.6).abs() < 1e-6 && (x[1] - 0.8).abs() < 1e-6);
        assert!(c.contains(&x0, &x, 1.0));
        assert!(!c.contains(&x0, &[3.0, 4.0], 1.0));
    }
}
