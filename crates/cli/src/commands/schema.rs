//! `aegis schema infer|check`: a dataset's schema as reviewable TOML, and a streaming check of data against it.

use std::process::ExitCode;
use std::time::Instant;

use aegis_core::Report;
use anyhow::Context;

use super::frames;
use crate::args::{GlobalArgs, SchemaCheckArgs, SchemaInferArgs};
use crate::output;

pub fn infer(global: &GlobalArgs, args: SchemaInferArgs) -> anyhow::Result<ExitCode> {
    let opts = frames::read_options(&args.read, args.label.clone())?;
    let frame = frames::read(&args.data, &opts)?;
    let schema = aegis_data::infer_data_schema(&frame);
    output::write_text(global, &aegis_data::data_schema_to_toml(&schema))?;
    if !global.quiet {
        eprintln!(
            "inferred {} columns from {} rows of {}; review the bounds before relying on them",
            schema.columns.len(),
            frame.n_rows,
            args.data.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check(global: &GlobalArgs, args: SchemaCheckArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let schema = aegis_data::load_data_schema(&args.schema)?;
    let label = schema.label.as_ref().map(|l| l.name.clone());
    let mut opts = frames::read_options(&args.read, None)?;
    // The label is checked like any column: stream it with the rest.
    opts.label = None;
    let (header, records) = aegis_data::stream_records(&args.data, &opts)
        .with_context(|| format!("reading {}", args.data.display()))?;
    let source = args.data.display().to_string();
    let mut checker = aegis_data::SchemaChecker::new(&schema, &header, &source);
    let mut rows = 0u64;
    for record in records {
        let record = record.with_context(|| format!("reading {source}"))?;
        checker.feed(record.row, &record.cells);
        rows += 1;
    }
    let mut report = Report::new("schema check", vec![source.clone()]);
    report.findings = checker.finish();
    report.metrics.insert("rows".into(), rows.into());
    if let Some(l) = label {
        report.metrics.insert("label".into(), l.into());
    }
    report.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    if !global.quiet {
        eprintln!(
            "{rows} rows checked against {}: {} violations",
            args.schema.display(),
            report.findings.len()
        );
    }
    let rules: Vec<&aegis_core::RuleDoc> = aegis_data::schema_rules().iter().collect();
    output::emit(global, &report, &rules)
}
