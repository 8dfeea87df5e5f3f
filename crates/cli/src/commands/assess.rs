//! `aegis assess robustness`: wire flags to [`aegis_assess::robustness::evaluate`] and report its result.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use aegis_assess::attacks::pgd::PgdParams;
use aegis_assess::robustness::{self, AttackKind, Names, RobustnessConfig, RobustnessResult};
use aegis_assess::Norm;
use aegis_core::Report;
use anyhow::{bail, Context};

use super::inputs;
use crate::args::{GlobalArgs, NormArg, OutputFormat, RobustnessArgs};
use crate::{output, progress};

pub fn run(global: &GlobalArgs, args: RobustnessArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let config = config(&args)?;
    let data = inputs::load_data(&args.data)?;
    let model = inputs::load_model(&args.model, &data, &args.protocol, &args.header)?;
    let norm = match args.norm {
        NormArg::Linf => Norm::Linf,
        NormArg::L2 => Norm::L2,
    };
    let constraints = inputs::constraints(&data.schema, args.data.eps_units, norm);
    let rows = inputs::sample_rows(data.table.n_rows(), args.max_rows, args.data.seed);
    let subset = data.table.select(&rows);
    let labels: Vec<u32> = rows.iter().map(|&i| data.labels[i]).collect();
    let names = Names {
        features: &subset.columns,
        classes: &subset.class_names,
        schema: Some(&data.schema),
    };
    let bar = progress::StageProgress::new(global.quiet, "attacking");
    let result = robustness::evaluate(
        model.as_ref(),
        &subset.features,
        &labels,
        &constraints,
        names,
        &config,
        &bar,
    )
    .with_context(|| format!("assessing {}", args.model))?;
    bar.finish();

    let mut report = Report::new(
        "assess robustness",
        vec![args.model.clone(), args.data.data.display().to_string()],
    );
    report.findings = robustness::findings(&result, &args.model);
    report.sort_findings();
    report.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    report
        .metrics
        .insert("clean_accuracy".into(), result.clean_accuracy.into());
    report.metrics.insert("rows".into(), result.rows.into());
    report
        .metrics
        .insert("queries".into(), result.queries.into());
    report.metrics.insert(
        "eps_units".into(),
        format!("{:?}", args.data.eps_units).to_lowercase().into(),
    );
    report.metrics.insert(
        "norm".into(),
        format!("{:?}", args.norm).to_lowercase().into(),
    );
    report.metrics.insert(
        "schema".into(),
        (if data.schema_inferred {
            "inferred"
        } else {
            "given"
        })
        .into(),
    );
    report
        .metrics
        .insert("robustness".into(), serde_json::to_value(&result)?);
    if global.format == OutputFormat::Human && !global.quiet {
        let mut out = std::io::stdout().lock();
        if let Err(e) = write_summary(&mut out, &result) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e.into());
        }
    }
    output::emit(global, &report, &aegis_assess::rules::all())
}

fn config(args: &RobustnessArgs) -> anyhow::Result<RobustnessConfig> {
    if args.eps.is_empty() || args.eps.iter().any(|e| !e.is_finite() || *e <= 0.0) {
        bail!("--eps needs positive numbers, e.g. --eps 0.05,0.1,0.2");
    }
    let mut attacks = Vec::new();
    for name in &args.attacks {
        if name == "all" {
            attacks.extend(AttackKind::ALL);
        } else {
            attacks.push(name.parse::<AttackKind>().map_err(anyhow::Error::msg)?);
        }
    }
    if args.steps == 0 || args.restarts == 0 {
        bail!("--steps and --restarts must be at least 1");
    }
    Ok(RobustnessConfig {
        eps: args.eps.clone(),
        attacks,
        pgd: PgdParams {
            steps: args.steps,
            step_size: args.step_size.unwrap_or(2.5 / args.steps as f32),
            restarts: args.restarts,
            ..Default::default()
        },
        queries_per_sample: args.queries,
        seed: args.data.seed,
        examples: args.examples,
        ..Default::default()
    })
}

/// The robust-accuracy table, the weakest features and classes, and example rows.
fn write_summary(out: &mut dyn Write, r: &RobustnessResult) -> std::io::Result<()> {
    writeln!(out, "model     {}", r.model)?;
    writeln!(
        out,
        "rows      {}   clean accuracy {:.1}%   attacks {}",
        r.rows,
        r.clean_accuracy * 100.0,
        r.attacks.join(", ")
    )?;
    for (attack, why) in &r.skipped {
        writeln!(out, "skipped   {attack}: {why}")?;
    }
    writeln!(
        out,
        "\n  eps        raw radius        % of range     robust accuracy   broken first by"
    )?;
    for p in &r.curve {
        let by: Vec<String> = p
            .broken_by
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(a, n)| format!("{a} {n}"))
            .collect();
        writeln!(
            out,
            "  {:<10} {:<17} {:<14} {:>6.1}%  {:<8} {}",
            p.eps,
            span(p.eps_raw[0], p.eps_raw[1], 1.0, ""),
            span(p.eps_range_fraction[0], p.eps_range_fraction[1], 100.0, "%"),
            p.robust_accuracy * 100.0,
            bar(p.robust_accuracy),
            by.join(", ")
        )?;
    }
    if !r.vulnerable_features.is_empty() {
        writeln!(
            out,
            "\nmost changed features (share of successful attacks, mean change / eps)"
        )?;
        for f in r.vulnerable_features.iter().take(5) {
            writeln!(
                out,
                "  {:<24} {:>5.0}%  {:.2}",
                f.feature,
                f.changed_in * 100.0,
                f.mean_relative_change
            )?;
        }
    }
    if r.classes.len() > 1 {
        writeln!(out, "\nper class: clean → robust at each eps")?;
        for c in &r.classes {
            let robust: Vec<String> = c
                .robust_accuracy
                .iter()
                .map(|a| format!("{:.0}%", a * 100.0))
                .collect();
            writeln!(
                out,
                "  {:<16} {:>4} rows  {:.0}% → {}",
                c.class,
                c.rows,
                c.clean_accuracy * 100.0,
                robust.join(" / ")
            )?;
        }
    }
    for e in r.examples.iter().take(3) {
        writeln!(
            out,
            "\nrow {} ({} → {}) at eps {} by {}:",
            e.row, e.label, e.predicted, e.eps, e.attack
        )?;
        for (f, from, to) in e.changes.iter().take(8) {
            writeln!(out, "  {f:<24} {from} → {to}")?;
        }
        if e.changes.len() > 8 {
            writeln!(out, "  … {} more", e.changes.len() - 8)?;
        }
    }
    writeln!(out)
}

/// `a` or `a–b`, scaled, with a unit.
fn span(a: f32, b: f32, scale: f32, unit: &str) -> String {
    let (a, b) = (a * scale, b * scale);
    if (a - b).abs() <= 1e-6 * b.abs().max(1.0) {
        format!("{a:.4}{unit}")
    } else {
        format!("{a:.4}–{b:.4}{unit}")
    }
}

fn bar(fraction: f64) -> String {
    let filled = (fraction * 8.0).round().clamp(0.0, 8.0) as usize;
    format!("{}{}", "█".repeat(filled), "·".repeat(8 - filled))
}
