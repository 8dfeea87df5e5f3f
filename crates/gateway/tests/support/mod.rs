//! Shared harness for the gateway's integration tests: a real server on 127.0.0.1 (plain HTTP unless a test
//! asks for TLS) over SQLite or PostgreSQL, an HTTP client, and helpers to make users, keys and sessions.
//!
//! PostgreSQL tests need `AEGIS_TEST_POSTGRES` (a URL to a database the tests may create databases from;
//! `.ci/run` starts one). Without it they are skipped with a note, except under CI, where they fail.

#![allow(dead_code)]

pub mod demo_data;

use std::time::Duration;

use aegis_gateway::config::Config;
use aegis_gateway::identity::{self, Role};
use aegis_gateway::keys::{self, NewKey};
use aegis_gateway::serve::{self, Running};
use aegis_gateway::util;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sqlx::Executor;

/// Which database the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Run a scenario against both backends: `both!(name, scenario_fn);` makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident, $scenario:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario($crate::support::Backend::Postgres).await
            }
        }
    };
}

/// A running gateway and what it needs to be torn down.
pub struct TestServer {
    pub running: Option<Running>,
    /// `http://127.0.0.1:PORT` (or https).
    pub base: String,
    /// The data directory.
    pub dir: tempfile::TempDir,
    /// The database URL the server uses.
    pub db_url: String,
    pub backend: Backend,
    pg_drop: Option<(String, String)>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// A response read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The error code of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// The PostgreSQL URL for tests, or None (skip) outside CI.
pub fn postgres_url() -> Option<String> {
    match std::env::var("AEGIS_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("CI must set AEGIS_TEST_POSTGRES (.ci/run starts a PostgreSQL server)");
            }
            eprintln!(
                "skipped: set AEGIS_TEST_POSTGRES=postgres://… to run the PostgreSQL variant"
            );
            None
        }
    }
}

/// A fresh, empty PostgreSQL database; returns (its URL, admin URL, name).
pub async fn fresh_postgres_database(admin_url: &str) -> (String, String) {
    sqlx::any::install_default_drivers();
    let name = format!("aegis_t_{}", util::random_token(12).unwrap().to_lowercase());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin_url)
        .await
        .unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let _ = sqlx::Connection::close(conn).await;
    let base = match admin_url.rfind('/') {
        Some(i) => &admin_url[..i],
        None => admin_url,
    };
    (format!("{base}/{name}"), name)
}

async fn drop_postgres_database(admin_url: &str, name: &str) {
    if let Ok(mut conn) = <sqlx::AnyConnection as sqlx::Connection>::connect(admin_url).await {
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
        let _ = sqlx::Connection::close(conn).await;
    }
}

/// Start a plain-HTTP gateway on 127.0.0.1:0 with no demo key printed; `tweak` edits the config first.
/// None when the backend is unavailable (PostgreSQL outside CI).
pub async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestServer> {
    let dir = tempfile::tempdir().unwrap();
    // The gateway refuses a data directory other users can read.
    #[cfg(unix)]
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = dir.path().to_path_buf();
    config.server.plaintext = true;
    let mut pg_drop = None;
    if backend == Backend::Postgres {
        let admin = postgres_url()?;
        let (url, name) = fresh_postgres_database(&admin).await;
        config.server.database = Some(url);
        pg_drop = Some((admin, name));
    }
    tweak(&mut config);
    let db_url = config.database_url();
    let running = serve::start(config).await.expect("gateway starts");
    let base = format!("{}://{}", running.info.scheme, running.info.addr);
    let client = Client::builder(TokioExecutor::new()).build_http();
    Some(TestServer {
        running: Some(running),
        base,
        dir,
        db_url,
        backend,
        pg_drop,
        client,
    })
}

impl TestServer {
    pub fn state(&self) -> &aegis_gateway::AppState {
        &self.running.as_ref().unwrap().state
    }

    pub fn db(&self) -> &aegis_gateway::Db {
        &self.state().db
    }

    pub fn info(&self) -> &serve::StartupInfo {
        &self.running.as_ref().unwrap().info
    }

    /// Send a request and read the whole response (10 s bound).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(body.into())).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("response within 10 s")
            .expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
            .await
            .expect("body within 10 s")
            .expect("body read")
            .to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// POST JSON with an API key.
    pub async fn post_key(&self, path: &str, key: &str, body: &str) -> Resp {
        let auth = format!("Bearer {key}");
        self.request(
            "POST",
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await
    }

    /// Request with a session token.
    pub async fn with_session(&self, method: &str, path: &str, token: &str, body: &str) -> Resp {
        let auth = format!("Bearer {token}");
        self.request(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await
    }

    /// A key for `models` (all routes) with generous limits, tweakable.
    pub async fn key(&self, models: &[&str], tweak: impl FnOnce(&mut NewKey)) -> String {
        let mut new = NewKey::from_defaults(
            "test",
            "tester",
            models.iter().map(|m| m.to_string()).collect(),
            &self.state().config.defaults,
        );
        new.rate_per_sec = 1000.0;
        new.burst = 1000;
        new.daily_budget = 0;
        new.monthly_budget = 0;
        tweak(&mut new);
        let (_, secret) = keys::create_key(self.db(), &new, util::now_secs())
            .await
            .unwrap();
        secret.expose().to_string()
    }

    /// Create a user with a fixed strong password; admins get TOTP, whose secret is returned.
    pub async fn user(&self, name: &str, role: Role) -> (String, Option<Vec<u8>>) {
        let password = format!("correct horse battery {name}");
        identity::create_user(self.db(), name, &password, role)
            .await
            .unwrap();
        let secret = if role.requires_totp() {
            let e = identity::enroll_totp(self.db(), name, "Aegis")
                .await
                .unwrap();
            Some(base32_decode(&e.secret_base32))
        } else {
            None
        };
        (password, secret)
    }

    /// Log in through the API; returns the response.
    pub async fn login(&self, name: &str, password: &str, totp: Option<&str>) -> Resp {
        let mut body = serde_json::json!({"username": name, "password": password});
        if let Some(code) = totp {
            body["totp"] = serde_json::Value::from(code);
        }
        self.request(
            "POST",
            "/admin/login",
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }

    /// A session token for a fresh user of `role` (admins log in with a current TOTP code).
    pub async fn session(&self, name: &str, role: Role) -> String {
        let (password, secret) = self.user(name, role).await;
        let code = secret.map(|s| {
            format!(
                "{:06}",
                identity::totp::code_at(&s, (util::now_secs() / 30) as u64)
            )
        });
        let r = self.login(name, &password, code.as_deref()).await;
        assert_eq!(r.status, 200, "login {name}: {}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    }

    /// Stop the server (flushing the audit log) and drop a PostgreSQL test database.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
        if let Some((admin, name)) = self.pg_drop.take() {
            drop_postgres_database(&admin, &name).await;
        }
    }
}

/// RFC 4648 base32 (no padding) back to bytes.
pub fn base32_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {c}"),
        } as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}
