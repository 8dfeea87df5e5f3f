//! Class balance and label-distribution shift.
//!
//! A poisoner who injects or relabels rows moves the label distribution: a class that was 2% becomes 8%, or a
//! class appears that the trusted snapshot never had. Imbalance on its own is not an attack, but it changes how
//! every other check and the model itself behave (a 1% class is easy to drown), so it is reported at low
//! severity. Against a trusted `--reference` the label counts are compared with a chi-square test of
//! homogeneity (p-value from the regularized incomplete gamma function, written here) and the total variation
//! distance; both must agree (p < 0.001 *and* TVD > 0.02) before a shift is reported, so that huge datasets do
//! not turn negligible differences into findings.

use aegis_core::{Finding, Frame, Location, RuleDoc, Severity};
use aegis_stats::special::chi2_sf;
use serde_json::{json, Value};

use crate::{CheckOutput, Error};

/// A class is rare or the classes are very unequal.
pub const CLASS_IMBALANCE: RuleDoc = RuleDoc {
    id: "AEG-AUD-030",
    name: "class-imbalance",
    severity: Severity::Low,
    summary: "A class holds under 5% of the rows, or the largest class is over 10 times the smallest.",
    why: "A rare class is where a few injected or relabelled rows weigh most: 50 poisoned rows are noise in a \
          balanced table and a third of a 150-row class. Imbalance also makes accuracy misleading and hides \
          label noise in the minority class.",
    fix: "Check that the rare class is rare in reality (not lost in collection); review its rows first when \
          auditing labels; use class weights or stratified sampling when training, and report per-class metrics.",
    atlas: &["AML.T0020"],
    cwe: &[20],
};

/// The label distribution differs from the trusted reference.
pub const LABEL_SHIFT: RuleDoc = RuleDoc {
    id: "AEG-AUD-031",
    name: "label-distribution-shift",
    severity: Severity::Medium,
    summary: "The label distribution differs significantly from the trusted reference snapshot.",
    why: "Injected or relabelled rows shift class proportions; a shift that the data's history does not explain \
          is a sign of poisoning (or of a broken labelling pipeline), and a model trained on it learns the wrong \
          base rates.",
    fix: "Compare the new rows against the reference (the `new` rows in the flags CSV), find where the extra rows \
          of the grown class came from, and retrain without them to compare.",
    atlas: &["AML.T0020"],
    cwe: &[20],
};

/// The set of classes differs from the trusted reference.
pub const CLASS_SET_MISMATCH: RuleDoc = RuleDoc {
    id: "AEG-AUD-032",
    name: "label-classes-differ",
    severity: Severity::Medium,
    summary: "The dataset has classes the trusted reference lacks, or lacks classes the reference has.",
    why: "A new label value can be a typo, a pipeline change, or an attacker's target class; a lost class means \
          the model will never predict it.",
    fix: "Check where the rows with the new class came from and whether the missing class was dropped on purpose.",
    atlas: &["AML.T0020"],
    cwe: &[20],
};

/// All rules of this module.
pub const RULES: &[RuleDoc] = &[CLASS_IMBALANCE, LABEL_SHIFT, CLASS_SET_MISMATCH];

/// A class share below this is reported as imbalance.
pub const MIN_CLASS_SHARE: f64 = 0.05;
/// A largest/smallest class ratio above this is reported as imbalance.
pub const MAX_IMBALANCE_RATIO: f64 = 10.0;
/// Shift needs a chi-square p-value below this ...
pub const SHIFT_P_VALUE: f64 = 0.001;
/// ... and a total variation distance above this.
pub const SHIFT_TVD: f64 = 0.02;

fn dataset(frame: &Frame) -> Location {
    Location::Dataset {
        path: frame.source.clone(),
        row: None,
        column: frame.labels.as_ref().map(|l| l.column.clone()),
    }
}

/// Class balance of `frame` and, with a trusted `reference`, the shift of its label distribution.
///
/// Needs labels in `frame` (and in `reference` when given); emits no row signals.
pub fn check(frame: &Frame, reference: Option<&Frame>) -> Result<CheckOutput, Error> {
    let labels = frame.labels.as_ref().ok_or_else(|| Error::NoLabels {
        dataset: frame.source.clone(),
    })?;
    let mut out = CheckOutput::default();
    let counts = labels.counts();
    let n: usize = counts.iter().sum();
    let present: Vec<(usize, usize)> = counts
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, c)| c > 0)
        .collect();
    let (Some(&(min_k, min_c)), Some(&(max_k, max_c))) = (
        present.iter().min_by_key(|&&(k, c)| (c, k)),
        present
            .iter()
            .max_by_key(|&&(k, c)| (c, std::cmp::Reverse(k))),
    ) else {
        return Err(Error::TooFewRows {
            dataset: frame.source.clone(),
            what: "no labelled rows".into(),
        });
    };
    let name = |k: usize| labels.classes.get(k).cloned().unwrap_or_default();
    let ratio = max_c as f64 / min_c as f64;
    let min_share = min_c as f64 / n as f64;
    let per_class: serde_json::Map<String, Value> =
        present.iter().map(|&(k, c)| (name(k), json!(c))).collect();
    out.metrics
        .insert("balance.classes".into(), json!(present.len()));
    out.metrics
        .insert("balance.imbalance_ratio".into(), json!(ratio));
    out.metrics
        .insert("balance.smallest_class_share".into(), json!(min_share));
    out.metrics.insert(
        "balance.class_counts".into(),
        Value::Object(per_class.clone()),
    );
    if present.len() >= 2 && (min_share < MIN_CLASS_SHARE || ratio > MAX_IMBALANCE_RATIO) {
        let severe = min_share < 0.01 || ratio > 100.0;
        let message = format!(
            "class '{}' has {} of {} rows ({:.2}%); the largest class '{}' has {} (ratio {:.1}:1)",
            name(min_k),
            min_c,
            n,
            100.0 * min_share,
            name(max_k),
            max_c,
            ratio
        );
        out.findings.push(
            Finding::new(&CLASS_IMBALANCE, dataset(frame), message)
                .with_severity(if severe { Severity::Medium } else { Severity::Low })
                .with_evidence(json!({
                    "class_counts": per_class,
                    "smallest_class": name(min_k),
                    "smallest_class_share": min_share,
                    "imbalance_ratio": ratio,
                    "thresholds": {"min_share": MIN_CLASS_SHARE, "max_ratio": MAX_IMBALANCE_RATIO},
                    "confidence": 1.0,
                    "confidence_words": "exact counts",
                    "severity_reason": if severe { "smallest class under 1% or ratio over 100" } else { "imbalanced" },
                })),
        );
    }
    if let Some(reference) = reference {
        shift(frame, reference, &mut out)?;
    }
    Ok(out)
}

/// Label-distribution shift against the reference (classes matched by name).
fn shift(frame: &Frame, reference: &Frame, out: &mut CheckOutput) -> Result<(), Error> {
    let (Some(cur), Some(refl)) = (frame.labels.as_ref(), reference.labels.as_ref()) else {
        return Err(Error::ReferenceMismatch {
            reference: reference.source.clone(),
            what: "the reference has no label column".into(),
        });
    };
    let cur_counts = cur.counts();
    let ref_counts = refl.counts();
    let mut names: Vec<String> = Vec::new();
    let mut table: Vec<(f64, f64)> = Vec::new();
    for (k, c) in cur.classes.iter().enumerate() {
        let r = refl
            .classes
            .iter()
            .position(|x| x == c)
            .map_or(0, |j| ref_counts.get(j).copied().unwrap_or(0));
        names.push(c.clone());
        table.push((cur_counts.get(k).copied().unwrap_or(0) as f64, r as f64));
    }
    for (j, c) in refl.classes.iter().enumerate() {
        if !cur.classes.contains(c) {
            names.push(c.clone());
            table.push((0.0, ref_counts.get(j).copied().unwrap_or(0) as f64));
        }
    }
    let n_cur: f64 = table.iter().map(|t| t.0).sum();
    let n_ref: f64 = table.iter().map(|t| t.1).sum();
    if n_cur == 0.0 || n_ref == 0.0 {
        return Ok(());
    }
    let only_current: Vec<&String> = names
        .iter()
        .zip(&table)
        .filter(|(_, t)| t.0 > 0.0 && t.1 == 0.0)
        .map(|(n, _)| n)
        .collect();
    let only_reference: Vec<&String> = names
        .iter()
        .zip(&table)
        .filter(|(_, t)| t.1 > 0.0 && t.0 == 0.0)
        .map(|(n, _)| n)
        .collect();
    let (chi2, df) = chi_square_homogeneity(&table);
    let p = if df == 0 {
        1.0
    } else {
        chi2_sf(chi2, df as f64)
    };
    let tvd = 0.5
        * table
            .iter()
            .map(|t| (t.0 / n_cur - t.1 / n_ref).abs())
            .sum::<f64>();
    out.metrics.insert("balance.shift_chi2".into(), json!(chi2));
    out.metrics.insert("balance.shift_df".into(), json!(df));
    out.metrics.insert("balance.shift_p_value".into(), json!(p));
    out.metrics.insert("balance.shift_tvd".into(), json!(tvd));
    let shares: serde_json::Map<String, Value> = names
        .iter()
        .zip(&table)
        .map(|(name, t)| {
            (
                name.clone(),
                json!({"current": t.0 / n_cur, "reference": t.1 / n_ref,
                       "current_rows": t.0 as u64, "reference_rows": t.1 as u64}),
            )
        })
        .collect();
    if !only_current.is_empty() || !only_reference.is_empty() {
        let message = format!(
            "label classes differ from the reference {}: only here {:?}, only in the reference {:?}",
            reference.source, only_current, only_reference
        );
        out.findings.push(
            Finding::new(&CLASS_SET_MISMATCH, dataset(frame), message).with_evidence(json!({
                "only_current": only_current,
                "only_reference": only_reference,
                "shares": shares,
                "confidence": 1.0,
                "confidence_words": "exact class sets",
            })),
        );
    }
    if p < SHIFT_P_VALUE && tvd > SHIFT_TVD {
        let (worst, t) = names
            .iter()
            .zip(&table)
            .max_by(|a, b| {
                let da = (a.1 .0 / n_cur - a.1 .1 / n_ref).abs();
                let db = (b.1 .0 / n_cur - b.1 .1 / n_ref).abs();
                da.total_cmp(&db)
            })
            .map(|(n, t)| (n.clone(), *t))
            .unwrap_or_default();
        let message = format!(
            "label distribution differs from the reference {} (chi-square {:.1}, df {}, p = {:.2e}, total \
             variation {:.3}); class '{}' moved most: {:.2}% here vs {:.2}% in the reference",
            reference.source,
            chi2,
            df,
            p,
            tvd,
            worst,
            100.0 * t.0 / n_cur,
            100.0 * t.1 / n_ref
        );
        let severity = if tvd > 0.1 {
            Severity::High
        } else {
            Severity::Medium
        };
        out.findings.push(
            Finding::new(&LABEL_SHIFT, dataset(frame), message)
                .with_severity(severity)
                .with_evidence(json!({
                    "chi2": chi2,
                    "df": df,
                    "p_value": p,
                    "tvd": tvd,
                    "shares": shares,
                    "thresholds": {"p_value": SHIFT_P_VALUE, "tvd": SHIFT_TVD},
                    "confidence": 1.0 - p,
                    "confidence_words": "statistically significant (chi-square test of homogeneity)",
                    "severity_reason": if tvd > 0.1 { "total variation above 0.1" } else { "significant shift" },
                })),
        );
    }
    Ok(())
}

/// Chi-square statistic of homogeneity for a 2 x K table given as `(current, reference)` counts per class,
/// and its degrees of freedom (K' - 1 over the classes with any rows).
pub fn chi_square_homogeneity(table: &[(f64, f64)]) -> (f64, usize) {
    let n_a: f64 = table.iter().map(|t| t.0).sum();
    let n_b: f64 = table.iter().map(|t| t.1).sum();
    let n = n_a + n_b;
    if n_a <= 0.0 || n_b <= 0.0 {
        return (0.0, 0);
    }
    let mut chi2 = 0.0;
    let mut k = 0usize;
    for &(a, b) in table {
        let total = a + b;
        if total <= 0.0 {
            continue;
        }
        k += 1;
        let ea = total * n_a / n;
        let eb = total * n_b / n;
        chi2 += (a - ea) * (a - ea) / ea + (b - eb) * (b - eb) / eb;
    }
    (chi2, k.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::Labels;

    fn frame(source: &str, counts: &[(&str, usize)]) -> Frame {
        let mut codes = Vec::new();
        for (k, &(_, c)) in counts.iter().enumerate() {
            codes.extend(std::iter::repeat_n(k as u32, c));
        }
        let n = codes.len();
        Frame {
            source: source.into(),
            columns: Vec::new(),
            labels: Some(Labels {
                column: "y".into(),
                codes,
                classes: counts.iter().map(|c| c.0.to_string()).collect(),
            }),
            n_rows: n,
        }
    }

    #[test]
    fn chi_square_p_values_match_tables() {
        for (x, df, p) in [
            (3.841_459, 1.0, 0.05),
            (5.991_465, 2.0, 0.05),
            (18.307_04, 10.0, 0.05),
            (10.827_57, 1.0, 0.001),
            (0.454_936, 1.0, 0.5),
            (124.342_1, 100.0, 0.05),
        ] {
            let got = chi2_sf(x, df);
            assert!(
                (got - p).abs() < 1e-5 * p.max(0.01),
                "x {x} df {df}: {got} vs {p}"
            );
        }
    }

    #[test]
    fn imbalance_is_reported_only_when_a_class_is_rare() {
        let out = check(&frame("a.csv", &[("0", 970), ("1", 30)]), None).unwrap();
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].rule.as_str(), "AEG-AUD-030");
        assert_eq!(out.findings[0].severity, Severity::Low);
        let out = check(&frame("b.csv", &[("0", 600), ("1", 400)]), None).unwrap();
        assert!(out.findings.is_empty());
        assert!(out.metrics.contains_key("balance.imbalance_ratio"));
        let severe = check(&frame("c.csv", &[("0", 9990), ("1", 10)]), None).unwrap();
        assert_eq!(severe.findings[0].severity, Severity::Medium);
    }

    #[test]
    fn a_label_shift_against_the_reference_is_found_and_a_resample_is_not() {
        let reference = frame("ref.csv", &[("0", 9000), ("1", 1000)]);
        let shifted = frame("cur.csv", &[("0", 8500), ("1", 1500)]);
        let out = check(&shifted, Some(&reference)).unwrap();
        assert!(out
            .findings
            .iter()
            .any(|f| f.rule.as_str() == "AEG-AUD-031"));
        let same = frame("cur.csv", &[("0", 4520), ("1", 480)]);
        let out = check(&same, Some(&reference)).unwrap();
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        let p = out.metrics["balance.shift_p_value"].as_f64().unwrap();
        assert!(p > 0.001);
    }

    #[test]
    fn mismatched_class_sets_are_reported() {
        let reference = frame("ref.csv", &[("cat", 500), ("dog", 500)]);
        let current = frame("cur.csv", &[("cat", 480), ("dog", 500), ("fox", 20)]);
        let out = check(&current, Some(&reference)).unwrap();
        let f = out
            .findings
            .iter()
            .find(|f| f.rule.as_str() == "AEG-AUD-032")
            .unwrap();
        assert_eq!(f.evidence["only_current"][0], "fox");
        let out = check(
            &frame("x.csv", &[("dog", 500), ("cat", 500)]),
            Some(&reference),
        )
        .unwrap();
        assert!(out.findings.is_empty(), "classes are matched by name");
    }

    #[test]
    fn no_labels_is_an_error() {
        let mut f = frame("a.csv", &[("0", 10)]);
        f.labels = None;
        assert!(matches!(check(&f, None), Err(Error::NoLabels { .. })));
    }
}
