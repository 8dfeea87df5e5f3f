//! `aegis assess extraction`: wire flags to [`aegis_assess::extraction::assess_extraction`] and report it.

use std::process::ExitCode;
use std::time::Instant;

use aegis_assess::extraction::{self, ExtractionConfig, Strategy};
use aegis_core::Report;
use aegis_ml::output_policy::OutputPolicy;
use anyhow::{bail, Context};

use super::inputs;
use crate::args::{ExtractionArgs, GlobalArgs, OutputFormat};
use crate::{output, progress};

pub fn run(global: &GlobalArgs, args: ExtractionArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let config = config(&args)?;
    let data = inputs::load_data(&args.data)?;
    let model = inputs::load_model(&args.model, &data, &args.protocol, &args.header)?;
    let bar = progress::StageProgress::new(global.quiet, "extracting");
    // The stages the assessment announces: the held-out queries, each strategy's fixed query set (Jacobian
    // augmentation builds its own per policy), each strategy under each output policy, PRADA on benign streams.
    let fixed = config
        .strategies
        .iter()
        .filter(|s| **s != extraction::Strategy::Jacobian)
        .count();
    let mut total = 2 + fixed + config.strategies.len() * config.policies.len();
    let mut done = 0;
    let mut result = extraction::assess_extraction(
        model.as_ref(),
        &data.table,
        &data.schema,
        &config,
        &mut |stage: &str| {
            total = total.max(done + 1);
            bar.set(done, total, stage.to_string());
            done += 1;
        },
    )
    .with_context(|| format!("assessing {}", args.model))?;
    bar.finish();
    result.model = args.model.clone();

    let mut report = Report::new(
        "assess extraction",
        vec![args.model.clone(), args.data.data.display().to_string()],
    );
    report.findings = result.findings();
    report.sort_findings();
    report.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    report
        .metrics
        .insert("extraction".into(), serde_json::to_value(&result)?);
    if global.format == OutputFormat::Human && global.output.is_none() && !global.quiet {
        output::write_text(global, &extraction::render_human(&result))?;
    }
    output::emit(global, &report, &extraction::rules())
}

fn config(args: &ExtractionArgs) -> anyhow::Result<ExtractionConfig> {
    if args.budgets.is_empty() || args.budgets.contains(&0) {
        bail!("--budgets needs positive query counts, e.g. --budgets 100,500,2000");
    }
    if !(args.delta > 0.0 && args.delta < 1.0) {
        bail!("--delta must be between 0 and 1, got {}", args.delta);
    }
    let strategies = args
        .strategies
        .iter()
        .map(|s| {
            s.parse::<Strategy>()
                .map_err(|e| anyhow::anyhow!("--strategies: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut policies = vec![OutputPolicy::Full];
    for text in &args.policies {
        let policy = OutputPolicy::parse(text).map_err(|e| anyhow::anyhow!("--policies: {e}"))?;
        if !policies.contains(&policy) {
            policies.push(policy);
        }
    }
    let mut config = ExtractionConfig {
        budgets: args.budgets.clone(),
        strategies,
        policies,
        seed: args.data.seed,
        prada_distance: args.prada_distance,
        ..Default::default()
    };
    config.prada.delta = args.delta;
    Ok(config)
}
