//! The gateway's side of the asset store: every model it serves is an asset (registered at start, a new version
//! whenever the file changes), checks run by themselves on a worker beside the listener, and live signals
//! (drift alerts, extraction alarms) become findings through [`crate::sinks::Sinks`].

use std::path::{Path, PathBuf};

use aegis_store::assets::{AssetKind, AssetSettings, NewAsset, Relation};
use aegis_store::worker::{Worker, WorkerConfig};
use aegis_store::Store;

use crate::config::Config;

/// The worker id prefix of this node: its host name, so a restarted gateway recovers its own interrupted checks
/// at once and replicas on other hosts wait for the lease.
pub(crate) fn worker_prefix() -> String {
    format!("serve@{}:", aegis_store::worker::node_name())
}

/// The models this gateway serves, as `(name, file, reference data)`.
pub(crate) fn served_files(config: &Config, demo: bool) -> Vec<(String, PathBuf, Option<PathBuf>)> {
    if demo {
        let dir = config.server.data_dir.join("demo");
        return vec![(
            crate::models::DEMO_NAME.to_string(),
            dir.join(format!("{}.onnx", crate::models::DEMO_NAME)),
            None,
        )];
    }
    config
        .models
        .iter()
        .map(|m| (m.name.clone(), m.path.clone(), m.reference.clone()))
        .collect()
}

/// Register every served model as an asset (tagged `served`), link its drift reference, and queue checks of
/// versions that are new. Problems are reported, never fatal: serving does not depend on the inventory.
pub(crate) async fn register_served(
    store: &Store,
    served: &[(String, PathBuf, Option<PathBuf>)],
    max_bytes: u64,
) -> Vec<String> {
    let mut problems = Vec::new();
    // The gateway itself: sign-in lockouts and the audit chain are findings on it.
    if let Err(e) = ensure_asset(
        store,
        crate::signals::GATEWAY_ASSET,
        AssetKind::Endpoint,
        "",
        None,
    )
    .await
    {
        problems.push(format!("{}: {e}", crate::signals::GATEWAY_ASSET));
    }
    for (name, path, reference) in served {
        if let Err(e) = register_one(store, name, path, reference.as_deref(), max_bytes).await {
            problems.push(format!("model {name}: {e}"));
        }
    }
    problems
}

/// Register every upstream the gateway proxies as an endpoint asset (tagged `served`), so the inventory lists
/// everything it serves; its findings (extraction alarms, lockouts) land there. Endpoints have no file checks.
pub(crate) async fn register_upstreams(store: &Store, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    for up in &config.upstreams {
        let result = async {
            if store.find_asset(&up.name).await?.is_some() {
                return Ok(());
            }
            store
                .create_asset(NewAsset {
                    name: up.name.clone(),
                    kind: Some(AssetKind::Endpoint),
                    endpoint: up.url.clone(),
                    tags: vec!["served".into()],
                    ..NewAsset::default()
                })
                .await
                .map(|_| ())
        }
        .await;
        if let Err(e) = result {
            problems.push(format!("upstream {}: {e}", up.name));
        }
    }
    problems
}

async fn register_one(
    store: &Store,
    name: &str,
    path: &Path,
    reference: Option<&Path>,
    max_bytes: u64,
) -> aegis_store::Result<()> {
    if path.extension().is_some_and(|e| e == "age") {
        // Encrypted at rest: the store would hold ciphertext its checks cannot read.
        return Ok(());
    }
    let asset = ensure_asset(store, name, AssetKind::Model, "", Some(name)).await?;
    let (version, new) = store.add_version_from_path(&asset, path, max_bytes).await?;
    if new {
        store.on_new_version(&asset, &version).await?;
    }
    if let Some(reference) = reference {
        let data = ensure_asset(
            store,
            &format!("{name}-reference"),
            AssetKind::Dataset,
            "reference",
            None,
        )
        .await?;
        let (version, new) = store
            .add_version_from_path(&data, reference, max_bytes)
            .await?;
        store.link(&asset, Relation::Reference, &data).await?;
        if new {
            store.on_new_version(&data, &version).await?;
        }
    }
    Ok(())
}

async fn ensure_asset(
    store: &Store,
    name: &str,
    kind: AssetKind,
    role: &str,
    serves_as: Option<&str>,
) -> aegis_store::Result<aegis_store::assets::Asset> {
    if let Some(asset) = store.find_asset(name).await? {
        return Ok(asset);
    }
    let created = store
        .create_asset(NewAsset {
            name: name.to_string(),
            kind: Some(kind),
            // The gateway's own asset: where it listens is not known before it binds.
            endpoint: if kind == AssetKind::Endpoint {
                "https://127.0.0.1/".into()
            } else {
                String::new()
            },
            role: role.to_string(),
            tags: vec!["served".into()],
            settings: AssetSettings {
                serves_as: serves_as.map(str::to_string),
                ..AssetSettings::default()
            },
            ..NewAsset::default()
        })
        .await;
    match created {
        Ok(a) => Ok(a),
        // Another replica registered it between our read and our insert.
        Err(e) => store.find_asset(name).await?.ok_or(e),
    }
}

/// The worker this node runs, configured from `[checks]`.
pub(crate) fn worker(store: &Store, config: &Config) -> Worker {
    Worker::new(
        store.clone(),
        &worker_prefix(),
        WorkerConfig {
            settings: config.checks.settings(),
            concurrency: config.checks.concurrency.max(1),
            ..WorkerConfig::default()
        },
    )
}
