//! The gateway's database: embedded SQLite by default, PostgreSQL when several replicas share state.
//!
//! Both backends run the same SQL through sqlx's `Any` driver, so every statement here and in the other modules
//! is written in the common dialect: `$1` placeholders (SQLite accepts them), `BIGINT`/`DOUBLE PRECISION`/`TEXT`
//! columns, `INSERT … ON CONFLICT … DO UPDATE … WHERE … RETURNING` for atomic counters, and `CASE` instead of
//! `max`/`GREATEST`. Nothing is auto-incremented: identifiers are random or, for the audit log, assigned by the
//! single chain writer under the head row's lock. Flags are `BIGINT` 0/1 and times are Unix seconds (`_ms`:
//! milliseconds), because those are the types the `Any` driver carries unchanged on both backends.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::{Executor, Row};

use crate::error::{Error, Result};

/// Make the data directory private before anything is stored in it: created `0700` when absent, and the
/// embedded database `aegis.db` created `0600` (SQLite gives its `-wal` and `-shm` files the database's mode).
/// The database holds the session key, TOTP secrets and session ids, so a directory or database that other
/// users can read is refused with the command that fixes it, as the vault refuses a readable key file.
pub fn prepare_data_dir(dir: &Path) -> Result<()> {
    let loose = |path: &Path, what: &str, mode: u32, fix: u32| {
        Error::Config {
            path: path.to_path_buf(),
            reason: format!(
                "the {what} is readable by other users (mode {:03o}); it holds the gateway's secrets: run \
                 `chmod {fix:o} {}`",
                mode & 0o777,
                path.display()
            ),
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        match std::fs::metadata(dir) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                return Err(loose(
                    dir,
                    "data directory",
                    meta.permissions().mode(),
                    0o700,
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(Error::io("create", dir))?;
            }
            Err(e) => return Err(Error::io("read", dir)(e)),
        }
        let file = dir.join("aegis.db");
        match std::fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                return Err(loose(&file, "database", meta.permissions().mode(), 0o600));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&file)
                    .map(drop)
                    .or_else(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => Ok(()),
                        _ => Err(e),
                    })
                    .map_err(Error::io("create", &file))?;
            }
            Err(e) => return Err(Error::io("read", &file)(e)),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = loose;
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    Ok(())
}

/// `prev_hash` of the first audit record (the audit chain's genesis; the schema seeds the chain head with it).
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Which database engine is behind the pool (defined by the store, which shares the database).
pub use aegis_store::Backend;

/// The schema version this build writes; a database with a newer one is refused.
pub const SCHEMA_VERSION: i64 = 2;

/// Tables, in creation order. One statement per entry (PostgreSQL's extended protocol takes one at a time).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        disabled BIGINT NOT NULL DEFAULT 0,
        totp_secret TEXT,
        totp_last_step BIGINT NOT NULL DEFAULT 0,
        failed_logins BIGINT NOT NULL DEFAULT 0,
        factor_failures BIGINT NOT NULL DEFAULT 0,
        locked_until BIGINT NOT NULL DEFAULT 0,
        created BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS recovery_codes (
        username TEXT NOT NULL,
        code_hash TEXT NOT NULL,
        used BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (username, code_hash))",
    "CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        created BIGINT NOT NULL,
        expires BIGINT NOT NULL,
        revoked BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        name TEXT NOT NULL,
        owner TEXT NOT NULL,
        models TEXT NOT NULL,
        routes TEXT NOT NULL,
        created BIGINT NOT NULL,
        expires BIGINT NOT NULL DEFAULT 0,
        revoked BIGINT NOT NULL DEFAULT 0,
        rate_per_sec DOUBLE PRECISION NOT NULL,
        burst BIGINT NOT NULL,
        daily_budget BIGINT NOT NULL DEFAULT 0,
        monthly_budget BIGINT NOT NULL DEFAULT 0,
        replaced_by TEXT)",
    "CREATE TABLE IF NOT EXISTS rate_state (
        key_id TEXT PRIMARY KEY,
        tat DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS usage_counters (
        key_id TEXT NOT NULL,
        period TEXT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (key_id, period))",
    "CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGINT PRIMARY KEY,
        ts_ms BIGINT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        key_id TEXT NOT NULL,
        model TEXT NOT NULL,
        route TEXT NOT NULL,
        input_digest TEXT NOT NULL,
        decision TEXT NOT NULL,
        status BIGINT NOT NULL,
        latency_us BIGINT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        boot TEXT NOT NULL DEFAULT '',
        boot_seq BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS audit_head (
        id BIGINT PRIMARY KEY,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL)",
    // One PRADA detector state per (API key, local model); `version` is compared and bumped on every write
    // (optimistic concurrency), so replicas sharing the database extend one state.
    "CREATE TABLE IF NOT EXISTS extraction_state (
        key_id TEXT NOT NULL,
        model TEXT NOT NULL,
        state TEXT NOT NULL,
        version BIGINT NOT NULL,
        alarmed BIGINT NOT NULL DEFAULT 0,
        alarm_ts BIGINT NOT NULL DEFAULT 0,
        next_allowed_ms BIGINT NOT NULL DEFAULT 0,
        updated BIGINT NOT NULL,
        PRIMARY KEY (key_id, model))",
    // The last closed drift window of each local model.
    "CREATE TABLE IF NOT EXISTS drift_reports (
        model TEXT PRIMARY KEY,
        ts BIGINT NOT NULL,
        report TEXT NOT NULL,
        alert BIGINT NOT NULL)",
];

/// A connection pool plus the backend it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time; two connections of this process racing for it would meet SQLite's
    /// busy handler, which sleeps in whole milliseconds. Hot-path writers (limits, the audit chain) take this
    /// lock first, so they queue in memory instead.
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The secrets key bound to this database ([`Db::load_secrets`]).
    secrets: std::sync::Arc<std::sync::OnceLock<crate::secrets::Secrets>>,
}

impl Db {
    /// Connect to `url` (`sqlite://PATH`, `postgres://…`) and bring the schema up to date.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::Invalid(format!(
                "database URL must start with sqlite:// or postgres:// (got {})",
                redact_url(url)
            )));
        };
        preflight(url, backend).await?;
        let mut options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            // A ping before every acquire costs a round trip to the connection's worker thread; a broken
            // connection fails its statement instead, and the pool replaces it.
            .test_before_acquire(false);
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; NORMAL sync is durable across process crashes.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await.map_err(Error::db("connect"))?;
        let db = Db {
            pool,
            backend,
            write_lock: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            secrets: Default::default(),
        };
        db.migrate().await.map_err(|e| match e {
            Error::Db { source, .. } if crate::error::storage_unavailable(&source) => {
                let target = match backend {
                    Backend::Sqlite => sqlite_path(url),
                    Backend::Postgres => redact_url(url),
                };
                let reason = explain(&source, backend, &target);
                Error::Storage { target, reason }
            }
            other => other,
        })?;
        Ok(db)
    }

    /// Open the asset store on this database (its tables are created beside the gateway's), with its files
    /// under `data_dir`, encrypted at rest with `objects_key` when given. A database that cannot be written is
    /// explained as at [`Db::connect`].
    pub async fn open_store(
        &self,
        url: &str,
        data_dir: &Path,
        objects_key: Option<&Path>,
    ) -> Result<aegis_store::Store> {
        let store = aegis_store::Store::open(self.pool.clone(), self.backend, data_dir)
            .await
            .map_err(|e| match e {
                aegis_store::Error::Db { source, .. }
                    if crate::error::storage_unavailable(&source) =>
                {
                    let target = match self.backend {
                        Backend::Sqlite => sqlite_path(url),
                        Backend::Postgres => redact_url(url),
                    };
                    let reason = explain(&source, self.backend, &target);
                    Error::Storage { target, reason }
                }
                other => Error::Store(other),
            })?
            .with_write_lock(self.write_lock.clone());
        match objects_key {
            Some(key) => Ok(store.with_encryption(key)?),
            None => Ok(store),
        }
    }

    /// Open (creating it when absent) the embedded database `aegis.db` in `dir`, with the secrets key
    /// `secrets.key` beside it.
    pub async fn open_data_dir(dir: &Path) -> Result<Db> {
        prepare_data_dir(dir)?;
        let db = Db::connect(&sqlite_url(&dir.join("aegis.db"))).await?;
        db.load_secrets(&dir.join(crate::secrets::DEFAULT_FILE))
            .await?;
        Ok(db)
    }

    /// Read (or create) the secrets key file at `path` and bind it to this database (see [`crate::secrets`]):
    /// sessions and TOTP secrets need it.
    pub async fn load_secrets(&self, path: &Path) -> Result<()> {
        let secrets = crate::secrets::Secrets::load_or_create(path)?;
        bind_secrets(self, &secrets, path).await?;
        let _ = self.secrets.set(secrets);
        Ok(())
    }

    /// The bound secrets key.
    pub(crate) fn secrets(&self) -> Result<&crate::secrets::Secrets> {
        self.secrets.get().ok_or_else(|| {
            Error::Internal("no secrets key file is loaded for this database".into())
        })
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Hold this while writing on the hot path (SQLite: serialises this process's writers; PostgreSQL: no-op,
    /// row locks do the work).
    pub async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Begin a [`Transaction`] on a connection of its own.
    pub async fn begin(&self) -> Result<Transaction, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        conn.execute("BEGIN").await?;
        Ok(Transaction { conn: Some(conn) })
    }

    /// Close every connection (waits for queries in flight).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<()> {
        for statement in SCHEMA {
            sqlx::query(sqlx::AssertSqlSafe(*statement))
                .execute(&self.pool)
                .await
                .map_err(Error::db("create tables"))?;
        }
        sqlx::query(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(GENESIS_HASH)
        .execute(&self.pool)
        .await
        .map_err(Error::db("create the audit head"))?;
        match self.setting("schema_version").await? {
            None => {
                self.set_setting("schema_version", &SCHEMA_VERSION.to_string())
                    .await
            }
            Some(v) => match v.parse::<i64>() {
                Ok(1) => self.upgrade_from_1().await,
                Ok(v) if v <= SCHEMA_VERSION => Ok(()),
                _ => Err(Error::Corrupt(format!(
                    "schema version {v} is newer than this build's {SCHEMA_VERSION}; upgrade aegis"
                ))),
            },
        }
    }

    /// Version 2 adds the audit log's boot id and per-boot number (empty and 0 for older records, which verify
    /// as before), and each user's count of wrong second factors.
    async fn upgrade_from_1(&self) -> Result<()> {
        let done = sqlx::query("SELECT factor_failures FROM users LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .is_ok();
        // Another replica may have upgraded between our read of the version and now.
        if done {
            return self.set_setting("schema_version", "2").await;
        }
        for statement in [
            "ALTER TABLE audit_log ADD COLUMN boot TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE audit_log ADD COLUMN boot_seq BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE users ADD COLUMN factor_failures BIGINT NOT NULL DEFAULT 0",
        ] {
            sqlx::query(statement)
                .execute(&self.pool)
                .await
                .map_err(Error::db("upgrade the audit log to schema 2"))?;
        }
        self.set_setting("schema_version", "2").await
    }

    /// A value from the `settings` table.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db("read a setting"))?;
        row.map(|r| r.try_get::<String, _>("value"))
            .transpose()
            .map_err(Error::db("read a setting"))
    }

    /// Write (insert or replace) a setting.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(Error::db("write a setting"))?;
        Ok(())
    }

    /// Insert a setting only when it is absent, then return the stored value (the first writer wins, so
    /// replicas starting together agree on generated secrets).
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(Error::db("write a setting"))?;
        self.setting(name)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("setting {name} vanished")))
    }
}

/// The setting holding the secrets key file's check value.
const SECRETS_CHECK_SETTING: &str = "secrets_check";
/// The setting that held the session key in the clear (schema 1); removed once a key file is bound.
const OLD_SESSION_SETTING: &str = "session_key";

/// Bind `secrets` to `db`: the first binding stores its check value; later ones must match it. A database from
/// before key files (schema 1) is converted here: its clear session key is deleted (everyone signs in again)
/// and its clear TOTP secrets are sealed.
async fn bind_secrets(db: &Db, secrets: &crate::secrets::Secrets, path: &Path) -> Result<()> {
    let stored = db
        .setting_or_insert(SECRETS_CHECK_SETTING, secrets.check_value())
        .await?;
    if stored != secrets.check_value() {
        return Err(Error::Config {
            path: path.to_path_buf(),
            reason: "this secrets key file is not the one this database was set up with; restore the right file \
                     (replicas must share one), or sessions and TOTP enrolments cannot be read"
                .into(),
        });
    }
    sqlx::query("DELETE FROM settings WHERE name = $1")
        .bind(OLD_SESSION_SETTING)
        .execute(db.pool())
        .await
        .map_err(Error::db("remove the old session key"))?;
    let rows = sqlx::query("SELECT username, totp_secret FROM users WHERE totp_secret IS NOT NULL")
        .fetch_all(db.pool())
        .await
        .map_err(Error::db("read TOTP secrets"))?;
    for row in rows {
        let username: String = row
            .try_get("username")
            .map_err(Error::db("read TOTP secrets"))?;
        let stored = zeroize::Zeroizing::new(
            row.try_get::<String, _>("totp_secret")
                .map_err(Error::db("read TOTP secrets"))?,
        );
        if crate::secrets::Secrets::is_sealed(&stored) {
            continue;
        }
        let clear =
            zeroize::Zeroizing::new(hex::decode(stored.as_str()).map_err(|_| {
                Error::Corrupt(format!("TOTP secret of user {username} is not hex"))
            })?);
        let sealed = secrets.seal(&username, &clear)?;
        sqlx::query("UPDATE users SET totp_secret = $1 WHERE username = $2 AND totp_secret = $3")
            .bind(&sealed)
            .bind(&username)
            .bind(stored.as_str())
            .execute(db.pool())
            .await
            .map_err(Error::db("seal a TOTP secret"))?;
    }
    Ok(())
}

/// How long the start-up check waits for the database.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// Open one connection and write once, outside the pool, so a database that cannot be used is named at once with
/// what to do (a pool whose connections keep failing only says "pool timed out", ten seconds later).
async fn preflight(url: &str, backend: Backend) -> Result<()> {
    let target = match backend {
        Backend::Sqlite => sqlite_path(url),
        Backend::Postgres => redact_url(url),
    };
    let fail = |e: &sqlx::Error| Error::Storage {
        target: target.clone(),
        reason: explain(e, backend, &target),
    };
    let check = async {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
            .await
            .map_err(|e| fail(&e))?;
        let mut statements = Vec::new();
        if backend == Backend::Sqlite {
            statements.extend(["PRAGMA busy_timeout = 2000", "PRAGMA journal_mode = WAL"]);
        }
        // A committed write: a read-only file system or a full disk fails here, not on the first request.
        statements.extend([
            "CREATE TABLE IF NOT EXISTS aegis_write_check (x BIGINT)",
            "DROP TABLE aegis_write_check",
        ]);
        for statement in statements {
            if let Err(e) = conn.execute(statement).await {
                let _ = sqlx::Connection::close(conn).await;
                return Err(fail(&e));
            }
        }
        let _ = sqlx::Connection::close(conn).await;
        Ok(())
    };
    match tokio::time::timeout(PREFLIGHT_TIMEOUT, check).await {
        Ok(result) => result,
        Err(_) => Err(Error::Storage {
            target: target.clone(),
            reason: format!(
                "no answer within {} s; check that the database server is up and reachable",
                PREFLIGHT_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// Why nothing can be written in `dir`, found by writing and syncing a small file there (what SQLite needs for its
/// journal), or `None` when that works.
fn diagnose_dir(dir: &Path) -> Option<String> {
    use std::io::{ErrorKind, Write};
    let probe = dir.join(format!(".aegis-write-check-{}", std::process::id()));
    let attempt = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| {
            f.write_all(&[0u8; 8192])?;
            f.sync_all()
        });
    let _ = std::fs::remove_file(&probe);
    let e = attempt.err()?;
    let d = dir.display();
    Some(match e.kind() {
        ErrorKind::ReadOnlyFilesystem => format!(
            "{d} is on a read-only file system; remount it writable, or set server.data_dir to a writable directory"
        ),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => format!(
            "the disk is full; free space on the file system holding {d} (see `df -h {d}`), then start again"
        ),
        ErrorKind::PermissionDenied => format!(
            "{d} is not writable by the gateway's user; fix its owner or mode (the gateway wants it 0700), or set \
             server.data_dir to a writable directory"
        ),
        ErrorKind::NotFound => format!("{d} does not exist; create it or set server.data_dir"),
        _ => format!("cannot write in {d}: {e}"),
    })
}

/// The file of a `sqlite:` URL.
fn sqlite_path(url: &str) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    rest.split('?').next().unwrap_or(rest).to_string()
}

/// What an error opening or writing the database means, and what to do about it.
fn explain(e: &sqlx::Error, backend: Backend, target: &str) -> String {
    let dir = Path::new(target)
        .parent()
        .map_or_else(|| ".".to_string(), |p| p.display().to_string());
    if backend == Backend::Sqlite {
        if let Some(why) = diagnose_dir(Path::new(&dir)) {
            return format!("{why} ({e})");
        }
    }
    if let sqlx::Error::Database(db) = e {
        let code = db.code().unwrap_or_default();
        if backend == Backend::Sqlite {
            let primary = code.parse::<i64>().unwrap_or(0) & 0xff;
            let what = match primary {
                8 => format!(
                    "is read-only (a read-only file system, or a file the gateway may not write); make {target} and \
                     {dir} writable, or set server.data_dir to a writable directory"
                ),
                13 => format!(
                    "the disk is full; free space on the file system holding {dir} (see `df -h {dir}`), then start again"
                ),
                14 => format!(
                    "cannot be opened or created: {dir} is missing, not writable by the gateway's user, or on a full \
                     disk (see `df -h {dir}`)"
                ),
                5 | 6 => "is locked by another process that keeps writing; stop it or use another data directory"
                    .to_string(),
                10 => format!(
                    "I/O error writing it, which a full disk also gives; check free space (`df -h {dir}`) and the \
                     disk holding {dir}"
                ),
                11 | 26 => "is not a usable SQLite database (corrupt, or another kind of file); restore it from a \
                            backup or move it away to start afresh"
                    .to_string(),
                _ => String::new(),
            };
            if !what.is_empty() {
                return format!("{what} ({})", db.message());
            }
        } else if code.starts_with("28") {
            return format!(
                "authentication failed ({}); check the user and password in the URL",
                db.message()
            );
        } else if code == "3D000" {
            return format!(
                "the database does not exist ({}); create it first",
                db.message()
            );
        } else if code.starts_with("53") {
            return format!(
                "the server is out of resources ({}), often a full disk on the database server",
                db.message()
            );
        }
        return db.message().to_string();
    }
    match e {
        sqlx::Error::Io(io) => match backend {
            Backend::Postgres => {
                format!("cannot reach the server ({io}); check the host, port and that it is up")
            }
            Backend::Sqlite => format!("{io}; check {dir}"),
        },
        other => other.to_string(),
    }
}

/// A transaction on a pooled connection of its own, for every multi-statement write of the gateway.
///
/// Unlike sqlx's, a transaction that does not end in a successful COMMIT or ROLLBACK (an error, an early return,
/// a COMMIT that failed on a full disk) closes its connection instead of returning it to the pool. After a failed
/// COMMIT, SQLite may keep the transaction and its write lock open on that connection; pooled again, it made every
/// later writer wait and fail with "database is locked" until a restart. A fresh connection holds nothing.
#[derive(Debug)]
pub struct Transaction {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
}

impl Transaction {
    /// Commit; on failure the connection is closed (see the type's docs).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.finish("COMMIT").await
    }

    /// Roll back; on failure the connection is closed.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.finish("ROLLBACK").await
    }

    async fn finish(&mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        conn.execute(statement).await?;
        // Ended cleanly: back to the pool.
        self.conn = None;
        Ok(())
    }
}

impl std::ops::Deref for Transaction {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &sqlx::AnyConnection {
        self.conn
            .as_ref()
            .expect("a transaction has its connection until it ends")
    }
}

impl std::ops::DerefMut for Transaction {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        self.conn
            .as_mut()
            .expect("a transaction has its connection until it ends")
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Not ended: close the connection (the database rolls the transaction back) instead of pooling it.
            drop(conn.detach());
        }
    }
}

/// The sqlx URL of an SQLite file, created when missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A database URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_data_directory_is_private_and_loose_modes_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        prepare_data_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("aegis.db")), 0o600);
        // Idempotent on a private directory.
        prepare_data_dir(&dir).unwrap();

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = prepare_data_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("chmod 700") && err.contains("755"), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(dir.join("aegis.db"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let err = prepare_data_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && err.contains("aegis.db"),
            "{err}"
        );
    }

    /// A fresh SQLite database in a temporary directory (kept alive by the returned guard).
    pub(crate) async fn temp_db() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        (db, dir)
    }

    #[tokio::test]
    async fn settings_round_trip_and_first_writer_wins() {
        let (db, _dir) = temp_db().await;
        assert_eq!(db.setting("x").await.unwrap(), None);
        db.set_setting("x", "1").await.unwrap();
        db.set_setting("x", "2").await.unwrap();
        assert_eq!(db.setting("x").await.unwrap().as_deref(), Some("2"));
        assert_eq!(db.setting_or_insert("y", "a").await.unwrap(), "a");
        assert_eq!(db.setting_or_insert("y", "b").await.unwrap(), "a");
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
            db.set_setting("kept", "yes").await.unwrap();
            db.close().await;
        }
        let db = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        assert_eq!(db.setting("kept").await.unwrap().as_deref(), Some("yes"));
        db.set_setting("schema_version", "999").await.unwrap();
        db.close().await;
        let err = Db::open_data_dir(&dir.path().join("data"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn urls_are_checked_and_passwords_redacted() {
        assert_eq!(
            redact_url("postgres://aegis:s3cret@localhost/aegis"),
            "postgres://aegis:***@localhost/aegis"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt.block_on(Db::connect("mysql://x")).unwrap_err();
        assert!(err.to_string().contains("sqlite://"), "{err}");
    }
}
