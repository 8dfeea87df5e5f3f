//! The checks: one pillar run in-process on one asset version, producing the same `Report` the CLI writes.
//!
//! A check reads the version's files from a private work directory where they were laid out under the names the
//! user registered ([`crate::objects::materialize`]), and the latest versions of the datasets linked to a
//! model beside them. What a check needs and does not have (a model that is not ONNX, no test data linked) is
//! not a failure but a **skip** whose reason says what to add. Paths in the report are made relative to the work
//! directory, so findings name `model.onnx`, not a temporary path, and fingerprints stay stable.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aegis_assess::robustness::{self, Names, RobustnessConfig};
use aegis_assess::{Constraints, EpsUnits, Norm};
use aegis_core::{Finding, Location, Report, Severity, Table};
use aegis_data::ReadOptions;
use serde::{Deserialize, Serialize};

use crate::assets::{Asset, AssetKind, Version};
use crate::{Error, Result};

/// Every check the store can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// `aegis scan`: code-execution payloads and unsafe structure in model files.
    Scan,
    /// `aegis vault verify`: the detached signature against the trusted keys.
    Signature,
    /// `aegis schema check`: a dataset version against the schema of the asset's first version.
    Schema,
    /// `aegis audit`: poisoning in a dataset.
    Audit,
    /// `aegis assess robustness` on the linked test data.
    Robustness,
    /// `aegis assess privacy`: membership inference, training data against test data.
    Privacy,
    /// `aegis assess extraction`: how many queries copy the model, and whether PRADA notices.
    Extraction,
    /// `aegis drift`: a dataset version against the asset's first version.
    Drift,
}

impl CheckKind {
    /// Every check.
    pub const ALL: [CheckKind; 8] = [
        CheckKind::Scan,
        CheckKind::Signature,
        CheckKind::Schema,
        CheckKind::Audit,
        CheckKind::Robustness,
        CheckKind::Privacy,
        CheckKind::Extraction,
        CheckKind::Drift,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Scan => "scan",
            CheckKind::Signature => "signature",
            CheckKind::Schema => "schema",
            CheckKind::Audit => "audit",
            CheckKind::Robustness => "robustness",
            CheckKind::Privacy => "privacy",
            CheckKind::Extraction => "extraction",
            CheckKind::Drift => "drift",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Result<CheckKind> {
        CheckKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown check {s:?}: use {}",
                    CheckKind::ALL.map(CheckKind::as_str).join(", ")
                ))
            })
    }

    /// The checks that apply to an asset kind, in the order they are queued for a new version.
    pub fn for_kind(kind: AssetKind) -> &'static [CheckKind] {
        match kind {
            AssetKind::Model => &[
                CheckKind::Scan,
                CheckKind::Signature,
                CheckKind::Robustness,
                CheckKind::Privacy,
                CheckKind::Extraction,
            ],
            AssetKind::Dataset => &[CheckKind::Schema, CheckKind::Drift, CheckKind::Audit],
            AssetKind::Endpoint => &[],
        }
    }

    /// The default schedule: seconds between runs (0: only when a version arrives or on demand). Scans and
    /// signatures are re-checked daily because the rules and trusted keys change, not only the files.
    pub fn default_interval(self) -> i64 {
        match self {
            CheckKind::Scan | CheckKind::Signature => 86_400,
            _ => 0,
        }
    }

    /// Heavy checks (model inference, data audits) run one at a time so serving stays fast.
    pub fn is_heavy(self) -> bool {
        matches!(
            self,
            CheckKind::Robustness | CheckKind::Privacy | CheckKind::Extraction | CheckKind::Audit
        )
    }

    /// Checks that load (run) the model: they wait for the version's scan and skip a version it flagged.
    pub fn loads_model(self) -> bool {
        matches!(
            self,
            CheckKind::Robustness | CheckKind::Privacy | CheckKind::Extraction
        )
    }
}

/// Settings every check shares, from the server's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckSettings {
    /// Public keys (PEM) a model signature must verify with; empty: signatures are verified for integrity
    /// only, and an unsigned model is a medium finding rather than high.
    pub trusted_keys: Vec<PathBuf>,
    /// Most rows a robustness or privacy check attacks (a seeded sample beyond it). Default 200.
    pub max_rows: Option<usize>,
}

/// A dataset laid out for a check.
#[derive(Debug, Clone)]
pub struct DataInput {
    /// The dataset asset.
    pub asset: Asset,
    /// The version used.
    pub version: Version,
    /// Where its file is.
    pub path: PathBuf,
}

/// Everything a check reads, laid out in `work`.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The asset checked.
    pub asset: Asset,
    /// The version checked.
    pub version: Version,
    /// The work directory (removed after the run).
    pub work: PathBuf,
    /// The version's file or directory inside `work`.
    pub path: PathBuf,
    /// The detached signature laid out beside it, if the version came with one.
    pub signature: Option<PathBuf>,
    /// Linked test data (`evaluated_on`).
    pub test: Option<DataInput>,
    /// Linked training data (`trained_on`).
    pub train: Option<DataInput>,
    /// For a dataset's schema check: its first version.
    pub baseline: Option<DataInput>,
}

/// How a check ended.
#[derive(Debug)]
pub enum Outcome {
    /// It ran; the report holds its findings.
    Done(Report),
    /// It does not apply yet; what to add.
    Skipped(String),
}

/// Progress a check reports while it runs: a fraction and a stage, read by the worker.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<(f64, String)>>);

impl Progress {
    /// Record progress.
    pub fn set(&self, fraction: f64, stage: impl Into<String>) {
        if let Ok(mut p) = self.0.lock() {
            *p = (fraction, stage.into());
        }
    }

    /// The latest progress.
    pub fn get(&self) -> (f64, String) {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl robustness::Progress for Progress {
    fn stage(&self, what: &str, done: usize, total: usize) {
        self.set(done as f64 / total.max(1) as f64, what);
    }
}

/// Run `kind` on what `prepared` laid out. Blocking: call it from a blocking thread.
pub fn execute(
    kind: CheckKind,
    prepared: &Prepared,
    settings: &CheckSettings,
    progress: &Progress,
) -> Result<Outcome> {
    let started = std::time::Instant::now();
    let outcome = match kind {
        CheckKind::Scan => scan(prepared, progress),
        CheckKind::Signature => signature(prepared, settings),
        CheckKind::Schema => schema(prepared),
        CheckKind::Audit => audit(prepared, progress),
        CheckKind::Robustness => robustness_check(prepared, settings, progress),
        CheckKind::Privacy => privacy(prepared, settings, progress),
        CheckKind::Extraction => extraction(prepared, settings, progress),
        CheckKind::Drift => drift(prepared),
    }?;
    Ok(match outcome {
        Outcome::Done(mut report) => {
            report.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
            relativize(&mut report, &prepared.work);
            report.sort_findings();
            Outcome::Done(report)
        }
        skipped => skipped,
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn scan(p: &Prepared, progress: &Progress) -> Result<Outcome> {
    progress.set(0.0, "scanning");
    let scanner = aegis_scan::Scanner::new(aegis_scan::Policy::default(), Default::default());
    let outcome = scanner.scan_paths(std::slice::from_ref(&p.path), &());
    let mut report = Report::new("scan", vec![display(&p.path)]);
    report.findings = outcome.findings;
    report
        .metrics
        .insert("files".into(), outcome.stats.files.into());
    report
        .metrics
        .insert("bytes".into(), outcome.stats.bytes.into());
    report.metrics.insert(
        "formats".into(),
        serde_json::to_value(&outcome.stats.formats).unwrap_or_default(),
    );
    // What was checked, file by file, named as uploaded (not by the work directory they were laid out in).
    let root = p.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let root = root.display().to_string();
    let checked: Vec<serde_json::Value> = outcome
        .files
        .iter()
        .take(10_000)
        .map(|f| {
            let mut v = serde_json::to_value(f).unwrap_or_default();
            let shown = f
                .path
                .strip_prefix(&root)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(&f.path);
            v["path"] = shown.into();
            v
        })
        .collect();
    report.metrics.insert("checked".into(), checked.into());
    Ok(Outcome::Done(report))
}

fn signature(p: &Prepared, settings: &CheckSettings) -> Result<Outcome> {
    let policy = aegis_vault::trust::TrustPolicy {
        trusted_keys: settings.trusted_keys.clone(),
    };
    let mut report = Report::new("vault verify", vec![display(&p.path)]);
    let sig = p
        .signature
        .clone()
        .unwrap_or_else(|| aegis_vault::signature::default_signature_path(&p.path));
    let mut findings = policy
        .check(&p.path, Some(&sig))
        .map_err(|e| Error::Check(format!("verifying the signature: {e}")))?;
    let unsigned = findings
        .iter()
        .any(|f| f.rule.as_str() == aegis_vault::trust::UNSIGNED.id);
    if unsigned && !policy.is_configured() {
        // Without a trust policy an unsigned model is worth fixing, not a policy violation.
        for f in &mut findings {
            f.severity = Severity::Medium;
            f.title = "Model is not signed".into();
            f.message = format!(
                "{} is not signed: nothing ties it to the people who built it (no trust policy is configured)",
                p.version.filename
            );
        }
    }
    let status = if unsigned {
        "unsigned"
    } else if findings.is_empty() {
        "verified"
    } else {
        "invalid"
    };
    report.metrics.insert("signature".into(), status.into());
    report.findings = findings;
    Ok(Outcome::Done(report))
}

fn read_options(input: &DataInput) -> ReadOptions {
    ReadOptions {
        label: input.asset.settings.label.clone(),
        drop: input.asset.settings.drop.clone(),
        ..ReadOptions::default()
    }
}

fn data_input(p: &Prepared) -> DataInput {
    DataInput {
        asset: p.asset.clone(),
        version: p.version.clone(),
        path: p.path.clone(),
    }
}

fn schema(p: &Prepared) -> Result<Outcome> {
    let Some(baseline) = &p.baseline else {
        return Ok(Outcome::Skipped(
            "this is the dataset's first version: later versions are checked against the schema inferred from it"
                .into(),
        ));
    };
    let me = data_input(p);
    let read = |d: &DataInput| {
        aegis_data::read_frame(&d.path, &read_options(d))
            .map_err(|e| Error::Check(format!("reading {}: {e}", d.version.filename)))
    };
    let base = read(baseline)?;
    let frame = read(&me)?;
    let schema = aegis_data::infer_data_schema(&base);
    let mut report = Report::new("schema check", vec![display(&p.path)]);
    report.findings = aegis_data::check_frame(&schema, &frame);
    report
        .metrics
        .insert("baseline_version".into(), baseline.version.seq.into());
    report.metrics.insert("rows".into(), frame.n_rows.into());
    Ok(Outcome::Done(report))
}

fn audit(p: &Prepared, progress: &Progress) -> Result<Outcome> {
    use aegis_audit::{backdoor::BackdoorConfig, duplicates::DuplicateConfig, run, AuditConfig};
    let me = data_input(p);
    let frame = aegis_data::read_frame(&p.path, &read_options(&me))
        .map_err(|e| Error::Check(format!("reading {}: {e}", p.version.filename)))?;
    let labelled = frame.labels.is_some();
    let cfg = AuditConfig {
        labels: labelled.then(Default::default),
        outliers: Some(Default::default()),
        duplicates: Some(DuplicateConfig::default()),
        backdoor: labelled.then(|| BackdoorConfig::for_rows(frame.n_rows)),
        balance: labelled,
    };
    let mut stage = 0usize;
    let mut on_stage = |name: &str| {
        stage += 1;
        progress.set(stage as f64 / 6.0, name);
    };
    let audit = run::audit(&frame, None, &cfg, &mut on_stage)
        .map_err(|e| Error::Check(format!("auditing {}: {e}", p.version.filename)))?;
    let mut report = Report::new("audit", vec![display(&p.path)]);
    report.findings = audit.findings.clone();
    report.metrics = audit.metrics.clone().into_iter().collect();
    if !labelled {
        report.metrics.insert(
            "note".into(),
            "no label column is set for this dataset: label and backdoor checks did not run \
             (aegis asset update NAME --label COLUMN)"
                .into(),
        );
    }
    Ok(Outcome::Done(report))
}

/// A labelled table for a model check.
struct Labelled {
    table: Table,
    labels: Vec<u32>,
}

fn labelled(d: &DataInput) -> Result<Labelled> {
    let Some(label) = &d.asset.settings.label else {
        return Err(Error::Check(format!(
            "dataset {} has no label column set; run `aegis asset update {} --label COLUMN`",
            d.asset.name, d.asset.name
        )));
    };
    let table = aegis_data::read_table(&d.path, &read_options(d))
        .map_err(|e| Error::Check(format!("reading {}: {e}", d.version.filename)))?;
    let labels = table.labels.clone().ok_or_else(|| {
        Error::Check(format!(
            "{} has no column {label:?}; fix the label with `aegis asset update {} --label COLUMN`",
            d.version.filename, d.asset.name
        ))
    })?;
    if table.n_rows() == 0 {
        return Err(Error::Check(format!("{} has no rows", d.version.filename)));
    }
    Ok(Labelled { table, labels })
}

fn load_model(p: &Prepared) -> Result<std::result::Result<Box<dyn aegis_ml::Model>, String>> {
    if p.version.files.len() != 1 || !p.version.filename.to_ascii_lowercase().ends_with(".onnx") {
        return Ok(Err(format!(
            "model assessment runs ONNX models; {} is not an .onnx file (export it with skl2onnx, \
             torch.onnx or tf2onnx and add that version)",
            p.version.filename
        )));
    }
    aegis_ml::load_onnx(&p.path)
        .map(Ok)
        .map_err(|e| Error::Check(format!("loading {}: {e}", p.version.filename)))
}

fn fits(model: &dyn aegis_ml::Model, data: &Labelled, what: &DataInput) -> Result<()> {
    if model.n_features() != data.table.n_features() {
        return Err(Error::Check(format!(
            "the model takes {} input features, {} has {} feature columns; set the columns that are not \
             inputs with `aegis asset update {} --drop COL,…`",
            model.n_features(),
            what.version.filename,
            data.table.n_features(),
            what.asset.name
        )));
    }
    let k = model.n_classes();
    if let Some(&bad) = data.labels.iter().find(|&&y| k > 0 && y as usize >= k) {
        return Err(Error::Check(format!(
            "{} has label {bad}, but the model has {k} classes",
            what.version.filename
        )));
    }
    Ok(())
}

fn robustness_check(
    p: &Prepared,
    settings: &CheckSettings,
    progress: &Progress,
) -> Result<Outcome> {
    let Some(test) = &p.test else {
        return Ok(Outcome::Skipped(format!(
            "no test data is linked: `aegis model add {} FILE --test TEST.csv --label COLUMN`",
            p.asset.name
        )));
    };
    let model = match load_model(p)? {
        Ok(m) => m,
        Err(why) => return Ok(Outcome::Skipped(why)),
    };
    let data = labelled(test)?;
    fits(model.as_ref(), &data, test)?;
    let schema = aegis_data::infer_schema(&data.table);
    let rows = aegis_ml::rng::sample_indices(
        data.table.n_rows(),
        Some(settings.max_rows.unwrap_or(200)),
        0,
    );
    let subset = data.table.select(&rows);
    let labels: Vec<u32> = rows.iter().map(|&i| data.labels[i]).collect();
    let config = RobustnessConfig {
        attacks: robustness::strongest_attacks(model.as_differentiable().is_some()),
        ..RobustnessConfig::default()
    };
    let constraints = Constraints::from_schema(&schema, EpsUnits::Range, Norm::Linf);
    let names = Names {
        features: &subset.columns,
        classes: &subset.class_names,
        schema: Some(&schema),
    };
    let result = robustness::evaluate(
        model.as_ref(),
        &subset.features,
        &labels,
        &constraints,
        names,
        &config,
        progress,
    )
    .map_err(|e| Error::Check(format!("assessing {}: {e}", p.version.filename)))?;
    let mut report = Report::new(
        "assess robustness",
        vec![display(&p.path), display(&test.path)],
    );
    report.findings = robustness::findings(&result, &p.version.filename);
    report
        .metrics
        .insert("clean_accuracy".into(), result.clean_accuracy.into());
    report.metrics.insert("rows".into(), result.rows.into());
    report.metrics.insert("eps_units".into(), "range".into());
    report.metrics.insert("norm".into(), "linf".into());
    report.metrics.insert(
        "robustness".into(),
        serde_json::to_value(&result).unwrap_or_default(),
    );
    Ok(Outcome::Done(report))
}

fn privacy(p: &Prepared, settings: &CheckSettings, progress: &Progress) -> Result<Outcome> {
    let (Some(train), Some(test)) = (&p.train, &p.test) else {
        return Ok(Outcome::Skipped(format!(
            "membership inference needs the training data and held-out test data: \
             `aegis model add {} FILE --train TRAIN.csv --test TEST.csv --label COLUMN`",
            p.asset.name
        )));
    };
    let model = match load_model(p)? {
        Ok(m) => m,
        Err(why) => return Ok(Outcome::Skipped(why)),
    };
    progress.set(0.1, "reading data");
    let members = labelled(train)?;
    let others = labelled(test)?;
    fits(model.as_ref(), &members, train)?;
    fits(model.as_ref(), &others, test)?;
    let max = settings.max_rows.unwrap_or(200).max(20) * 5;
    let pick = |d: &Labelled| {
        let rows = aegis_ml::rng::sample_indices(d.table.n_rows(), Some(max), 1);
        let labels: Vec<u32> = rows.iter().map(|&i| d.labels[i]).collect();
        (d.table.select(&rows), labels)
    };
    let (member_table, member_labels) = pick(&members);
    let (other_table, other_codes) = pick(&others);
    let other_labels =
        aegis_assess::privacy::align_labels(&member_table, &other_table, &other_codes).map_err(
            |e| {
                Error::Check(format!(
                    "{} against the training data: {e}",
                    test.version.filename
                ))
            },
        )?;
    progress.set(0.3, "membership inference");
    let mut result = aegis_assess::privacy::assess_privacy(
        model.as_ref(),
        &member_table,
        &member_labels,
        &other_table,
        &other_labels,
        &aegis_assess::privacy::PrivacyConfig::default(),
    )
    .map_err(|e| Error::Check(format!("assessing {}: {e}", p.version.filename)))?;
    result.target = p.version.filename.clone();
    let mut report = Report::new(
        "assess privacy",
        vec![display(&p.path), display(&train.path), display(&test.path)],
    );
    report.findings = result.findings();
    report.metrics.insert(
        "privacy".into(),
        serde_json::to_value(&result).unwrap_or_default(),
    );
    Ok(Outcome::Done(report))
}

fn extraction(p: &Prepared, settings: &CheckSettings, progress: &Progress) -> Result<Outcome> {
    let Some(test) = &p.test else {
        return Ok(Outcome::Skipped(format!(
            "an extraction assessment queries the model with held-out rows: \
             `aegis model add {} FILE --test TEST.csv --label COLUMN`",
            p.asset.name
        )));
    };
    let model = match load_model(p)? {
        Ok(m) => m,
        Err(why) => return Ok(Outcome::Skipped(why)),
    };
    let data = labelled(test)?;
    fits(model.as_ref(), &data, test)?;
    let rows = aegis_ml::rng::sample_indices(
        data.table.n_rows(),
        Some(settings.max_rows.unwrap_or(200).max(20) * 5),
        2,
    );
    let pool = data.table.select(&rows);
    let schema = aegis_data::infer_schema(&pool);
    // A lighter sweep than the CLI's default: the budgets and policies a small business decides with.
    let config = aegis_assess::extraction::ExtractionConfig {
        budgets: vec![250, 1000],
        policies: vec![
            aegis_ml::output_policy::OutputPolicy::Full,
            aegis_ml::output_policy::OutputPolicy::LabelOnly,
        ],
        ..Default::default()
    };
    let mut stages = 0usize;
    let mut result = aegis_assess::extraction::assess_extraction(
        model.as_ref(),
        &pool,
        &schema,
        &config,
        &mut |stage: &str| {
            stages += 1;
            progress.set((stages as f64 / 12.0).min(0.95), stage);
        },
    )
    .map_err(|e| Error::Check(format!("assessing {}: {e}", p.version.filename)))?;
    result.model = p.version.filename.clone();
    let mut report = Report::new(
        "assess extraction",
        vec![display(&p.path), display(&test.path)],
    );
    report.findings = result.findings();
    report.metrics.insert(
        "extraction".into(),
        serde_json::to_value(&result).unwrap_or_default(),
    );
    Ok(Outcome::Done(report))
}

fn drift(p: &Prepared) -> Result<Outcome> {
    let Some(baseline) = &p.baseline else {
        return Ok(Outcome::Skipped(
            "this is the dataset's first version: later versions are compared with it".into(),
        ));
    };
    let csv = |d: &DataInput| d.version.filename.to_ascii_lowercase().ends_with(".csv");
    if !csv(baseline) || !csv(&data_input(p)) {
        return Ok(Outcome::Skipped(
            "drift between versions is measured on CSV files; this dataset is not CSV".into(),
        ));
    }
    use aegis_monitor::drift::{self as monitor, ColumnAccumulator, ColumnSet};
    let fold = aegis_data::FoldOptions {
        drop: p.asset.settings.drop.clone(),
        label: p.asset.settings.label.clone(),
        ..Default::default()
    };
    let (reference, current) = aegis_data::fold_pair(&baseline.path, &p.path, &fold, |kind, _| {
        ColumnAccumulator::new(kind, 5_000_000, 10_000)
    })
    .map_err(|e| Error::Check(format!("reading the versions: {e}")))?;
    let set = |f: aegis_data::Folded<ColumnAccumulator>| ColumnSet {
        source: f.source,
        rows: f.rows,
        columns: f.columns,
    };
    let result = monitor::compare(
        set(reference),
        set(current),
        &monitor::DriftOptions::default(),
    )
    .map_err(|e| Error::Check(format!("comparing the versions: {e}")))?;
    let mut report = Report::new("drift", vec![display(&baseline.path), display(&p.path)]);
    report.findings = result.findings();
    report
        .metrics
        .insert("baseline_version".into(), baseline.version.seq.into());
    report.metrics.insert(
        "drift".into(),
        serde_json::to_value(&result).unwrap_or_default(),
    );
    Ok(Outcome::Done(report))
}

/// Make every path in the report relative to the work directory.
fn relativize(report: &mut Report, work: &Path) {
    let prefix = format!("{}/", work.display());
    let strip = |s: &mut String| {
        if let Some(rest) = s.strip_prefix(&prefix) {
            *s = rest.to_string();
        }
    };
    for t in &mut report.target {
        strip(t);
    }
    for f in &mut report.findings {
        match &mut f.location {
            Location::File { path, .. } | Location::Dataset { path, .. } => strip(path),
            Location::ModelInput { model, .. } => strip(model),
            Location::Route { .. } => {}
        }
        f.message = f.message.replace(&prefix, "");
    }
}

/// A one-line summary of a report's findings: `2 high, 1 medium` or `no findings`.
pub fn summary(findings: &[Finding]) -> String {
    let mut parts = Vec::new();
    for s in Severity::ALL.iter().rev() {
        let n = findings.iter().filter(|f| f.severity == *s).count();
        if n > 0 {
            parts.push(format!("{n} {}", s.as_str()));
        }
    }
    if parts.is_empty() {
        "no findings".into()
    } else {
        parts.join(", ")
    }
}

/// The documentation of every rule the checks can report (what, why, how to fix, references).
pub fn rules() -> Vec<&'static aegis_core::RuleDoc> {
    let mut all = aegis_scan::rules::all();
    all.extend(aegis_assess::rules::all());
    all.extend(aegis_audit::run::rules());
    all.extend(aegis_data::schema_rules());
    all.extend(aegis_monitor::drift::rules());
    all.extend(aegis_vault::trust::RULES.iter());
    all
}
