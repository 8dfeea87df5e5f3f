//! `aegis scan`: wire flags to [`aegis_scan::Scanner`] and render its findings.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use aegis_core::Report;
use aegis_scan::{Policy, Scanner};
use aegis_vault::trust::TrustPolicy;
use anyhow::Context;

use crate::args::{GlobalArgs, ScanArgs};
use crate::{output, progress};

/// The default policy file, read when present in the working directory.
const DEFAULT_POLICY: &str = "aegis.toml";

pub fn run(global: &GlobalArgs, args: ScanArgs) -> anyhow::Result<ExitCode> {
    for path in &args.paths {
        // A path the user named that does not exist is a usage error, not a finding.
        let shown = path.display().to_string();
        if !path.exists() && shown.contains(['*', '?', '[']) {
            anyhow::bail!(
                "nothing to scan: no file matches `{shown}` (the shell passed the pattern on unexpanded)"
            );
        }
        std::fs::metadata(path).with_context(|| format!("cannot scan {shown}"))?;
    }
    let scanner = build_scanner(&args)?;
    let trust = trust_policy(&args)?;
    if let Some(jobs) = args.jobs {
        // Ignore the error when a global pool already exists (tests run several scans in one process).
        let _ = rayon_pool(jobs);
    }
    let target: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
    let mut report = Report::new("scan", target);
    let started = Instant::now();
    let bar = progress::ScanProgress::new(global.quiet);
    let outcome = scanner.scan_paths(&args.paths, &bar);
    if outcome.stats.files == 0 {
        anyhow::bail!("{}", nothing_scanned(&args, outcome.excluded));
    }
    report.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    report.findings = outcome.findings;
    if trust.is_configured() {
        for path in &args.paths {
            let findings = trust
                .check(path, None)
                .with_context(|| format!("checking the signature of {}", path.display()))?;
            report.findings.extend(findings);
        }
    }
    report.sort_findings();
    report
        .metrics
        .insert("files".into(), outcome.stats.files.into());
    report
        .metrics
        .insert("bytes".into(), outcome.stats.bytes.into());
    if outcome.excluded > 0 {
        report
            .metrics
            .insert("excluded".into(), outcome.excluded.into());
    }
    report.metrics.insert(
        "formats".into(),
        serde_json::to_value(&outcome.stats.formats).unwrap_or_default(),
    );
    // What was checked, file by file (bounded: a report of a huge tree keeps the first 10 000).
    report.metrics.insert(
        "checked".into(),
        serde_json::to_value(outcome.files.iter().take(10_000).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    let policy_extra: Vec<&str> = scanner.policy().extra().collect();
    if !policy_extra.is_empty() {
        report
            .metrics
            .insert("allowed_by_policy".into(), policy_extra.into());
    }
    let mut rules = aegis_scan::rules::all();
    rules.extend(aegis_vault::trust::RULES.iter());
    output::emit(global, &report, &rules)
}

/// Why a run found no file to scan, and what to do.
fn nothing_scanned(args: &ScanArgs, excluded: u64) -> String {
    let named: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
    let named = named.join(", ");
    if excluded > 0 {
        format!(
            "nothing to scan: every file under {named} is excluded ({excluded} path(s) left out by --exclude, \
             [scan] exclude or ./.aegisignore); loosen the patterns or name the files to scan"
        )
    } else {
        format!(
            "nothing to scan: {named} holds no files; check the path (a shell glob that matched nothing is \
             passed on as it is written)"
        )
    }
}

/// The signature requirement of `--trusted-key` and `--trust-policy` (empty: no requirement).
fn trust_policy(args: &ScanArgs) -> anyhow::Result<TrustPolicy> {
    let mut policy = match &args.trust_policy {
        Some(path) => TrustPolicy::load(path).context("loading the trust policy")?,
        None => TrustPolicy::default(),
    };
    policy.trusted_keys.extend(args.trusted_key.iter().cloned());
    Ok(policy)
}

fn build_scanner(args: &ScanArgs) -> anyhow::Result<Scanner> {
    let (mut policy, mut limits) = match &args.policy {
        Some(path) => Policy::load(path).with_context(|| "loading the scan policy")?,
        None if Path::new(DEFAULT_POLICY).is_file() => Policy::load(Path::new(DEFAULT_POLICY))
            .with_context(|| {
                format!("loading ./{DEFAULT_POLICY} (pass --policy to use another file)")
            })?,
        None => Default::default(),
    };
    for entry in &args.allow {
        policy.allow(entry).context("in --allow")?;
    }
    for pattern in &args.exclude {
        policy.exclude(pattern).context("in --exclude")?;
    }
    if Path::new(aegis_scan::IGNORE_FILE).is_file() {
        policy.ignore_file(Path::new(aegis_scan::IGNORE_FILE).to_path_buf());
    }
    if let Some(depth) = args.max_depth {
        limits.max_depth = depth;
    }
    Ok(Scanner::new(policy, limits))
}

fn rayon_pool(jobs: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build_global()
}
