//! `aegis assess robustness`: wire flags to [`aegis_assess::robustness::evaluate`] and report its result.

use std::process::ExitCode;
use std::time::Instant;

use aegis_assess::attacks::pgd::PgdParams;
use aegis_assess::robustness::{self, AttackKind, Names, RobustnessConfig};
use aegis_assess::Norm;
use aegis_core::Report;
use anyhow::{bail, Context};

use super::inputs;
use crate::args::{GlobalArgs, NormArg, RobustnessArgs};
use crate::{output, progress};

pub fn run(global: &GlobalArgs, args: RobustnessArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut config = config(&args)?;
    let data = inputs::load_data(&args.data)?;
    let model = inputs::load_model(&args.model, &data, &args.protocol, &args.header)?;
    if config.attacks.is_empty() {
        config.attacks = robustness::strongest_attacks(model.as_differentiable().is_some());
    }
    let norm = match args.norm {
        NormArg::Linf => Norm::Linf,
        NormArg::L2 => Norm::L2,
    };
    let constraints = inputs::constraints(&data.schema, args.data.eps_units, norm);
    if args.max_rows == Some(0) {
        bail!("--max-rows 0 attacks no row; give at least 1, or leave it out to attack every row");
    }
    let rows = aegis_ml::rng::sample_indices(data.table.n_rows(), args.max_rows, args.data.seed);
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
    let mut robustness = serde_json::to_value(&result)?;
    if let Some(r) = robustness.as_object_mut() {
        r.insert("default_attacks".into(), args.attacks.is_empty().into());
        if data.schema_inferred {
            r.insert("bounds_inferred".into(), true.into());
            r.insert("fixed_features".into(), data.schema.fixed_features().into());
        }
    }
    report.metrics.insert("robustness".into(), robustness);
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
