//! The whole audit: every check in the order their inputs need, merged into one report and one verdict per row.
//!
//! Order matters: exact-duplicate groups come first because the label check must keep copies of a row in one
//! fold (a copy in another fold would vouch for its own label); the label check's out-of-fold probabilities then
//! decide which member of a label-conflicting duplicate pair is the suspicious one. Outliers, backdoor triggers
//! and class balance are independent of the rest.
//!
//! Each row's verdict is the strongest signal any check gave it: `score` is the maximum suspicion, `flagged`
//! whether any check flagged it, and `kinds` the kinds of the checks that flagged it.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::time::Instant;

use aegis_core::{Finding, Frame, RuleDoc};
use serde_json::{Map, Value};

use crate::encode::Encoded;
use crate::{backdoor, balance, duplicates, labels, outliers, CheckOutput, Error, Kind};

/// Which checks run and how.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Label issues (needs labels).
    pub labels: Option<labels::LabelConfig>,
    /// Outliers.
    pub outliers: Option<outliers::OutlierConfig>,
    /// Duplicates, conflicts and novelty against the reference.
    pub duplicates: Option<duplicates::DuplicateConfig>,
    /// Backdoor triggers (needs labels).
    pub backdoor: Option<backdoor::BackdoorConfig>,
    /// Class balance and label shift (needs labels).
    pub balance: bool,
}

impl AuditConfig {
    /// Every check with its defaults for a table of `n_rows` and the given seed.
    pub fn all(n_rows: usize, seed: u64) -> Self {
        AuditConfig {
            labels: Some(labels::LabelConfig {
                seed,
                ..Default::default()
            }),
            outliers: Some(outliers::OutlierConfig {
                seed,
                ..Default::default()
            }),
            duplicates: Some(duplicates::DuplicateConfig::default()),
            backdoor: Some(backdoor::BackdoorConfig {
                seed,
                ..backdoor::BackdoorConfig::for_rows(n_rows)
            }),
            balance: true,
        }
    }
}

/// The audit's verdict on one row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowVerdict {
    /// Highest suspicion any check gave the row, in `[0, 1]`.
    pub score: f32,
    /// Whether any check flagged it.
    pub flagged: bool,
    /// The kinds of the checks that flagged it, in [`Kind`] order.
    pub kinds: BTreeSet<Kind>,
}

/// Everything an audit found.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Findings of all checks.
    pub findings: Vec<Finding>,
    /// One verdict per data row.
    pub rows: Vec<RowVerdict>,
    /// Per-check figures, keyed by check name, plus `timings_ms`.
    pub metrics: Map<String, Value>,
}

impl Audit {
    /// Number of flagged rows.
    pub fn flagged(&self) -> usize {
        self.rows.iter().filter(|r| r.flagged).count()
    }

    /// Flagged rows per kind.
    pub fn flagged_by_kind(&self) -> Vec<(Kind, usize)> {
        let mut counts: std::collections::BTreeMap<Kind, usize> = Default::default();
        for r in &self.rows {
            for &k in &r.kinds {
                *counts.entry(k).or_default() += 1;
            }
        }
        counts.into_iter().collect()
    }
}

/// The rules every check can report, for `aegis rules` and SARIF.
pub fn rules() -> Vec<&'static RuleDoc> {
    labels::RULES
        .iter()
        .chain(outliers::RULES)
        .chain(duplicates::RULES)
        .chain(backdoor::RULES)
        .chain(balance::RULES)
        .collect()
}

/// Runs the configured checks on `frame` (and `reference`, the trusted snapshot, when given). `progress` is
/// told the name of each check as it starts.
///
/// # Errors
///
/// A check's [`Error`] (too few rows, a reference with other columns) stops the audit; a check that needs labels
/// is skipped (and says so in the metrics) when the frame has none.
pub fn audit(
    frame: &Frame,
    reference: Option<&Frame>,
    cfg: &AuditConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Audit, Error> {
    let mut out = Audit {
        rows: vec![RowVerdict::default(); frame.n_rows],
        ..Default::default()
    };
    let mut timings = Map::new();
    if let Some(r) = reference {
        same_columns(frame, r)?;
    }
    let has_labels = frame.labels.is_some();
    progress("encoding");
    let enc = Encoded::new(frame);
    let reference = reference.map(|r| (r, Encoded::like(r, &enc)));
    if !enc.skipped.is_empty() {
        out.metrics
            .insert("text_columns_skipped".into(), enc.skipped.clone().into());
    }

    let groups = if cfg.duplicates.is_some() || cfg.labels.is_some() {
        Some(duplicates::exact_groups(&enc))
    } else {
        None
    };

    let mut given_prob: Option<Vec<f32>> = None;
    if let Some(lc) = cfg.labels.as_ref().filter(|_| has_labels) {
        progress("label issues (out-of-fold model)");
        let t = Instant::now();
        let res = labels::check(
            frame,
            &enc,
            groups.as_ref().map(|g| g.group_of.as_slice()),
            lc,
        )?;
        merge(&mut out, "labels", res.check);
        given_prob = Some(res.given_prob);
        timings.insert("labels".into(), elapsed_ms(t));
    }
    if let Some(dc) = &cfg.duplicates {
        progress("duplicates and conflicts");
        let t = Instant::now();
        let res = duplicates::check(
            frame,
            &enc,
            reference.as_ref().map(|(f, e)| (*f, e)),
            given_prob.as_deref(),
            dc,
        )?;
        merge(&mut out, "duplicates", res);
        timings.insert("duplicates".into(), elapsed_ms(t));
    }
    if let Some(oc) = &cfg.outliers {
        progress("outliers");
        let t = Instant::now();
        let res = outliers::check(frame, &enc, oc)?;
        merge(&mut out, "outliers", res);
        timings.insert("outliers".into(), elapsed_ms(t));
    }
    if let Some(bc) = cfg.backdoor.as_ref().filter(|_| has_labels) {
        progress("backdoor triggers");
        let t = Instant::now();
        let res = backdoor::check(frame, &enc, bc)?;
        merge(&mut out, "backdoor", res);
        timings.insert("backdoor".into(), elapsed_ms(t));
    }
    if cfg.balance && has_labels {
        progress("class balance");
        let t = Instant::now();
        let res = balance::check(frame, reference.as_ref().map(|(f, _)| *f))?;
        merge(&mut out, "balance", res);
        timings.insert("balance".into(), elapsed_ms(t));
    }
    if !has_labels {
        out.metrics.insert(
            "skipped".into(),
            "label issues, conflicts, backdoor triggers and class balance need --label".into(),
        );
    }
    out.metrics
        .insert("timings_ms".into(), Value::Object(timings));
    out.metrics.insert("rows".into(), frame.n_rows.into());
    out.metrics
        .insert("flagged_rows".into(), out.flagged().into());
    let by_kind: Map<String, Value> = out
        .flagged_by_kind()
        .into_iter()
        .map(|(k, n)| (k.as_str().to_owned(), n.into()))
        .collect();
    out.metrics
        .insert("flagged_by_kind".into(), Value::Object(by_kind));
    Ok(out)
}

/// A reference snapshot must have every audited column, in any order, with the same type: otherwise novelty
/// and label shift would compare unlike things.
fn same_columns(frame: &Frame, reference: &Frame) -> Result<(), Error> {
    for c in &frame.columns {
        let what = match reference.column(&c.name) {
            None => format!(
                "no column `{}` (the audited data {} has it)",
                c.name, frame.source
            ),
            Some(r) if r.data.kind() != c.data.kind() => format!(
                "column `{}` is {} there but {} in {}",
                c.name,
                r.data.kind(),
                c.data.kind(),
                frame.source
            ),
            Some(_) => continue,
        };
        return Err(Error::ReferenceMismatch {
            reference: reference.source.clone(),
            what,
        });
    }
    Ok(())
}

fn elapsed_ms(t: Instant) -> Value {
    Value::from(u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// Folds one check's output into the audit.
fn merge(out: &mut Audit, name: &str, check: CheckOutput) {
    out.findings.extend(check.findings);
    for s in check.signals {
        let Some(v) = out.rows.get_mut(s.row) else {
            continue;
        };
        let score = if s.score.is_finite() {
            s.score.clamp(0.0, 1.0)
        } else {
            0.0
        };
        v.score = v.score.max(score);
        if s.flagged {
            v.flagged = true;
            v.kinds.insert(s.kind);
        }
    }
    if !check.metrics.is_empty() {
        out.metrics
            .insert(name.to_owned(), Value::Object(check.metrics));
    }
}

/// Writes the flags CSV: header `row,score,flagged,kinds`, one line per data row, `kinds` `;`-separated.
///
/// # Errors
///
/// The writer's IO error.
pub fn write_flags(mut w: impl Write, rows: &[RowVerdict]) -> io::Result<()> {
    writeln!(w, "row,score,flagged,kinds")?;
    for (i, r) in rows.iter().enumerate() {
        let kinds: Vec<&str> = r.kinds.iter().map(|k| k.as_str()).collect();
        writeln!(
            w,
            "{i},{:.4},{},{}",
            r.score,
            u8::from(r.flagged),
            kinds.join(";")
        )?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RowSignal;

    #[test]
    fn merge_keeps_the_strongest_signal_and_the_flagging_kinds() {
        let mut a = Audit {
            rows: vec![RowVerdict::default(); 3],
            ..Default::default()
        };
        let sig = |row, kind, score, flagged| RowSignal {
            row,
            kind,
            score,
            flagged,
        };
        merge(
            &mut a,
            "x",
            CheckOutput {
                signals: vec![
                    sig(0, Kind::Label, 0.9, true),
                    sig(0, Kind::Outlier, 0.3, false),
                    sig(1, Kind::Duplicate, 0.2, false),
                    sig(7, Kind::Label, 1.0, true),
                    sig(2, Kind::Backdoor, f32::NAN, true),
                ],
                ..Default::default()
            },
        );
        assert_eq!(a.rows[0].score, 0.9);
        assert!(a.rows[0].flagged);
        assert_eq!(
            a.rows[0].kinds.iter().copied().collect::<Vec<_>>(),
            vec![Kind::Label]
        );
        assert!(!a.rows[1].flagged);
        assert_eq!(a.rows[2].score, 0.0, "a NaN score counts as none");
        assert_eq!(a.flagged(), 2);
    }

    #[test]
    fn a_reference_without_the_audited_columns_is_refused() {
        use aegis_core::{Column, ColumnData};
        let frame = |name: &str, data: ColumnData| Frame {
            source: format!("{name}.csv"),
            columns: vec![Column {
                name: "x".into(),
                data,
            }],
            labels: None,
            n_rows: 2,
        };
        let cur = frame("cur", ColumnData::Numeric(vec![1.0, 2.0]));
        let same = frame("ref", ColumnData::Numeric(vec![3.0, 4.0]));
        assert!(same_columns(&cur, &same).is_ok());
        let text = frame("ref", ColumnData::Text(vec![None, None]));
        let err = same_columns(&cur, &text).unwrap_err().to_string();
        assert!(
            err.contains("ref.csv") && err.contains("`x` is text"),
            "{err}"
        );
        let mut other = same.clone();
        other.columns[0].name = "y".into();
        let err = audit(&cur, Some(&other), &AuditConfig::all(2, 0), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column `x`"), "{err}");
    }

    #[test]
    fn flags_csv_has_one_line_per_row() {
        let mut rows = vec![RowVerdict::default(); 2];
        rows[1].score = 0.75;
        rows[1].flagged = true;
        rows[1].kinds.insert(Kind::Conflict);
        rows[1].kinds.insert(Kind::Label);
        let mut buf = Vec::new();
        write_flags(&mut buf, &rows).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "row,score,flagged,kinds\n0,0.0000,0,\n1,0.7500,1,label;conflict\n"
        );
    }
}
