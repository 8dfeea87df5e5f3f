//! `aegis drift REFERENCE CURRENT`: stream both CSV files once into per-column accumulators, compare them with
//! [`aegis_monitor::drift::compare`], optionally compare a model's predicted classes, and report.
//!
//! Each file is read in chunks of whole rows ([`aegis_data::CsvChunks`]); the rows of a chunk are split into
//! blocks that are parsed in parallel (rayon) into partial accumulators, folded in block order so the result
//! does not depend on thread timing. Memory is bounded by the accumulators (exact numeric values up to
//! `--exact-limit` per column, then a KLL sketch; at most `--max-categories` counted values per categorical
//! column) plus one chunk. Column kinds come from `--schema` or are inferred from the reference's first chunk:
//! numeric when every present cell parses as a number, categorical otherwise.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use aegis_core::{ColumnKind, ColumnSpec, Report};
use aegis_data::{Chunk, ChunkOptions, CsvChunks, CsvOptions, Field, ReadOptions};
use aegis_monitor::correction::Correction;
use aegis_monitor::drift::{self, ColumnAccumulator, ColumnSet, DriftKind, DriftOptions};
use anyhow::{bail, Context};
use rayon::prelude::*;

use crate::args::{CorrectionArg, DriftArgs, GlobalArgs, OutputFormat};
use crate::output;

/// How a column's cells are read.
#[derive(Debug, Clone)]
enum Parser {
    Number,
    /// Timestamps (as seconds) and booleans go through the schema's own cell parser.
    Spec(ColumnSpec),
    Category,
    Text,
}

struct Plan {
    /// (file column index, name, parser) of each compared column, in reference order.
    columns: Vec<(usize, String, Parser)>,
    missing: HashSet<String>,
}

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
    let delimiter = match args.delimiter {
        Some(c) if c.is_ascii() => Some(c as u8),
        Some(c) => bail!("--delimiter must be one ASCII character, got {c:?}"),
        None => None,
    };
    let chunk_opts = ChunkOptions {
        delimiter,
        ..ChunkOptions::default()
    };
    let mut reference = CsvChunks::open(&args.reference, &chunk_opts)?;
    let mut current = CsvChunks::open(&args.current, &chunk_opts)?;
    let first = reference.next_chunk()?.with_context(|| {
        format!(
            "{} has a header row but no data rows",
            args.reference.display()
        )
    })?;
    let plan = plan(&args, &reference, &current, &first)?;
    let kinds: Vec<(String, DriftKind)> = plan
        .columns
        .iter()
        .map(|(_, name, p)| (name.clone(), kind_of(p)))
        .collect();

    let mut ref_set = ColumnSet::new(
        &args.reference,
        &kinds,
        args.exact_limit,
        args.max_categories,
    );
    // Rows per byte from the first chunk, to size the numeric columns once (5% slack).
    let bytes_per_row = (first.byte_len() as f64 / first.len().max(1) as f64).max(1.0);
    // Never more than the file could hold: a number takes at least 2 bytes (a digit and a delimiter).
    let numeric_columns = kinds
        .iter()
        .filter(|(_, k)| *k == DriftKind::Numeric)
        .count()
        .max(1) as u64;
    let estimate = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| {
                let guess = (m.len() as f64 / bytes_per_row * 1.05) as u64;
                guess.min(m.len() / (2 * numeric_columns)) as usize
            })
            .unwrap_or(0)
    };
    ref_set.reserve(estimate(&args.reference));
    absorb_chunk(&mut ref_set, &first, &plan)?;
    drop(first);
    while let Some(chunk) = reference.next_chunk()? {
        absorb_chunk(&mut ref_set, &chunk, &plan)?;
    }
    // The current file's columns, in the reference's order, found by name.
    let cur_plan = Plan {
        columns: plan
            .columns
            .iter()
            .map(|(_, name, p)| {
                let idx = current
                    .header()
                    .iter()
                    .position(|h| h == name)
                    .unwrap_or(usize::MAX);
                (idx, name.clone(), p.clone())
            })
            .collect(),
        missing: plan.missing.clone(),
    };
    let mut cur_set = ColumnSet::new(&args.current, &kinds, args.exact_limit, args.max_categories);
    cur_set.reserve(estimate(&args.current));
    while let Some(chunk) = current.next_chunk()? {
        absorb_chunk(&mut cur_set, &chunk, &cur_plan)?;
    }
    if cur_set.rows == 0 {
        bail!(
            "{} has a header row but no data rows",
            args.current.display()
        );
    }
    let read_ms = started.elapsed().as_millis();
    let mut report = drift::compare(ref_set, cur_set, &opts).with_context(|| {
        format!(
            "comparing {} with {}",
            args.reference.display(),
            args.current.display()
        )
    })?;
    if let Some(model) = &args.model {
        let (r, c) = predicted_counts(model, &args)?;
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

/// Write text where the flags say; a closed pipe is not an error.
fn write_quietly(global: &GlobalArgs, text: &str) -> anyhow::Result<()> {
    match output::write_text(global, text) {
        Err(e) if output::is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn kind_of(p: &Parser) -> DriftKind {
    match p {
        Parser::Number => DriftKind::Numeric,
        Parser::Spec(spec) if spec.kind == ColumnKind::Timestamp => DriftKind::Numeric,
        Parser::Spec(_) | Parser::Category => DriftKind::Categorical,
        Parser::Text => DriftKind::Text,
    }
}

/// Check both headers, decide each column's parser from the schema or the reference's first chunk.
fn plan(
    args: &DriftArgs,
    reference: &CsvChunks,
    current: &CsvChunks,
    first: &Chunk,
) -> anyhow::Result<Plan> {
    let rh = reference.header();
    let ch = current.header();
    let mut excluded: Vec<&str> = args.drop.iter().map(String::as_str).collect();
    if let Some(l) = &args.label {
        excluded.push(l);
    }
    for name in &excluded {
        if !rh.iter().any(|h| h == name) && !ch.iter().any(|h| h == name) {
            bail!(
                "column {name:?} (--drop/--label) is in neither {} nor {}",
                args.reference.display(),
                args.current.display()
            );
        }
    }
    let keep = |h: &&String| !excluded.contains(&h.as_str());
    let only_ref: Vec<&String> = rh.iter().filter(keep).filter(|h| !ch.contains(h)).collect();
    let only_cur: Vec<&String> = ch.iter().filter(keep).filter(|h| !rh.contains(h)).collect();
    if !only_ref.is_empty() || !only_cur.is_empty() {
        let mut why = Vec::new();
        if !only_ref.is_empty() {
            why.push(format!(
                "only in {}: {}",
                args.reference.display(),
                list(&only_ref)
            ));
        }
        if !only_cur.is_empty() {
            why.push(format!(
                "only in {}: {}",
                args.current.display(),
                list(&only_cur)
            ));
        }
        bail!(
            "the headers of {} and {} differ ({}); use --drop for columns to leave out",
            args.reference.display(),
            args.current.display(),
            why.join("; ")
        );
    }
    let missing: HashSet<String> = match &args.missing {
        Some(m) => m.iter().map(|s| s.trim().to_owned()).collect(),
        None => ReadOptions::DEFAULT_MISSING
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    };
    let specs: BTreeMap<String, ColumnSpec> = match &args.schema {
        Some(path) => aegis_data::load_data_schema(path)?
            .columns
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut columns = Vec::new();
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut numeric = vec![true; rh.len()];
    let mut present = vec![0usize; rh.len()];
    for i in 0..first.len() {
        first.fields(i, &mut fields)?;
        for (j, f) in fields.iter().enumerate() {
            if !numeric[j] {
                continue;
            }
            let text = f.text();
            if missing.contains(text.as_ref()) {
                continue;
            }
            present[j] += 1;
            if f.number().is_none() {
                numeric[j] = false;
            }
        }
    }
    for (j, name) in rh.iter().enumerate() {
        if excluded.contains(&name.as_str()) {
            continue;
        }
        let parser = match specs.get(name) {
            Some(spec) => match spec.kind {
                ColumnKind::Numeric => Parser::Number,
                ColumnKind::Timestamp | ColumnKind::Boolean => Parser::Spec(spec.clone()),
                ColumnKind::Categorical => Parser::Category,
                ColumnKind::Text => Parser::Text,
            },
            None if numeric[j] && present[j] > 0 => Parser::Number,
            None => Parser::Category,
        };
        columns.push((j, name.clone(), parser));
    }
    if columns.is_empty() {
        bail!("no columns to compare after --drop/--label");
    }
    Ok(Plan { columns, missing })
}

fn list(names: &[&String]) -> String {
    names
        .iter()
        .take(12)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parse one chunk in parallel blocks into partial accumulators and fold them into `set` in block order.
fn absorb_chunk(set: &mut ColumnSet, chunk: &Chunk, plan: &Plan) -> anyhow::Result<()> {
    let n = chunk.len();
    let blocks = (rayon::current_num_threads() * 2).clamp(1, 64);
    let per = n.div_ceil(blocks).max(1);
    let template: Vec<ColumnAccumulator> =
        set.columns.iter().map(|(_, a)| a.empty_like()).collect();
    let partials: Vec<Result<Vec<ColumnAccumulator>, aegis_data::Error>> = (0..n.div_ceil(per))
        .into_par_iter()
        .map(|b| {
            let mut accs: Vec<ColumnAccumulator> =
                template.iter().map(|a| a.empty_like()).collect();
            let mut fields: Vec<Field<'_>> = Vec::new();
            for i in b * per..((b + 1) * per).min(n) {
                chunk.fields(i, &mut fields)?;
                for (acc, (idx, _, parser)) in accs.iter_mut().zip(&plan.columns) {
                    match fields.get(*idx) {
                        Some(f) => feed(acc, parser, f, &plan.missing),
                        None => acc.push_missing(),
                    }
                }
            }
            Ok(accs)
        })
        .collect();
    for partial in partials {
        for ((_, acc), p) in set.columns.iter_mut().zip(partial?) {
            acc.absorb(p);
        }
    }
    set.rows += n as u64;
    Ok(())
}

fn feed(acc: &mut ColumnAccumulator, parser: &Parser, f: &Field<'_>, missing: &HashSet<String>) {
    match (acc, parser) {
        (ColumnAccumulator::Numeric(a), Parser::Number) => match f.number() {
            Some(v) if v.is_nan() => a.push_missing(),
            Some(v) => a.push(v),
            None => {
                if missing.contains(f.text().as_ref()) {
                    a.push_missing();
                } else {
                    a.push_invalid();
                }
            }
        },
        (acc, Parser::Spec(spec)) => {
            let text = f.text();
            if missing.contains(text.as_ref()) {
                acc.push_missing();
                return;
            }
            match (acc, spec.parse_cell(Some(text.as_ref()))) {
                (ColumnAccumulator::Numeric(a), Ok(aegis_core::CellValue::Timestamp(t))) => {
                    a.push(t as f64)
                }
                (ColumnAccumulator::Numeric(a), Ok(aegis_core::CellValue::Number(v))) => a.push(v),
                (ColumnAccumulator::Numeric(a), _) => a.push_invalid(),
                (ColumnAccumulator::Categorical(a), Ok(v)) => match v.canonical() {
                    Some(c) => a.push(&c),
                    None => a.push_missing(),
                },
                (ColumnAccumulator::Categorical(a), Err(_)) => a.push(text.as_ref()),
                (acc, _) => acc.push_text(text.as_ref()),
            }
        }
        (acc, _) => {
            let text = f.text();
            if missing.contains(text.as_ref()) {
                acc.push_missing();
            } else {
                acc.push_text(text.as_ref());
            }
        }
    }
}

/// Predicted-class counts of the model on both files (read as model tables, the label excluded).
fn predicted_counts(model_path: &Path, args: &DriftArgs) -> anyhow::Result<(Vec<u64>, Vec<u64>)> {
    let model = aegis_ml::load_onnx(model_path)?;
    let opts = CsvOptions {
        label: args.label.clone(),
        drop: args.drop.clone(),
        ..CsvOptions::default()
    };
    let k = model.n_classes().max(1);
    let mut out = Vec::new();
    for path in [&args.reference, &args.current] {
        let table = aegis_data::read_csv(path, &opts)
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
