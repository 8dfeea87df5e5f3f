//! Starting and stopping the gateway: configuration overrides, database, models (scanned before loading),
//! upstreams, TLS, the bootstrap code on an empty database, the listener, and a clean shutdown that flushes the
//! audit log before the process exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::audit_log::{AuditEvent, AuditLog};
use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::identity::{self, SessionKey};
use crate::keys::{self, NewKey};
use crate::listener::{self, ListenOptions};
use crate::models::{LocalModels, ModelEvent};
use crate::server;
use crate::state::AppState;
use crate::tls;
use crate::upstream::Upstreams;
use crate::util;

/// What the command line may override in the configuration.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// `--config aegis.toml`.
    pub config: Option<PathBuf>,
    /// `--listen ADDR:PORT`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database URL`.
    pub database: Option<String>,
    /// `--plaintext`: HTTP without TLS.
    pub plaintext: bool,
}

impl ServeOptions {
    /// The configuration file (or the defaults) with the overrides applied.
    pub fn resolve(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = dir.clone();
        }
        if let Some(url) = &self.database {
            config.server.database = Some(url.clone());
        }
        if self.plaintext {
            config.server.plaintext = true;
        }
        Ok(config)
    }
}

/// What an operator needs to know once the gateway listens (its Debug hides the one-time code and key).
#[derive(Clone)]
pub struct StartupInfo {
    /// The bound address.
    pub addr: SocketAddr,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// SHA-256 fingerprint of the TLS certificate, and whether it was generated here.
    pub tls_fingerprint: Option<(String, bool)>,
    /// The certificate file (for `curl --cacert`).
    pub tls_cert: Option<PathBuf>,
    /// The database (password redacted).
    pub database: String,
    /// The secrets key file (session MAC key, sealed TOTP secrets).
    pub secrets_file: PathBuf,
    /// Model load decisions (loaded, refused, loaded despite findings).
    pub model_events: Vec<ModelEvent>,
    /// One-time code to create the first admin, when the database has no users.
    pub bootstrap_code: Option<String>,
    /// Where the console is mounted (`""`: at `/`).
    pub console_path: String,
    /// A client key for the demo model, created on the first start only (shown once).
    pub demo_key: Option<String>,
    /// Names of the models served.
    pub models: Vec<String>,
    /// Served models that could not be registered as assets (serving goes on; their checks do not run).
    pub inventory_problems: Vec<String>,
}

impl std::fmt::Debug for StartupInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartupInfo")
            .field("addr", &self.addr)
            .field("scheme", &self.scheme)
            .field("tls_fingerprint", &self.tls_fingerprint)
            .field("database", &self.database)
            .field("models", &self.models)
            .field(
                "bootstrap_code",
                &self.bootstrap_code.as_ref().map(|_| "***"),
            )
            .field("demo_key", &self.demo_key.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// A gateway running on the current tokio runtime.
#[derive(Debug)]
pub struct Running {
    /// Startup facts.
    pub info: StartupInfo,
    /// The state (for tests and in-process tools).
    pub state: Arc<AppState>,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<Result<()>>,
    writer: crate::audit_log::AuditWriterHandle,
    key_watcher: tokio::task::JoinHandle<()>,
    refusal_flusher: tokio::task::JoinHandle<()>,
    stop_flusher: tokio::sync::oneshot::Sender<()>,
    extraction_flusher: tokio::task::JoinHandle<()>,
    stop_extraction: tokio::sync::oneshot::Sender<()>,
    worker: Option<tokio::task::JoinHandle<()>>,
    stop_worker: tokio::sync::watch::Sender<bool>,
    policy_task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stop accepting, finish requests in flight, flush the audit log and close the database.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(());
        let served = match self.serving.await {
            Ok(r) => r,
            Err(e) => Err(Error::Server(format!("listener task failed: {e}"))),
        };
        // Checks in progress finish (or are recovered by the next start); no new one is claimed.
        let _ = self.stop_worker.send(true);
        if let Some(worker) = self.worker {
            let _ = worker.await;
        }
        let _ = self.policy_task.await;
        let _ = self.stop_flusher.send(());
        let _ = self.refusal_flusher.await;
        for summary in self.state.refusals.drain(std::time::Instant::now(), true) {
            self.state.audit.record(summary).await;
        }
        // Extraction-detector observations not yet written (write-behind): the periodic flusher stops after its
        // current flush, then everything pending is written.
        let _ = self.stop_extraction.send(());
        let _ = self.extraction_flusher.await;
        if let Err(e) = self.state.extraction_cache.flush(&self.state.db).await {
            eprintln!("aegis: extraction detector state not written at shutdown: {e}");
        }
        let boot = self.state.audit.boot_id().to_string();
        self.state
            .audit
            .record(AuditEvent {
                kind: crate::audit_log::SHUTDOWN_KIND.into(),
                actor: "aegis".into(),
                route: "shutdown".into(),
                decision: "stop".into(),
                detail: format!("gateway run {boot} stopped cleanly"),
                ..AuditEvent::default()
            })
            .await;
        let flushed = self.writer.shutdown(self.state.audit.clone()).await;
        self.key_watcher.abort();
        self.state.db.close().await;
        served.and(flushed)
    }
}

/// Refuse to start when a configured model was refused (schema, scan, signature), unless the operator allowed
/// a partial start: a gateway that serves fewer models than configured and exits 0 hides the failure.
fn check_models_serving(config: &Config, events: &[ModelEvent]) -> Result<()> {
    let refused: Vec<&ModelEvent> = events.iter().filter(|e| e.decision == "refused").collect();
    if refused.is_empty() || config.server.allow_partial {
        return Ok(());
    }
    let configured = config.models.len();
    let reasons: Vec<String> = refused
        .iter()
        .map(|e| format!("{}: {}", e.model, e.detail))
        .collect();
    Err(Error::Model {
        name: refused
            .iter()
            .map(|e| e.model.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        reason: format!(
            "{} of {configured} configured models refused, so the gateway did not start ({}). Fix the model \
             or its [[model]] entry, or start anyway with --allow-partial (server.allow_partial = true)",
            refused.len(),
            reasons.join("; ")
        ),
    })
}

/// Start the gateway described by `config` on the current runtime.
pub async fn start(config: Config) -> Result<Running> {
    let url = config.database_url();
    if config.server.database.is_none() {
        crate::db::prepare_data_dir(&config.server.data_dir)?;
    }
    // Models first: a configured model that is refused stops the start before anything else happens.
    let use_demo = config.models.is_empty() && config.server.demo_model;
    let (models, model_events) = if use_demo {
        LocalModels::with_demo(&config.server.data_dir)?
    } else {
        LocalModels::load(&config.models)
    };
    check_models_serving(&config, &model_events)?;
    let db = Db::connect(&url).await?;
    let secrets_file = config.secrets_path();
    db.load_secrets(&secrets_file).await?;
    let session_key = SessionKey::load_or_create(&db).await?;
    let objects_key = config.checks.objects_key(&config.server.data_dir);
    let store = db
        .open_store(&url, &config.server.data_dir, objects_key.as_deref())
        .await?;
    let mut inventory_problems = crate::inventory::register_served(
        &store,
        &crate::inventory::served_files(&config, use_demo),
        config.checks.max_bytes(),
    )
    .await;
    inventory_problems.extend(crate::inventory::register_upstreams(&store, &config).await);
    let boot = crate::util::random_token(12)?;
    let (audit, writer) = AuditLog::spawn(db.clone(), boot.clone());
    // The run's first record: every record after it carries this boot id and its number in the run.
    audit
        .record(AuditEvent {
            kind: crate::audit_log::BOOT_KIND.into(),
            actor: "aegis".into(),
            route: "startup".into(),
            decision: "start".into(),
            detail: format!(
                "gateway run {boot} started (aegis {})",
                env!("CARGO_PKG_VERSION")
            ),
            ..AuditEvent::default()
        })
        .await;

    for event in &model_events {
        audit
            .record(AuditEvent {
                kind: "model".into(),
                actor: "aegis".into(),
                model: event.model.clone(),
                route: "startup".into(),
                decision: event.decision.clone(),
                detail: event.detail.clone(),
                ..AuditEvent::default()
            })
            .await;
    }
    let upstreams = Upstreams::new(&config.upstreams)?;
    let guards = crate::guard::Guards::build(&config.models, &models).await?;

    let (tls_config, tls_fingerprint, tls_cert) = if config.server.plaintext {
        (None, None, None)
    } else {
        let material = match (&config.server.tls_cert, &config.server.tls_key) {
            (Some(cert), Some(key)) => tls::load(cert, key)?,
            _ => tls::self_signed(&config.server.data_dir, &[])?,
        };
        (
            Some(material.config.clone()),
            Some((material.fingerprint_sha256.clone(), material.generated)),
            Some(material.cert_path.clone()),
        )
    };

    let bootstrap_code = identity::bootstrap_code(&db, util::now_secs()).await?;
    let demo_key = if use_demo && keys::list_keys(&db).await?.is_empty() {
        let new = NewKey::from_defaults(
            "demo",
            "demo",
            vec![crate::models::DEMO_NAME.to_string()],
            &config.defaults,
        );
        let (key, secret) = keys::create_key(&db, &new, util::now_secs()).await?;
        audit
            .record(AuditEvent {
                kind: "admin".into(),
                actor: "aegis".into(),
                key_id: key.id.clone(),
                model: crate::models::DEMO_NAME.into(),
                route: "startup".into(),
                decision: "key.create".into(),
                detail: "demo client key created on first start".into(),
                ..AuditEvent::default()
            })
            .await;
        Some(secret.expose().to_string())
    } else {
        None
    };

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| Error::Server(format!("bind {}: {e}", config.server.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Server(format!("local address: {e}")))?;

    let models_served = models.list().into_iter().map(|m| m.name).collect();
    let header_timeout = std::time::Duration::from_millis(config.server.header_timeout_ms);
    let tls_on = tls_config.is_some();
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker = config.checks.worker.then(|| {
        let worker = crate::inventory::worker(&store, &config);
        tokio::spawn(worker.run(worker_stopped))
    });
    let state = Arc::new(AppState::new(
        db.clone(),
        store,
        config,
        session_key,
        audit,
        models,
        upstreams,
        tls_on,
        guards,
    )?);
    // The serving policy follows the findings store: computed once before the first request, then every 5 s.
    let local_models = state.models.names();
    state
        .serving
        .refresh(&state.store, &state.config, &local_models, &state.audit)
        .await;
    let policy_task = {
        let state = state.clone();
        let mut stopped = stop_worker.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                state
                    .serving
                    .refresh(&state.store, &state.config, &local_models, &state.audit)
                    .await;
            }
        })
    };
    // Key changes made elsewhere (another replica, the CLI) reach this gateway's key cache within 50 ms.
    let key_watcher = state
        .key_cache
        .spawn_watcher(db.clone(), std::time::Duration::from_millis(50));
    // Summaries of sampled refusals are written when their window ends, even if the flood stopped.
    // It stops on a signal between batches, never in the middle of one, so no drained summary is lost.
    let (stop_flusher, mut flusher_stopped) = tokio::sync::oneshot::channel::<()>();
    let refusal_flusher = {
        let state = state.clone();
        let every = std::time::Duration::from_secs(state.config.server.refusal_summary_secs.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut flusher_stopped => return,
                }
                for summary in state.refusals.drain(std::time::Instant::now(), false) {
                    state.audit.record(summary).await;
                }
            }
        })
    };
    // Extraction-detector states pending write-behind reach the database within about WRITE_EVERY.
    let (stop_extraction, mut extraction_stopped) = tokio::sync::oneshot::channel::<()>();
    let extraction_flusher = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::extraction::WRITE_EVERY);
            loop {
                // Stops between flushes only: a flush holds entries it took out of the cache.
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut extraction_stopped => return,
                }
                if let Err(e) = state.extraction_cache.flush_due(&state.db).await {
                    crate::log::emit(
                        crate::log::Level::Warn,
                        "extraction_state_not_written",
                        &[("cause", e.to_string().into())],
                    );
                }
            }
        })
    };
    let app = server::router(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = &state.config.server;
    let options = ListenOptions {
        header_timeout,
        tls: tls_config,
        max_connections: server.max_connections,
        limits: crate::connections::Limits {
            idle: std::time::Duration::from_secs(server.idle_timeout_secs.max(1)),
            write: std::time::Duration::from_secs(server.write_timeout_secs.max(1)),
            per_address: server.max_connections_per_address,
            buffered: server.max_buffered_mib.max(1).saturating_mul(1 << 20),
        },
        trusted_proxies: server.trusted_proxies.clone(),
    };
    let serving = tokio::spawn(listener::serve(listener, app, options, async move {
        let _ = stopped.await;
    }));
    Ok(Running {
        info: StartupInfo {
            addr,
            scheme: if tls_on { "https" } else { "http" },
            tls_fingerprint,
            tls_cert,
            database: crate::db::redact_url(&url),
            secrets_file: secrets_file.clone(),
            model_events,
            bootstrap_code,
            console_path: server.console_path.clone(),
            demo_key,
            models: models_served,
            inventory_problems,
        },
        state,
        worker,
        stop_worker,
        policy_task,
        stop,
        serving,
        writer,
        key_watcher,
        refusal_flusher,
        stop_flusher,
        extraction_flusher,
        stop_extraction,
    })
}

/// Run the gateway until Ctrl-C or SIGTERM, on a runtime of its own; `ready` is called once it listens.
pub fn run(config: Config, ready: impl FnOnce(&StartupInfo)) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Server(format!("start the runtime: {e}")))?;
    runtime.block_on(async move {
        let running = start(config).await?;
        ready(&running.info);
        wait_for_signal().await;
        running.shutdown().await
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
