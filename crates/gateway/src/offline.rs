//! Administration without a running server, for the `aegis user|key|model|audit-log` commands: the same
//! library calls the admin API makes, on a private single-threaded runtime, against the configured database.
//! Every change is appended to the audit chain with the operating-system user as the actor.

use std::future::Future;

use crate::audit_log::{self, AuditEvent};
use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result};

/// An open database plus a runtime to drive it from synchronous code.
#[derive(Debug)]
pub struct Offline {
    runtime: tokio::runtime::Runtime,
    db: Db,
    store: aegis_store::Store,
}

impl Offline {
    /// Open the database `config` points at (creating the embedded one when absent).
    pub fn open(config: &Config) -> Result<Offline> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Server(format!("start the runtime: {e}")))?;
        if config.server.database.is_none() {
            crate::db::prepare_data_dir(&config.server.data_dir)?;
        }
        let (db, store) = runtime.block_on(async {
            let db = Db::connect(&config.database_url()).await?;
            db.load_secrets(&config.secrets_path()).await?;
            let objects_key = config.checks.objects_key(&config.server.data_dir);
            let store = db
                .open_store(
                    &config.database_url(),
                    &config.server.data_dir,
                    objects_key.as_deref(),
                )
                .await?;
            Ok::<_, Error>((db, store))
        })?;
        Ok(Offline { runtime, db, store })
    }

    /// The asset, findings and notification store.
    pub fn store(&self) -> &aegis_store::Store {
        &self.store
    }

    /// Who acts: `cli:USER` (the operating-system user).
    pub fn actor() -> String {
        std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .map(|u| format!("cli:{u}"))
            .unwrap_or_else(|_| "cli".into())
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Run a future to completion.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Append an administrative action to the audit chain.
    pub fn audit(&self, decision: &str, detail: &str, key_id: &str) -> Result<()> {
        let actor = Offline::actor();
        let event = AuditEvent {
            kind: "admin".into(),
            actor,
            key_id: key_id.into(),
            route: "cli".into(),
            decision: decision.into(),
            detail: detail.into(),
            ..AuditEvent::default()
        };
        self.block_on(audit_log::append(
            &self.db,
            &[(crate::util::now_ms(), event)],
        ))
    }

    /// Close the database.
    pub fn close(self) {
        self.runtime.block_on(self.db.close());
    }
}
