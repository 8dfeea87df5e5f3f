//! The inventory commands: register models and datasets, run their checks, list and triage findings, show the
//! posture, import reports, manage notification channels. They open the gateway's database directly (as
//! `aegis key` does): a running `aegis serve` sees every change, and its worker runs what is queued.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use aegis_gateway::config::Config;
use aegis_gateway::offline::Offline;
use aegis_store::assets::{Asset, AssetKind, AssetSettings, NewAsset, Relation};
use aegis_store::checks::CheckKind;
use aegis_store::findings::{FindingFilter, Triage, VexState};
use aegis_store::notify::{Channel, EmailConfig, Transport, WebhookConfig};
use aegis_store::posture::{open_line, when};
use aegis_store::queue::{Run, RunStatus};
use aegis_store::worker::{Worker, WorkerConfig};
use aegis_store::Store;
use anyhow::{bail, Context};

use super::gateway::{json, open, open_existing};
use crate::args::{GlobalArgs, OutputFormat};
use crate::args_inventory::*;
use crate::output;

fn human(global: &GlobalArgs) -> bool {
    global.format == OutputFormat::Human
}

fn is_table(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    [".csv", ".tsv", ".parquet", ".csv.gz"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn settings(data: &DataSettingsArgs) -> AssetSettings {
    AssetSettings {
        label: data.label.clone(),
        drop: data.drop.clone(),
        serves_as: None,
    }
}

/// A dataset must be a table the checks can read, with the label column it is registered with: found now, not
/// when its first check fails.
fn check_table(path: &Path, data: &DataSettingsArgs) -> anyhow::Result<()> {
    let opts = aegis_data::ReadOptions {
        label: data.label.clone(),
        drop: data.drop.clone(),
        max_rows: Some(1),
        ..aegis_data::ReadOptions::default()
    };
    aegis_data::read_frame(path, &opts)
        .map(|_| ())
        .with_context(|| format!("{} cannot be registered as a dataset", path.display()))
}

/// The asset named `name`, created when absent.
fn ensure(store: &Store, off: &Offline, new: NewAsset) -> anyhow::Result<Asset> {
    if let Some(asset) = off.block_on(store.find_asset(&new.name))? {
        if Some(asset.kind) != new.kind {
            bail!(
                "{} is registered as a {}, not a {}; choose another name",
                asset.name,
                asset.kind.as_str(),
                new.kind.map_or("?", AssetKind::as_str)
            );
        }
        return Ok(asset);
    }
    let name = new.name.clone();
    let asset = off.block_on(store.create_asset(new))?;
    off.audit(
        "asset.create",
        &format!("asset {name} ({}) created", asset.kind.as_str()),
        "",
    )?;
    Ok(asset)
}

/// Store `path` as the asset's next version; the version and the jobs queued for it.
fn add_version(
    store: &Store,
    off: &Offline,
    config: &Config,
    asset: &Asset,
    path: &Path,
) -> anyhow::Result<(aegis_store::assets::Version, bool, Vec<String>)> {
    std::fs::metadata(path).with_context(|| format!("cannot register {}", path.display()))?;
    let (version, new) = off
        .block_on(store.add_version_from_path(asset, path, config.checks.max_bytes()))
        .with_context(|| format!("storing {}", path.display()))?;
    let jobs = if new {
        off.audit(
            "asset.version",
            &format!(
                "asset {} version {} from {} (sha256 {})",
                asset.name,
                version.seq,
                path.display(),
                version.sha256
            ),
            "",
        )?;
        off.block_on(store.on_new_version(asset, &version))?
    } else {
        Vec::new()
    };
    if !new {
        eprintln!(
            "{}: {} is the same content as version {}; no new version",
            asset.name,
            path.display(),
            version.seq
        );
    } else {
        eprintln!(
            "{}: version {} registered (sha256 {}…, {} bytes)",
            asset.name,
            version.seq,
            &version.sha256[..12],
            version.size
        );
    }
    Ok((version, new, jobs))
}

/// Run `jobs` here (each one the server's worker has not claimed yet) and wait for every one to finish.
fn run_jobs(
    off: &Offline,
    config: &Config,
    jobs: &[String],
    quiet: bool,
) -> anyhow::Result<Vec<Run>> {
    let store = off.store().clone();
    let prefix = format!(
        "cli@{}:{}:",
        aegis_store::worker::node_name(),
        std::process::id()
    );
    let worker = Worker::new(
        store.clone(),
        &prefix,
        WorkerConfig {
            settings: config.checks.settings(),
            ..WorkerConfig::default()
        },
    );
    // Jobs an earlier command or a lost worker left behind are recovered first (their leases ran out).
    off.block_on(store.recover(aegis_store::now_secs(), None, worker.id()))?;
    let mut runs = Vec::new();
    for job in jobs {
        let ran = off.block_on(worker.run_job_now(job))?;
        let run = match ran {
            Some(run) => run,
            None => wait_for(off, &store, job)?,
        };
        if !quiet {
            let name = off
                .block_on(store.find_asset(&run.asset_id))?
                .map(|a| a.name)
                .unwrap_or_default();
            eprintln!("  {name:<20} {}", run_line(&run));
        }
        runs.push(run);
    }
    // Deliver what the runs announced, so `model add` alone tells the configured channels.
    let _ = off.block_on(store.deliver_due(Default::default()));
    Ok(runs)
}

fn wait_for(off: &Offline, store: &Store, job: &str) -> anyhow::Result<Run> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3600);
    loop {
        let (state, run) = off.block_on(store.job(job))?;
        if let Some(run) = run {
            if run.status != RunStatus::Running && matches!(state.as_str(), "done" | "failed") {
                return Ok(run);
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("job {job} did not finish within an hour; `aegis check list` shows its state");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn run_line(run: &Run) -> String {
    let status = match run.status {
        RunStatus::Done => "done",
        RunStatus::Failed => "FAILED",
        RunStatus::Skipped => "skipped",
        RunStatus::Running => "running",
    };
    let what = if run.error.is_empty() {
        &run.summary
    } else {
        &run.error
    };
    format!("{:<11} {:<8} {what}", run.kind.as_str(), status)
}

/// What to print after registering: the runs and the asset's open findings.
fn registered(
    global: &GlobalArgs,
    off: &Offline,
    assets: &[Asset],
    runs: &[Run],
    queued: &[String],
) -> anyhow::Result<ExitCode> {
    let store = off.store();
    let postures = assets
        .iter()
        .map(|a| {
            off.block_on(store.posture(Some(&a.id)))
                .map(|mut p| p.remove(0))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if human(global) {
        let mut text = String::new();
        for p in &postures {
            text.push_str(&format!(
                "{} ({} v{}): open findings {}{}\n",
                p.asset,
                p.kind.as_str(),
                p.version,
                open_line(&p.open),
                if p.signature.is_empty() {
                    String::new()
                } else {
                    format!(", signature {}", p.signature)
                }
            ));
        }
        if runs.is_empty() && !queued.is_empty() {
            text.push_str(&format!(
                "{} check(s) queued; the worker of `aegis serve` (which must be running on this data) runs them; \
                 `aegis posture` shows the results\n",
                queued.len()
            ));
        }
        if postures.iter().any(|p| p.open.values().sum::<i64>() > 0) {
            text.push_str("Next: `aegis findings list` shows what was found and how to fix it.\n");
        }
        output::write_text(global, &text)?;
    } else {
        json(
            global,
            &serde_json::json!({"assets": postures, "runs": runs, "queued": queued}),
        )?;
    }
    let failed = runs.iter().any(|r| r.status == RunStatus::Failed);
    Ok(if failed {
        ExitCode::from(output::EXIT_ERROR)
    } else {
        exit_for(global, &postures)
    })
}

/// 1 when an asset has open findings at or above `--fail-on` (default high), else 0: what every report
/// command exits with, so a pipeline can stop on a registered model's findings.
fn exit_for(global: &GlobalArgs, postures: &[aegis_store::posture::AssetPosture]) -> ExitCode {
    let worst = postures
        .iter()
        .flat_map(|p| {
            p.open
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(s, _)| s.as_str())
        })
        .filter_map(|s| s.parse::<aegis_core::Severity>().ok())
        .max();
    match worst {
        Some(w) if w >= global.fail_on => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

/// `aegis model add`.
pub fn model_add(global: &GlobalArgs, args: ModelAddArgs) -> anyhow::Result<ExitCode> {
    if is_table(&args.path) {
        bail!(
            "{} looks like a table; register data with `aegis dataset add` or `--train/--test/--reference`",
            args.path.display()
        );
    }
    for path in [
        Some(&args.path),
        args.train.as_ref(),
        args.test.as_ref(),
        args.reference.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        std::fs::metadata(path).with_context(|| format!("cannot register {}", path.display()))?;
    }
    for path in [&args.train, &args.test, &args.reference]
        .into_iter()
        .flatten()
    {
        check_table(path, &args.register.data)?;
    }
    let (config, off) = open(&args.gateway)?;
    let store = off.store().clone();
    let model = ensure(
        &store,
        &off,
        NewAsset {
            name: args.name.clone(),
            kind: Some(AssetKind::Model),
            owner: args.register.owner.clone().unwrap_or_default(),
            tags: args.register.tags.clone(),
            ..NewAsset::default()
        },
    )?;
    let mut assets = vec![model.clone()];
    let mut jobs = Vec::new();
    // Data first, so the model's checks find it linked.
    for (file, suffix, role, relation) in [
        (&args.train, "train", "training", Relation::TrainedOn),
        (&args.test, "test", "test", Relation::EvaluatedOn),
        (
            &args.reference,
            "reference",
            "reference",
            Relation::Reference,
        ),
    ] {
        let Some(file) = file else { continue };
        let data = ensure(
            &store,
            &off,
            NewAsset {
                name: format!("{}-{suffix}", args.name),
                kind: Some(AssetKind::Dataset),
                role: role.into(),
                owner: args.register.owner.clone().unwrap_or_default(),
                tags: args.register.tags.clone(),
                settings: settings(&args.register.data),
                ..NewAsset::default()
            },
        )?;
        let data = if args.register.data.label.is_some() || !args.register.data.drop.is_empty() {
            off.block_on(store.update_asset(
                &data.id,
                None,
                None,
                Some(settings(&args.register.data)),
            ))?
        } else {
            data
        };
        let (_, _, queued) = add_version(&store, &off, &config, &data, file)?;
        off.block_on(store.link(&model, relation, &data))?;
        jobs.extend(queued);
        assets.push(off.block_on(store.asset(&data.id))?);
    }
    let model = off.block_on(store.asset(&model.id))?;
    let (_, new, queued) = add_version(&store, &off, &config, &model, &args.path)?;
    jobs.extend(queued);
    if !new && jobs.is_empty() {
        eprintln!(
            "nothing changed; `aegis check run {}` runs its checks again",
            args.name
        );
    }
    finish_registration(global, &off, &config, &assets, &jobs, args.register.no_wait)
}

fn finish_registration(
    global: &GlobalArgs,
    off: &Offline,
    config: &Config,
    assets: &[Asset],
    jobs: &[String],
    no_wait: bool,
) -> anyhow::Result<ExitCode> {
    let mut unique: Vec<String> = Vec::new();
    for j in jobs {
        if !unique.contains(j) {
            unique.push(j.clone());
        }
    }
    let runs = if no_wait || unique.is_empty() {
        Vec::new()
    } else {
        if !global.quiet {
            eprintln!("running {} check(s)…", unique.len());
        }
        run_jobs(off, config, &unique, global.quiet)?
    };
    registered(
        global,
        off,
        assets,
        &runs,
        if no_wait { &unique } else { &[] },
    )
}

/// `aegis dataset add`.
pub fn dataset(global: &GlobalArgs, command: DatasetCommand) -> anyhow::Result<ExitCode> {
    let DatasetCommand::Add(args) = command;
    add_asset(
        global,
        AssetAddArgs {
            gateway: args.gateway,
            name: args.name,
            path: args.path,
            kind: Some(KindArg::Dataset),
            role: args.role,
            register: args.register,
        },
    )
}

fn add_asset(global: &GlobalArgs, args: AssetAddArgs) -> anyhow::Result<ExitCode> {
    std::fs::metadata(&args.path)
        .with_context(|| format!("cannot register {}", args.path.display()))?;
    if args.kind == Some(KindArg::Dataset) || (args.kind.is_none() && is_table(&args.path)) {
        check_table(&args.path, &args.register.data)?;
    }
    let (config, off) = open(&args.gateway)?;
    let store = off.store().clone();
    let kind = match args.kind {
        Some(KindArg::Dataset) => AssetKind::Dataset,
        Some(KindArg::Model) => AssetKind::Model,
        None => match off.block_on(store.find_asset(&args.name))? {
            Some(a) => a.kind,
            None if is_table(&args.path) => AssetKind::Dataset,
            None => AssetKind::Model,
        },
    };
    let asset = ensure(
        &store,
        &off,
        NewAsset {
            name: args.name.clone(),
            kind: Some(kind),
            role: args.role.map(RoleArg::as_str).unwrap_or_default().into(),
            owner: args.register.owner.clone().unwrap_or_default(),
            tags: args.register.tags.clone(),
            settings: settings(&args.register.data),
            ..NewAsset::default()
        },
    )?;
    let (_, _, jobs) = add_version(&store, &off, &config, &asset, &args.path)?;
    let asset = off.block_on(store.asset(&asset.id))?;
    finish_registration(
        global,
        &off,
        &config,
        &[asset],
        &jobs,
        args.register.no_wait,
    )
}

/// `aegis asset …`.
pub fn asset(global: &GlobalArgs, command: AssetCommand) -> anyhow::Result<ExitCode> {
    match command {
        AssetCommand::Add(args) => add_asset(global, args),
        AssetCommand::List(args) => list_assets(global, args),
        AssetCommand::Show(args) => show_asset(global, args),
        AssetCommand::Update(args) => update_asset(global, args),
        AssetCommand::Link(args) => link(args),
        AssetCommand::Remove(args) => {
            let (_, off) = open_existing(&args.gateway)?;
            let asset = off.block_on(off.store().remove_asset(&args.name))?;
            off.audit(
                "asset.remove",
                &format!("asset {} removed (history kept)", asset.name),
                "",
            )?;
            eprintln!(
                "{} removed from the inventory; its runs and findings are kept",
                asset.name
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list_assets(global: &GlobalArgs, args: AssetListArgs) -> anyhow::Result<ExitCode> {
    let (_, off) = open_existing(&args.gateway)?;
    let store = off.store();
    let kind = args.kind.map(|k| match k {
        KindArg::Model => AssetKind::Model,
        KindArg::Dataset => AssetKind::Dataset,
    });
    let assets = off.block_on(store.list_assets(kind))?;
    if !human(global) {
        return json(global, &assets).map(|()| ExitCode::SUCCESS);
    }
    if assets.is_empty() {
        eprintln!("no assets yet: `aegis model add NAME FILE` registers the first");
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!(
        "{:<24} {:<8} {:<10} {:>4}  {:<14} {:<10} {}\n",
        "NAME", "KIND", "ROLE", "VER", "OWNER", "VERDICT", "OPEN FINDINGS"
    );
    for a in &assets {
        let p = off.block_on(store.posture(Some(&a.id)))?.remove(0);
        text.push_str(&format!(
            "{:<24} {:<8} {:<10} {:>4}  {:<14} {:<10} {}\n",
            a.name,
            a.kind.as_str(),
            if a.role.is_empty() { "-" } else { &a.role },
            a.latest.as_ref().map_or(0, |v| v.seq),
            if a.owner.is_empty() { "-" } else { &a.owner },
            p.verdict,
            open_line(&p.open)
        ));
    }
    output::write_text(global, &text)?;
    Ok(ExitCode::SUCCESS)
}

fn show_asset(global: &GlobalArgs, args: AssetNameArgs) -> anyhow::Result<ExitCode> {
    let (_, off) = open_existing(&args.gateway)?;
    let store = off.store();
    let asset = off.block_on(store.asset(&args.name))?;
    let versions = off.block_on(store.versions(&asset.id))?;
    let links = off.block_on(store.links(&asset.id))?;
    let runs = off.block_on(store.runs(&asset.id, None, 20))?;
    let schedules = off.block_on(store.schedules(&asset.id))?;
    let posture = off.block_on(store.posture(Some(&asset.id)))?.remove(0);
    if !human(global) {
        let links: Vec<_> = links
            .iter()
            .map(|(r, a)| serde_json::json!({"relation": r.as_str(), "asset": a.name}))
            .collect();
        json(
            global,
            &serde_json::json!({"asset": asset, "versions": versions, "links": links, "runs": runs,
                                "schedules": schedules, "posture": posture}),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = format!(
        "{} ({}{}), owner {}, tags {}\nverdict: {}, open findings: {}{}\n",
        asset.name,
        asset.kind.as_str(),
        if asset.role.is_empty() {
            String::new()
        } else {
            format!(", {}", asset.role)
        },
        if asset.owner.is_empty() {
            "nobody"
        } else {
            &asset.owner
        },
        if asset.tags.is_empty() {
            "none".to_string()
        } else {
            asset.tags.join(", ")
        },
        posture.verdict,
        open_line(&posture.open),
        if posture.signature.is_empty() {
            String::new()
        } else {
            format!(", signature {}", posture.signature)
        }
    );
    t.push_str("\nversions:\n");
    for v in &versions {
        t.push_str(&format!(
            "  v{:<3} {}  {}  {} bytes  {}  from {}\n",
            v.seq,
            &v.sha256[..16],
            when(v.created),
            v.size,
            v.filename,
            v.source
        ));
    }
    if !links.is_empty() {
        t.push_str("\nlinks:\n");
        for (r, a) in &links {
            t.push_str(&format!("  {} {}\n", r.as_str(), a.name));
        }
    }
    t.push_str("\nchecks:\n");
    for c in &posture.checks {
        t.push_str(&format!(
            "  {:<11} {:<8} {:<20} {}\n",
            c.check.as_str(),
            c.status,
            when(c.finished),
            c.summary
        ));
    }
    if !schedules.is_empty() {
        t.push_str("\nschedules:\n");
        for s in &schedules {
            let how = if !s.cron.is_empty() {
                format!("cron {}", s.cron)
            } else if s.every_secs > 0 {
                format!("every {}", human_duration(s.every_secs))
            } else {
                "only on new versions".into()
            };
            t.push_str(&format!(
                "  {:<11} {how}, next {}\n",
                s.check.as_str(),
                when(s.next_due)
            ));
        }
    }
    if !runs.is_empty() {
        t.push_str("\nrecent runs:\n");
        for r in runs.iter().take(10) {
            t.push_str(&format!(
                "  {}  {}  {}\n",
                r.id,
                when(r.started),
                run_line(r)
            ));
        }
    }
    output::write_text(global, &t)?;
    Ok(ExitCode::SUCCESS)
}

fn update_asset(global: &GlobalArgs, args: AssetUpdateArgs) -> anyhow::Result<ExitCode> {
    let (_, off) = open_existing(&args.gateway)?;
    let store = off.store();
    let asset = off.block_on(store.asset(&args.name))?;
    let mut s = asset.settings.clone();
    if let Some(l) = &args.data.label {
        s.label = Some(l.clone()).filter(|l| !l.is_empty());
    }
    if !args.data.drop.is_empty() {
        s.drop = args
            .data
            .drop
            .iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect();
    }
    let tags = args
        .tags
        .map(|t| t.into_iter().filter(|t| !t.is_empty()).collect());
    let asset = off.block_on(store.update_asset(&asset.id, args.owner, tags, Some(s)))?;
    off.audit("asset.update", &format!("asset {} updated", asset.name), "")?;
    if human(global) {
        eprintln!(
            "{} updated; `aegis check run {}` runs its checks with the new settings",
            asset.name, asset.name
        );
        Ok(ExitCode::SUCCESS)
    } else {
        json(global, &asset).map(|()| ExitCode::SUCCESS)
    }
}

fn link(args: AssetLinkArgs) -> anyhow::Result<ExitCode> {
    let (_, off) = open_existing(&args.gateway)?;
    let store = off.store();
    let model = off.block_on(store.asset(&args.model))?;
    let mut any = false;
    for (name, relation) in [
        (&args.trained_on, Relation::TrainedOn),
        (&args.evaluated_on, Relation::EvaluatedOn),
        (&args.reference, Relation::Reference),
    ] {
        let Some(name) = name else { continue };
        let data = off.block_on(store.asset(name))?;
        off.block_on(store.link(&model, relation, &data))?;
        off.audit(
            "asset.link",
            &format!("{} {} {}", model.name, relation.as_str(), data.name),
            "",
        )?;
        eprintln!("{} {} {}", model.name, relation.as_str(), data.name);
        any = true;
    }
    if !any {
        bail!(
            "say which link: --trained-on DATASET, --evaluated-on DATASET or --reference DATASET"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `aegis check …`.
pub fn check(global: &GlobalArgs, command: CheckCommand) -> anyhow::Result<ExitCode> {
    match command {
        CheckCommand::Run(args) => {
            let (config, off) = open_existing(&args.gateway)?;
            let store = off.store().clone();
            let kinds = args
                .checks
                .iter()
                .map(|c| CheckKind::parse(c.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            let asset = off.block_on(store.asset(&args.name))?;
            let jobs = off.block_on(store.check_now(&asset, &kinds))?;
            off.audit(
                "check.run",
                &format!("{} check(s) of {} queued on demand", jobs.len(), asset.name),
                "",
            )?;
            finish_registration(global, &off, &config, &[asset], &jobs, args.no_wait)
        }
        CheckCommand::List(args) => {
            let (_, off) = open_existing(&args.gateway)?;
            let store = off.store();
            let asset = off.block_on(store.asset(&args.name))?;
            let runs = off.block_on(store.runs(&asset.id, None, 100))?;
            if !human(global) {
                return json(global, &runs).map(|()| ExitCode::SUCCESS);
            }
            let mut t = String::new();
            for r in &runs {
                t.push_str(&format!(
                    "{}  {}  {:>7} ms  {}\n",
                    r.id,
                    when(r.started),
                    r.duration_ms,
                    run_line(r)
                ));
            }
            if runs.is_empty() {
                t.push_str(&format!("no runs yet: `aegis check run {}`\n", asset.name));
            }
            output::write_text(global, &t)?;
            Ok(ExitCode::SUCCESS)
        }
        CheckCommand::Show(args) => {
            let (_, off) = open_existing(&args.gateway)?;
            let run = off.block_on(off.store().run(&args.id, args.report))?;
            if args.report || !human(global) {
                return json(global, &run).map(|()| ExitCode::SUCCESS);
            }
            output::write_text(
                global,
                &format!(
                    "{}\n  started {} ({}), {} ms, worker {}\n  {}\n  `aegis check show {} --report` prints the full report\n",
                    run.id,
                    when(run.started),
                    run.cause,
                    run.duration_ms,
                    run.worker,
                    run_line(&run),
                    run.id
                ),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        CheckCommand::Schedule(args) => {
            let (_, off) = open_existing(&args.gateway)?;
            let store = off.store();
            let kind = CheckKind::parse(&args.check)?;
            let asset = off.block_on(store.asset(&args.name))?;
            let every = match &args.every {
                Some(text) => parse_duration(text)?,
                None => 0,
            };
            if args.every.is_none() && args.cron.is_none() && !args.off {
                bail!("say when: --every 24h, --cron '30 2 * * *' or --off");
            }
            let schedule =
                off.block_on(store.set_schedule(&asset, kind, every, args.cron.as_deref()))?;
            off.audit(
                "check.schedule",
                &format!(
                    "schedule of {} on {}: every {} s, cron {:?}",
                    kind.as_str(),
                    asset.name,
                    schedule.every_secs,
                    schedule.cron
                ),
                "",
            )?;
            if human(global) {
                if schedule.enabled {
                    eprintln!(
                        "{} of {} next runs {}",
                        kind.as_str(),
                        asset.name,
                        when(schedule.next_due)
                    );
                } else {
                    eprintln!(
                        "{} of {} now runs only on new versions and on demand",
                        kind.as_str(),
                        asset.name
                    );
                }
                Ok(ExitCode::SUCCESS)
            } else {
                json(global, &schedule).map(|()| ExitCode::SUCCESS)
            }
        }
    }
}

/// `30m`, `12h`, `7d`, `90s` as seconds.
fn parse_duration(text: &str) -> anyhow::Result<i64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = num.parse().with_context(|| {
        format!("duration {text:?}: give a number and a unit, e.g. 30m, 12h or 7d")
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" | "" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("duration {text:?}: the unit is s, m, h or d"),
    };
    if secs <= 0 {
        bail!("duration {text:?} must be positive");
    }
    Ok(secs)
}

fn human_duration(secs: i64) -> String {
    if secs % 86_400 == 0 {
        format!("{} d", secs / 86_400)
    } else if secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// `aegis findings …`.
pub fn findings(global: &GlobalArgs, command: FindingsCommand) -> anyhow::Result<ExitCode> {
    match command {
        FindingsCommand::List(args) => {
            let (_, off) = open_existing(&args.gateway)?;
            let filter = FindingFilter {
                asset: args.asset,
                source: args.pillar,
                severity: args.severity,
                state: args.state,
                owner: args.owner,
                limit: args.limit,
                cursor: args.cursor,
            };
            let page = off.block_on(off.store().list_findings(&filter))?;
            if !human(global) {
                return json(global, &page).map(|()| ExitCode::SUCCESS);
            }
            let mut t = String::new();
            if page.findings.is_empty() {
                t.push_str(
                    "no findings match (`--state all` includes resolved and dismissed ones)\n",
                );
            } else {
                t.push_str(&format!(
                    "{:<35} {:<8} {:<14} {:<18} {:<10} {}\n",
                    "FINGERPRINT", "SEVERITY", "STATE", "ASSET", "SOURCE", "TITLE"
                ));
            }
            for f in &page.findings {
                let state = if f.accepted_until > aegis_store::now_secs() {
                    "accepted".to_string()
                } else {
                    f.state.as_str().to_string()
                };
                t.push_str(&format!(
                    "{:<35} {:<8} {:<14} {:<18} {:<10} {}\n",
                    f.fingerprint,
                    f.finding.severity.as_str(),
                    state,
                    f.asset,
                    f.source,
                    f.finding.title
                ));
            }
            if let Some(next) = &page.next {
                t.push_str(&format!("more: --cursor {next}\n"));
            }
            output::write_text(global, &t)?;
            Ok(ExitCode::SUCCESS)
        }
        FindingsCommand::Show(args) => {
            let (_, off) = open_existing(&args.gateway)?;
            let store = off.store();
            let f = off.block_on(store.finding(&args.fingerprint))?;
            let history = off.block_on(store.finding_events(&args.fingerprint))?;
            if !human(global) {
                return json(
                    global,
                    &serde_json::json!({"finding": f, "history": history}),
                )
                .map(|()| ExitCode::SUCCESS);
            }
            let mut t = format!(
                "{} [{}] {}\n  {} on {} ({}), state {}{}{}\n  {}\n",
                f.finding.rule.as_str(),
                f.finding.severity.as_str(),
                f.finding.title,
                f.fingerprint,
                f.asset,
                f.source,
                f.state.as_str(),
                if f.accepted_until > 0 {
                    format!(", risk accepted until {}", when(f.accepted_until))
                } else {
                    String::new()
                },
                if f.owner.is_empty() {
                    String::new()
                } else {
                    format!(", owner {}", f.owner)
                },
                f.finding.message
            );
            if let Some(fix) = &f.finding.remediation {
                t.push_str(&format!("  fix: {fix}\n"));
            }
            for r in &f.finding.refs {
                t.push_str(&format!("  see: {} {}\n", r.id, r.url));
            }
            if !f.finding.evidence.is_null() {
                t.push_str(&format!("  evidence: {}\n", f.finding.evidence));
            }
            t.push_str(&format!(
                "  first seen {}, last seen {}, {} occurrence(s)\n  history:\n",
                when(f.first_seen),
                when(f.last_seen),
                f.occurrences
            ));
            for e in &history {
                t.push_str(&format!(
                    "    {}  {:<20} {:<18} {} -> {}{}\n",
                    when(e.ts),
                    e.action,
                    e.actor,
                    if e.from_state.is_empty() {
                        "-"
                    } else {
                        &e.from_state
                    },
                    e.to_state,
                    if e.comment.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", e.comment)
                    }
                ));
            }
            output::write_text(global, &t)?;
            Ok(ExitCode::SUCCESS)
        }
        FindingsCommand::Triage(args) => {
            let (_, off) = open_existing(&args.gateway)?;
            let triage = Triage {
                state: args.state.as_deref().map(VexState::parse).transpose()?,
                justification: args.justification,
                comment: args.comment,
                owner: args.owner,
                accept_days: args.accept_days,
            };
            let (before, after) = off.block_on(off.store().triage(
                &args.fingerprint,
                &triage,
                &Offline::actor(),
            ))?;
            off.audit(
                "finding.triage",
                &aegis_store::findings::triage_summary(&before, &after, &triage.comment),
                "",
            )?;
            if human(global) {
                eprintln!(
                    "{}: {} -> {}{}",
                    after.fingerprint,
                    before.state.as_str(),
                    after.state.as_str(),
                    if after.accepted_until > 0 {
                        format!(", risk accepted until {}", when(after.accepted_until))
                    } else {
                        String::new()
                    }
                );
                Ok(ExitCode::SUCCESS)
            } else {
                json(global, &after).map(|()| ExitCode::SUCCESS)
            }
        }
    }
}

/// `aegis posture`.
pub fn posture(global: &GlobalArgs, args: PostureArgs) -> anyhow::Result<ExitCode> {
    let (_, off) = open_existing(&args.gateway)?;
    let postures = off.block_on(off.store().posture(args.name.as_deref()))?;
    match global.format {
        OutputFormat::Json => json(global, &postures)?,
        OutputFormat::Html => output::write_text(global, &aegis_store::posture::html(&postures))?,
        _ => {
            let mut t = String::new();
            if postures.is_empty() {
                t.push_str("no assets yet: `aegis model add NAME FILE` registers the first\n");
            }
            for p in &postures {
                t.push_str(&format!(
                    "{} ({} v{}, owner {}): {} — open findings {}{}{}\n",
                    p.asset,
                    p.kind.as_str(),
                    p.version,
                    if p.owner.is_empty() {
                        "nobody"
                    } else {
                        &p.owner
                    },
                    p.verdict,
                    open_line(&p.open),
                    if p.signature.is_empty() {
                        String::new()
                    } else {
                        format!(", signature {}", p.signature)
                    },
                    if p.pending > 0 {
                        format!(", {} check(s) pending", p.pending)
                    } else {
                        String::new()
                    }
                ));
                for c in &p.checks {
                    t.push_str(&format!(
                        "  {:<11} {:<8} {:<5} {:<20} {}\n",
                        c.check.as_str(),
                        c.status,
                        if c.version > 0 {
                            format!("v{}", c.version)
                        } else {
                            "-".into()
                        },
                        when(c.finished),
                        c.summary
                    ));
                }
            }
            output::write_text(global, &t)?;
        }
    }
    Ok(exit_for(global, &postures))
}

/// `aegis report import`.
pub fn report(global: &GlobalArgs, command: ReportCommand) -> anyhow::Result<ExitCode> {
    let ReportCommand::Import(args) = command;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let report: aegis_core::Report = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not an Aegis JSON report (write one with `--format json -o FILE`)",
            args.file.display()
        )
    })?;
    let worst = report.max_severity();
    let (_, off) = open_existing(&args.gateway)?;
    let store = off.store();
    let asset = off.block_on(store.asset(&args.asset))?;
    let run = off.block_on(store.import_report(&asset, report, &Offline::actor()))?;
    off.audit(
        "report.import",
        &format!(
            "{} report {} imported for {}: {}",
            run.kind.as_str(),
            args.file.display(),
            asset.name,
            run.summary
        ),
        "",
    )?;
    let _ = off.block_on(store.deliver_due(Default::default()));
    if human(global) {
        eprintln!(
            "{}: {} run {} recorded ({})",
            asset.name,
            run.kind.as_str(),
            run.id,
            run.summary
        );
    } else {
        json(global, &run)?;
    }
    Ok(match worst {
        Some(w) if w >= global.fail_on => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn read_stdin_secret(what: &str) -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut s)
        .with_context(|| format!("reading the {what} from standard input"))?;
    let s = s.trim_end_matches(['\r', '\n']).to_string();
    if s.is_empty() {
        bail!("standard input held no {what}");
    }
    Ok(s)
}

/// `aegis notify …`.
pub fn notify(global: &GlobalArgs, command: NotifyCommand) -> anyhow::Result<ExitCode> {
    match command {
        NotifyCommand::Add(args) => notify_add(*args),
        NotifyCommand::List(gateway) => {
            let (_, off) = open_existing(&gateway)?;
            let channels: Vec<Channel> = off
                .block_on(off.store().channels())?
                .iter()
                .map(Channel::redacted)
                .collect();
            if !human(global) {
                return json(global, &channels).map(|()| ExitCode::SUCCESS);
            }
            let mut t = String::new();
            for c in &channels {
                let to = match &c.transport {
                    Transport::Webhook(w) => format!("webhook {}", w.url),
                    Transport::Email(e) => format!("email {} via {}", e.to.join(", "), e.server),
                };
                t.push_str(&format!(
                    "{:<16} {}  min {}{}{}{}\n",
                    c.name,
                    to,
                    c.min_severity,
                    if c.tags.is_empty() {
                        String::new()
                    } else {
                        format!(", tags {}", c.tags.join(","))
                    },
                    if c.digest_secs > 0 {
                        format!(", digest {}", human_duration(c.digest_secs))
                    } else {
                        String::new()
                    },
                    if c.enabled { "" } else { " (off)" }
                ));
            }
            if channels.is_empty() {
                t.push_str(
                    "no channels: nobody is told about findings yet (`aegis notify add --help`)\n",
                );
            }
            output::write_text(global, &t)?;
            Ok(ExitCode::SUCCESS)
        }
        NotifyCommand::Remove(args) => {
            let (_, off) = open_existing(&args.gateway)?;
            off.block_on(off.store().remove_channel(&args.name))?;
            off.audit(
                "channel.remove",
                &format!("notification channel {} removed", args.name),
                "",
            )?;
            eprintln!("channel {} removed", args.name);
            Ok(ExitCode::SUCCESS)
        }
        NotifyCommand::Test(args) => {
            let (_, off) = open_existing(&args.gateway)?;
            let result = off.block_on(off.store().test_channel(&args.name));
            off.audit(
                if result.is_ok() {
                    "channel.test"
                } else {
                    "channel.test_failed"
                },
                &format!("test message to channel {}", args.name),
                "",
            )?;
            match result {
                Ok(()) => {
                    if human(global) {
                        eprintln!("test message delivered to {}", args.name);
                    } else {
                        json(global, &serde_json::json!({"delivered": true}))?;
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(anyhow::Error::new(e).context(format!(
                    "the test message to {} was not delivered",
                    args.name
                ))),
            }
        }
        NotifyCommand::Deliveries(args) => deliveries(global, args),
    }
}

fn notify_add(args: NotifyAddArgs) -> anyhow::Result<ExitCode> {
    let transport = match (&args.webhook, &args.email_server) {
        (Some(url), None) => {
            if !args.secret_stdin {
                bail!("a webhook needs its signing secret: pipe it in with --secret-stdin (at least 16 characters)");
            }
            Transport::Webhook(WebhookConfig {
                url: url.clone(),
                secret: read_stdin_secret("webhook secret")?,
                ca_file: args.ca_file.clone(),
            })
        }
        (None, Some(server)) => Transport::Email(EmailConfig {
            server: server.clone(),
            from: args
                .from
                .clone()
                .context("an email channel needs --from ADDRESS")?,
            to: args.to.clone(),
            security: args.smtp_security.clone(),
            username: args.smtp_user.clone(),
            password: if args.password_stdin {
                Some(read_stdin_secret("SMTP password")?)
            } else {
                None
            },
            ca_file: args.ca_file.clone(),
        }),
        _ => bail!("say where messages go: --webhook URL or --email-server HOST:PORT"),
    };
    let digest_secs = match &args.digest {
        Some(d) => parse_duration(d)?,
        None => 0,
    };
    let channel = Channel {
        name: args.name.clone(),
        transport,
        min_severity: args.min_severity,
        tags: args.tags.clone(),
        digest_secs,
        enabled: true,
    };
    let (_, off) = open(&args.gateway)?;
    off.block_on(off.store().put_channel(&channel))?;
    off.audit(
        "channel.save",
        &format!(
            "notification channel {} saved (min severity {})",
            channel.name, channel.min_severity
        ),
        "",
    )?;
    eprintln!(
        "channel {} saved: findings of severity {} and above go there; `aegis notify test {}` sends a test",
        channel.name, channel.min_severity, channel.name
    );
    Ok(ExitCode::SUCCESS)
}

fn deliveries(global: &GlobalArgs, args: DeliveriesArgs) -> anyhow::Result<ExitCode> {
    let (_, off) = open_existing(&args.gateway)?;
    let list = off.block_on(off.store().deliveries(args.state.as_deref(), args.limit))?;
    if !human(global) {
        return json(global, &list).map(|()| ExitCode::SUCCESS);
    }
    let mut t = String::new();
    for d in &list {
        t.push_str(&format!(
            "{}  {:<16} {:<9} {} event(s), {} attempt(s){}\n",
            when(d.created),
            d.channel,
            d.state,
            d.events,
            d.attempts,
            if d.last_error.is_empty() {
                String::new()
            } else {
                format!(": {}", d.last_error)
            }
        ));
    }
    if list.is_empty() {
        t.push_str("no messages\n");
    }
    output::write_text(global, &t)?;
    Ok(ExitCode::SUCCESS)
}
