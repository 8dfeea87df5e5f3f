//! `aegis drift REFERENCE CURRENT`: wire flags to [`aegis_data::fold_pair`] (one streaming pass over each CSV
//! file, into the drift accumulators of `aegis-monitor`) and [`aegis_monitor::drift::compare`], optionally
//! compare a model's predicted classes, and report.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use aegis_core::Report;
use aegis_core::SummaryKind;
use aegis_data::{FoldOptions, Folded, ReadOptions};
use aegis_monitor::correction::Correction;
use aegis_monitor::drift::{self, DriftOptions};
use aegis_monitor::drift::{ColumnAccumulator, ColumnSet};
use anyhow::{bail, Context};

use crate::args::{CorrectionArg, DriftArgs, GlobalArgs, OutputFormat};
use crate::output;

pub fn run(global: &GlobalArgs, args: DriftArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let opts = DriftOptions {
        alpha: args.alpha,
        correction: match args.correction {
            CorrectionArg::None => Correction::None,
            CorrectionArg::Bonferroni => Correction::Bonferroni,
            CorrectionArg::Holm => Correction::Holm,
            CorrectionArg::Bh => Correction::BenjaminiHochberg,
        },
        min_effect: args.min_effect,
        share: args.share,
        bins: drift::DEFAULT_BINS,
    };
    if !(opts.alpha > 0.0 && opts.alpha < 1.0) {
        bail!(
            "--alpha must be between 0 and 1 (exclusive), got {}",
            opts.alpha
        );
    }
    if opts.min_effect.is_nan() || opts.min_effect < 0.0 {
        bail!("--min-effect must be 0 or more, got {}", opts.min_effect);
    }
    if let Some(s) = opts.share {
        if !(s > 0.0 && s <= 1.0) {
            bail!("--share must be in (0, 1], got {s}");
        }
    }
    let delimiter = super::frames::delimiter(args.delimiter)?;
    let fold = FoldOptions {
        delimiter,
        drop: args.drop.clone(),
        label: args.label.clone(),
        missing: args.missing.clone(),
        schema: args.schema.clone(),
    };
    let accumulator = |kind: SummaryKind, _: &str| {
        ColumnAccumulator::new(kind, args.exact_limit, args.max_categories)
    };
    let (ref_set, cur_set) =
        aegis_data::fold_pair(&args.reference, &args.current, &fold, accumulator)?;
    let (ref_set, cur_set) = (column_set(ref_set), column_set(cur_set));
    let read_ms = started.elapsed().as_millis();
    let mut report = drift::compare(ref_set, cur_set, &opts).with_context(|| {
        format!(
            "comparing {} with {}",
            args.reference.display(),
            args.current.display()
        )
    })?;
    if let Some(model) = &args.model {
        let (r, c) = predicted_counts(model, &args, delimiter)?;
        report.prediction = Some(drift::compare_predictions(
            &model.display().to_string(),
            &r,
            &c,
            &opts,
        )?);
    }
    report.findings = report.findings();

    let mut core = Report::new(
        "drift",
        vec![
            args.reference.display().to_string(),
            args.current.display().to_string(),
        ],
    );
    core.findings = report.findings.clone();
    core.sort_findings();
    core.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    let code = if core.fails_at(global.fail_on) {
        ExitCode::from(output::EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    };
    if !global.quiet {
        eprintln!(
            "aegis drift: {} + {} rows, {} of {} tested columns drifted, dataset {} (read {:.2} s, total {:.2} s)",
            report.reference_rows,
            report.current_rows,
            report.drifted,
            report.tested,
            if report.dataset_drift { "drifted" } else { "not drifted" },
            read_ms as f64 / 1000.0,
            started.elapsed().as_secs_f64()
        );
    }
    match global.format {
        OutputFormat::Human => {
            let mut text = report.to_table();
            let shown: Vec<_> = report
                .findings
                .iter()
                .filter(|f| !global.quiet || f.severity >= global.fail_on)
                .collect();
            if !shown.is_empty() {
                text.push_str("\nfindings:\n");
                for f in shown {
                    text.push_str(&format!(
                        "  {} {:<8} {}\n",
                        f.rule.0,
                        f.severity.as_str(),
                        f.message
                    ));
                }
            }
            write_quietly(global, &text)?;
            Ok(code)
        }
        _ => {
            core.metrics
                .insert("drift".into(), serde_json::to_value(&report)?);
            output::emit(global, &core, &drift::rules())
        }
    }
}

/// The drift statistics' view of a file's folded columns.
fn column_set(folded: Folded<ColumnAccumulator>) -> ColumnSet {
    ColumnSet {
        source: folded.source,
        rows: folded.rows,
        columns: folded.columns,
    }
}

/// Write text where the flags say; a closed pipe is not an error.
fn write_quietly(global: &GlobalArgs, text: &str) -> anyhow::Result<()> {
    match output::write_text(global, text) {
        Err(e) if output::is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// Predicted-class counts of the model on both files (read as model tables, the label excluded).
///
/// The files are read in the same dialect as the column comparison (`--delimiter`, `--missing`), through
/// the one table reader.
fn predicted_counts(
    model_path: &Path,
    args: &DriftArgs,
    delimiter: Option<u8>,
) -> anyhow::Result<(Vec<u64>, Vec<u64>)> {
    let model = aegis_ml::load_onnx(model_path)?;
    let mut opts = ReadOptions {
        label: args.label.clone(),
        drop: args.drop.clone(),
        delimiter,
        ..ReadOptions::default()
    };
    if let Some(missing) = &args.missing {
        opts.missing = missing.iter().map(|m| m.trim().to_owned()).collect();
    }
    let k = model.n_classes().max(1);
    let mut out = Vec::new();
    for path in [&args.reference, &args.current] {
        let table = aegis_data::read_table(path, &opts)
            .with_context(|| format!("reading {} for {}", path.display(), model_path.display()))?;
        if table.n_features() != model.n_features() {
            bail!(
                "{} takes {} input features, {} has {}; use --label and --drop for columns that are not inputs",
                model_path.display(),
                model.n_features(),
                path.display(),
                table.n_features()
            );
        }
        let proba =
            aegis_ml::predict_proba_batched(model.as_ref(), &table.features, table.n_rows(), 4096)
                .with_context(|| {
                    format!(
                        "predicting {} with {}",
                        path.display(),
                        model_path.display()
                    )
                })?;
        let mut counts = vec![0u64; k];
        for c in aegis_ml::argmax_rows(&proba, k) {
            if let Some(slot) = counts.get_mut(c as usize) {
                *slot += 1;
            }
        }
        out.push(counts);
    }
    let c = out.pop().unwrap_or_default();
    let r = out.pop().unwrap_or_default();
    Ok((r, c))
}
