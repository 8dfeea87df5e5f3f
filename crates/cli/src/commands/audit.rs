//! `aegis audit`: every poisoning check over one dataset, one report, and optionally the per-row flags CSV.

use std::fs::File;
use std::io::BufWriter;
use std::process::ExitCode;
use std::time::Instant;

use aegis_audit::{
    backdoor::BackdoorConfig, duplicates::DuplicateConfig, labels::LabelConfig, labels::LabelModel,
    outliers::OutlierConfig, run, AuditConfig,
};
use aegis_core::{Artefact, Report};
use anyhow::{bail, Context};

use super::frames;
use crate::args::{AuditArgs, GlobalArgs, LabelModelArg};
use crate::{output, progress};

const CHECKS: [&str; 5] = ["labels", "outliers", "duplicates", "backdoor", "balance"];

pub fn run(global: &GlobalArgs, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    validate(&args)?;
    let opts = frames::read_options(&args.read, args.label.clone())?;
    let bar = progress::StageProgress::new(global.quiet, "auditing");
    bar.set(0, 1, format!("reading {}", args.data.display()));
    let frame = frames::read(&args.data, &opts)?;
    let reference = match &args.reference {
        Some(path) => Some(frames::read(path, &opts)?),
        None => None,
    };
    let cfg = config(&args, frame.n_rows)?;
    let mut stage = 0usize;
    let total = CHECKS.len() + 1;
    let mut on_stage = |name: &str| {
        stage += 1;
        bar.set(stage.min(total), total, name.to_owned());
    };
    let audit = run::audit(&frame, reference.as_ref(), &cfg, &mut on_stage)
        .with_context(|| format!("auditing {}", args.data.display()))?;
    bar.finish();

    let mut report = Report::new("audit", vec![args.data.display().to_string()]);
    report.findings = audit.findings.clone();
    if let Some(path) = &args.schema {
        let schema = aegis_data::load_data_schema(path)?;
        report
            .findings
            .extend(aegis_data::check_frame(&schema, &frame));
    }
    if let Some(path) = &args.flags {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        run::write_flags(BufWriter::new(file), &audit.rows)
            .with_context(|| format!("writing {}", path.display()))?;
        report.artefacts.push(Artefact {
            kind: "flags".into(),
            path: path.display().to_string(),
        });
    }
    report.metrics = audit.metrics.clone().into_iter().collect();
    report.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    if !global.quiet {
        let kinds: Vec<String> = audit
            .flagged_by_kind()
            .into_iter()
            .map(|(k, n)| format!("{} {n}", k.as_str()))
            .collect();
        eprintln!(
            "{} rows audited, {} flagged ({}) in {:.1} s",
            frame.n_rows,
            audit.flagged(),
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            },
            started.elapsed().as_secs_f64()
        );
    }
    let mut rules = run::rules();
    rules.extend(aegis_data::schema_rules());
    output::emit(global, &report, &rules)
}

/// Refuses out-of-range options before any data is read.
fn validate(args: &AuditArgs) -> anyhow::Result<()> {
    if let Some(rate) = args.expected_rate {
        if !(rate > 0.0 && rate < 1.0) {
            bail!("--expected-rate must be between 0 and 1 (exclusive), got {rate}");
        }
    }
    if args.folds < 2 || args.folds > 20 {
        bail!("--folds must be between 2 and 20");
    }
    if args.top == Some(0) {
        bail!("--top must be at least 1");
    }
    wanted_checks(&args.checks).map(|_| ())
}

/// The checks `--checks` names, in run order.
fn wanted_checks(checks: &[String]) -> anyhow::Result<Vec<&'static str>> {
    let mut wanted: Vec<&'static str> = Vec::new();
    for c in checks {
        let c = c.trim();
        if c == "all" {
            wanted.extend(CHECKS);
        } else if let Some(known) = CHECKS.iter().copied().find(|x| *x == c) {
            wanted.push(known);
        } else {
            bail!("unknown check `{c}`: use {} or all", CHECKS.join(", "));
        }
    }
    Ok(wanted)
}

/// The audit configuration the flags ask for, for a table of `n_rows`.
fn config(args: &AuditArgs, n_rows: usize) -> anyhow::Result<AuditConfig> {
    let wanted = wanted_checks(&args.checks)?;
    let seed = args.seed;
    let on = |name: &str| wanted.contains(&name);
    Ok(AuditConfig {
        labels: on("labels").then(|| LabelConfig {
            folds: args.folds,
            seed,
            model: match args.model {
                LabelModelArg::Gbdt => LabelModel::Gbdt,
                LabelModelArg::Knn => LabelModel::Knn { k: 15 },
            },
            ..Default::default()
        }),
        outliers: on("outliers").then(|| OutlierConfig {
            expected_rate: args.expected_rate,
            top: args.top,
            seed,
            ..Default::default()
        }),
        duplicates: on("duplicates").then(DuplicateConfig::default),
        backdoor: on("backdoor").then(|| BackdoorConfig {
            seed,
            ..BackdoorConfig::for_rows(n_rows)
        }),
        balance: on("balance"),
    })
}
