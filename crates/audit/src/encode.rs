//! A mixed-type numeric view of a [`Frame`] that every check shares.
//!
//! Outlier scores, neighbour searches and duplicate detection need one notion of "how different are two rows".
//! One-hot encoding breaks isolation forests (hundreds of near-constant 0/1 columns) and ordinal codes invent an
//! order between categories, so the view keeps each column's nature: numeric and timestamp columns become
//! robust z-scores (`(x - median) / scale`, with the scale from the interquartile range so that the outliers we
//! look for do not shrink everyone else's distances), categorical and boolean columns keep their code and are
//! compared for equality only. Missing cells stay missing (`NaN`) and count as a full mismatch.
//! Text columns are left out of the view (reported in [`Encoded::skipped`]).

use aegis_core::{ColumnData, Frame, MISSING_CODE};

/// How one encoded column is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncKind {
    /// A robust z-score; distances use the difference.
    Numeric,
    /// A category code (as `f32`); distances use equality. `levels` is the number of distinct values.
    Categorical {
        /// Number of distinct values.
        levels: u32,
    },
}

/// The mismatch cost of a differing category, of a missing cell, and the cap on one numeric difference in
/// [`Encoded::distance`]: one category change weighs like a numeric change of one robust standard deviation.
pub const MISMATCH: f32 = 1.0;

/// A row-major `f32` matrix of the frame's usable columns.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Rows.
    pub n_rows: usize,
    /// Encoded columns, in frame order.
    pub names: Vec<String>,
    /// Index of each encoded column in the frame's `columns`.
    pub frame_columns: Vec<usize>,
    /// How each encoded column is compared.
    pub kinds: Vec<EncKind>,
    /// `n_rows * names.len()` values; `NaN` is a missing cell.
    pub values: Vec<f32>,
    /// Per numeric column the `(median, scale)` used; `(0, 1)` for categorical columns.
    pub scaling: Vec<(f64, f64)>,
    /// Names of frame columns left out (text).
    pub skipped: Vec<String>,
    /// Per categorical column the category names of the codes (empty for numeric columns). An encoding made
    /// [`like`](Encoded::like) another uses the other's codes, so equal categories compare equal across the two.
    pub levels: Vec<Vec<String>>,
}

impl Encoded {
    /// Encodes a frame (see the module docs).
    pub fn new(frame: &Frame) -> Encoded {
        Self::with_scaling(frame, None)
    }

    /// Encodes `frame` with the scaling of `like` (so a reference and a current dataset share one space).
    /// Columns are matched by name; a column `like` lacks is encoded with its own scaling.
    pub fn like(frame: &Frame, like: &Encoded) -> Encoded {
        Self::with_scaling(frame, Some(like))
    }

    fn with_scaling(frame: &Frame, like: Option<&Encoded>) -> Encoded {
        let n = frame.n_rows;
        let mut names = Vec::new();
        let mut frame_columns = Vec::new();
        let mut kinds = Vec::new();
        let mut scaling = Vec::new();
        let mut skipped = Vec::new();
        let mut all_levels = Vec::new();
        let mut cols: Vec<Vec<f32>> = Vec::new();
        for (j, col) in frame.columns.iter().enumerate() {
            let like_col = like.and_then(|l| l.names.iter().position(|x| *x == col.name));
            let given = like
                .zip(like_col)
                .and_then(|(l, k)| l.scaling.get(k).copied());
            let mut col_levels = Vec::new();
            let (kind, values, scale) = match &col.data {
                ColumnData::Numeric(v) => numeric(v.iter().copied(), given),
                ColumnData::Timestamp(v) => {
                    numeric(v.iter().map(|t| t.map_or(f64::NAN, |t| t as f64)), given)
                }
                ColumnData::Categorical { codes, levels } => {
                    let shared = like
                        .zip(like_col)
                        .and_then(|(l, k)| l.levels.get(k))
                        .filter(|l| !l.is_empty());
                    let (map, names) = match shared {
                        Some(theirs) => remap(levels, theirs),
                        None => ((0..levels.len() as u32).collect(), levels.clone()),
                    };
                    let values = codes
                        .iter()
                        .map(|&c| match map.get(c as usize) {
                            Some(&m) if c != MISSING_CODE => m as f32,
                            _ => f32::NAN,
                        })
                        .collect();
                    let n_levels = u32::try_from(names.len()).unwrap_or(u32::MAX);
                    col_levels = names;
                    (
                        EncKind::Categorical { levels: n_levels },
                        values,
                        (0.0, 1.0),
                    )
                }
                ColumnData::Boolean(v) => {
                    let values = v
                        .iter()
                        .map(|b| b.map_or(f32::NAN, |b| f32::from(u8::from(b))))
                        .collect();
                    (EncKind::Categorical { levels: 2 }, values, (0.0, 1.0))
                }
                ColumnData::Text(_) => {
                    skipped.push(col.name.clone());
                    continue;
                }
            };
            names.push(col.name.clone());
            frame_columns.push(j);
            kinds.push(kind);
            scaling.push(scale);
            all_levels.push(col_levels);
            cols.push(values);
        }
        let d = cols.len();
        let mut values = vec![f32::NAN; n * d];
        for (k, col) in cols.iter().enumerate() {
            for (i, &x) in col.iter().enumerate().take(n) {
                values[i * d + k] = x;
            }
        }
        Encoded {
            n_rows: n,
            names,
            frame_columns,
            kinds,
            values,
            scaling,
            skipped,
            levels: all_levels,
        }
    }

    /// Number of encoded columns.
    pub fn n_cols(&self) -> usize {
        self.names.len()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.n_cols();
        &self.values[i * d..(i + 1) * d]
    }

    /// Squared mixed distance between two encoded rows: the sum over numeric columns of the squared
    /// difference of robust z-scores, plus [`MISMATCH`] for each differing category, plus [`MISMATCH`] for
    /// each column missing in exactly one of the rows.
    pub fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        let mut sum = 0.0f32;
        for ((&x, &y), kind) in a.iter().zip(b).zip(&self.kinds) {
            match (x.is_nan(), y.is_nan()) {
                (true, true) => {}
                (true, false) | (false, true) => sum += MISMATCH,
                (false, false) => match kind {
                    EncKind::Numeric => sum += (x - y) * (x - y),
                    EncKind::Categorical { .. } => {
                        if x != y {
                            sum += MISMATCH;
                        }
                    }
                },
            }
        }
        sum
    }
}

/// Maps our category codes onto `theirs`: a category they have keeps their code, a new one gets the next free
/// code. Returns the code map and the resulting category names.
fn remap(ours: &[String], theirs: &[String]) -> (Vec<u32>, Vec<String>) {
    let mut names = theirs.to_vec();
    let index: std::collections::HashMap<&str, u32> = theirs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i as u32))
        .collect();
    let map = ours
        .iter()
        .map(|s| match index.get(s.as_str()) {
            Some(&i) => i,
            None => {
                names.push(s.clone());
                (names.len() - 1) as u32
            }
        })
        .collect();
    (map, names)
}

/// Encodes one numeric column as robust z-scores; the scale is IQR / 1.349 (the standard deviation of a normal
/// with that IQR), falling back to the mean absolute deviation from the median, then to 1, for columns whose
/// IQR is zero (mostly constant columns).
fn numeric(
    values: impl Iterator<Item = f64> + Clone,
    given: Option<(f64, f64)>,
) -> (EncKind, Vec<f32>, (f64, f64)) {
    let (median, scale) = given.unwrap_or_else(|| robust_scale(values.clone()));
    let encoded = values
        .map(|x| {
            if x.is_finite() {
                ((x - median) / scale) as f32
            } else {
                f32::NAN
            }
        })
        .collect();
    (EncKind::Numeric, encoded, (median, scale))
}

/// `(median, scale)` of the finite values (see [`numeric`]); `(0, 1)` for a column without finite values.
pub fn robust_scale(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let median = q(0.5);
    let iqr = q(0.75) - q(0.25);
    let scale = if iqr > 0.0 {
        iqr / 1.349
    } else {
        mostly_constant_scale(&v, median)
    };
    (median, scale)
}

/// The scale of a column whose middle half is one value (a flag that is mostly 0, a count that is mostly
/// zero, an image border pixel): the larger of the mean absolute deviation and the standard deviation. The mean
/// absolute deviation alone of a column that is 0 in 99.9% of rows is 0.001, and every row with the flag set
/// then sits a thousand "standard deviations" out: clean image and flag tables read as full of outliers. The
/// standard deviation keeps rarity meaningful (a value held by 1% of rows is about 10 out, one held by 20% about
/// 2.5) without letting one rare value dwarf every other column. Unlike the interquartile scale it is widened
/// by an extreme value, which is accepted for these columns only.
fn mostly_constant_scale(sorted: &[f64], median: f64) -> f64 {
    let n = sorted.len() as f64;
    // Deviations are divided by the largest one before squaring, so values near f64::MAX stay finite.
    let widest = sorted
        .iter()
        .map(|x| (x - median).abs())
        .fold(0.0f64, f64::max);
    if !(widest > 0.0 && widest.is_finite()) {
        return 1.0;
    }
    let mad = sorted.iter().map(|x| (x - median).abs()).sum::<f64>() / n;
    let mean = sorted.iter().map(|x| (x - median) / widest).sum::<f64>() / n;
    let var = sorted
        .iter()
        .map(|x| ((x - median) / widest - mean).powi(2))
        .sum::<f64>()
        / n;
    let scale = (mad * 1.253).max(var.sqrt() * widest);
    if scale > 0.0 && scale.is_finite() {
        scale
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::Column;

    fn frame() -> Frame {
        Frame {
            source: "t.csv".into(),
            columns: vec![
                Column {
                    name: "x".into(),
                    data: ColumnData::Numeric(vec![1.0, 2.0, 3.0, 4.0, f64::NAN]),
                },
                Column {
                    name: "c".into(),
                    data: ColumnData::Categorical {
                        codes: vec![0, 1, 0, MISSING_CODE, 1],
                        levels: vec!["a".into(), "b".into()],
                    },
                },
                Column {
                    name: "note".into(),
                    data: ColumnData::Text(vec![None; 5]),
                },
            ],
            labels: None,
            n_rows: 5,
        }
    }

    #[test]
    fn numeric_columns_become_robust_z_scores_and_text_is_skipped() {
        let e = Encoded::new(&frame());
        assert_eq!(e.names, vec!["x", "c"]);
        assert_eq!(e.skipped, vec!["note"]);
        assert_eq!(e.kinds[1], EncKind::Categorical { levels: 2 });
        let (median, scale) = e.scaling[0];
        assert!((median - 3.0).abs() < 1e-12 || (median - 2.0).abs() < 1e-12);
        assert!(scale > 0.0);
        assert!(e.row(4)[0].is_nan(), "a missing number stays missing");
        assert!(e.row(3)[1].is_nan(), "a missing category stays missing");
    }

    #[test]
    fn a_mostly_constant_column_is_scaled_by_its_standard_deviation() {
        // 0 in 99% of rows, 1 in 1%: the rare 1 is about 10 out, not 80 (what the mean absolute deviation says).
        let flag: Vec<f64> = (0..1000)
            .map(|i| if i % 100 == 0 { 1.0 } else { 0.0 })
            .collect();
        let (median, scale) = robust_scale(flag.iter().copied());
        assert_eq!(median, 0.0);
        let z = 1.0 / scale;
        assert!((z - 10.05).abs() < 0.1, "z {z}");
        // Held by 20% of rows, it is 2.5 out.
        let common: Vec<f64> = (0..1000)
            .map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })
            .collect();
        let (_, scale) = robust_scale(common.iter().copied());
        assert!((1.0 / scale - 2.5).abs() < 0.01, "scale {scale}");
        // A spread column keeps its interquartile scale; a constant one gets 1.
        let (_, scale) = robust_scale((0..100).map(f64::from));
        assert!((scale - 49.0 / 1.349).abs() < 0.5, "scale {scale}");
        assert_eq!(robust_scale([5.0; 10].into_iter()), (5.0, 1.0));
        // Values near the top of f64 keep a finite scale, so the extreme value still stands out.
        let mut huge = vec![0.0; 99];
        huge.push(1e300);
        let (_, scale) = robust_scale(huge.iter().copied());
        assert!(
            scale.is_finite() && scale > 0.0 && 1e300 / scale > 9.0,
            "scale {scale}"
        );
    }

    #[test]
    fn distance_counts_category_and_missing_mismatches() {
        let e = Encoded::new(&frame());
        assert_eq!(e.distance(e.row(0), e.row(0)), 0.0);
        let dz = e.row(0)[0] - e.row(1)[0];
        let d01 = e.distance(e.row(0), e.row(1));
        assert!(
            (d01 - (dz * dz + MISMATCH)).abs() < 1e-6,
            "numeric part plus one category mismatch"
        );
        assert!(e.distance(e.row(3), e.row(4)) >= 2.0 * MISMATCH);
    }

    #[test]
    fn categories_are_matched_by_name_across_encodings() {
        let reference = frame();
        let mut current = frame();
        current.columns[1].data = ColumnData::Categorical {
            codes: vec![0, 1, 2, 0, 0],
            levels: vec!["b".into(), "a".into(), "new".into()],
        };
        let r = Encoded::new(&reference);
        let c = Encoded::like(&current, &r);
        assert_eq!(c.row(0)[1], r.row(1)[1], "b is b in both");
        assert_eq!(c.row(1)[1], r.row(0)[1], "a is a in both");
        assert_eq!(
            c.row(2)[1],
            2.0,
            "a category the reference lacks gets a new code"
        );
        assert_eq!(c.levels[1], vec!["a", "b", "new"]);
    }

    #[test]
    fn a_reference_scaling_is_reused() {
        let f = frame();
        let e = Encoded::new(&f);
        let again = Encoded::like(&f, &e);
        assert_eq!(again.scaling, e.scaling);
        assert_eq!(again.values.len(), e.values.len());
    }
}
