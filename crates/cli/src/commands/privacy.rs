//! `aegis assess privacy`: wire flags to [`aegis_assess::privacy::assess_privacy`] and report its result.

use std::process::ExitCode;
use std::time::Instant;

use aegis_assess::privacy::{self, PrivacyConfig};
use aegis_core::{Report, Table};
use aegis_ml::output_policy::OutputPolicy;
use anyhow::{bail, Context};

use super::inputs;
use crate::args::{DataArgs, EpsUnitsArg, GlobalArgs, PrivacyArgs};
use crate::{output, progress};

pub fn run(global: &GlobalArgs, args: PrivacyArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let config = config(&args)?;
    let members = inputs::load_data(&DataArgs {
        data: args.members.clone(),
        delimiter: args.delimiter,
        label: args.label.clone(),
        drop: args.drop.clone(),
        schema: None,
        eps_units: EpsUnitsArg::Raw,
        seed: args.seed,
    })?;
    let model = inputs::load_model(&args.model, &members, &args.protocol, &args.header)?;
    let non_members = aegis_data::read_table(
        &args.non_members,
        &aegis_data::ReadOptions {
            label: Some(args.label.clone()),
            drop: args.drop.clone(),
            delimiter: super::frames::delimiter(args.delimiter)?,
            ..aegis_data::ReadOptions::default()
        },
    )?;
    let non_member_labels = align(&members.table, &non_members, &args)?;

    let bar = progress::StageProgress::new(global.quiet, "attacking");
    let mut result = privacy::assess_privacy(
        model.as_ref(),
        &members.table,
        &members.labels,
        &non_members,
        &non_member_labels,
        &config,
    )
    .with_context(|| format!("assessing {}", args.model))?;
    bar.finish();
    result.target = args.model.clone();

    let mut report = Report::new(
        "assess privacy",
        vec![
            args.model.clone(),
            args.members.display().to_string(),
            args.non_members.display().to_string(),
        ],
    );
    report.findings = result.findings();
    report.sort_findings();
    report.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    report
        .metrics
        .insert("privacy".into(), serde_json::to_value(&result)?);
    let rules: Vec<_> = privacy::rules().iter().collect();
    output::emit(global, &report, &rules)
}

fn config(args: &PrivacyArgs) -> anyhow::Result<PrivacyConfig> {
    if !(args.population_fraction > 0.0 && args.population_fraction < 1.0) {
        bail!(
            "--population-fraction must be between 0 and 1 (exclusive), got {}",
            args.population_fraction
        );
    }
    let mut policies = vec![OutputPolicy::Full];
    for text in &args.policies {
        let policy = OutputPolicy::parse(text).map_err(|e| anyhow::anyhow!("--policies: {e}"))?;
        if !policies.contains(&policy) {
            policies.push(policy);
        }
    }
    Ok(PrivacyConfig {
        policies,
        population_fraction: args.population_fraction,
        seed: args.seed,
    })
}

/// The non-members must have the members' columns, and their labels the members' class codes.
fn align(members: &Table, non_members: &Table, args: &PrivacyArgs) -> anyhow::Result<Vec<u32>> {
    let labels = non_members
        .labels
        .as_ref()
        .with_context(|| format!("{} has no label column", args.non_members.display()))?;
    privacy::align_labels(members, non_members, labels).with_context(|| {
        format!(
            "{} cannot be compared with {}",
            args.non_members.display(),
            args.members.display()
        )
    })
}
