//! Shared helpers of the store's tests: databases (SQLite always; PostgreSQL with `AEGIS_TEST_POSTGRES`), a
//! webhook receiver and an SMTP sink on 127.0.0.1, and model files.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use aegis_store::{Backend, Store};
use sqlx::any::AnyPoolOptions;
use sqlx::Executor;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The backends to run a test on: SQLite, and PostgreSQL when `AEGIS_TEST_POSTGRES` is set (required in CI).
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    match std::env::var("AEGIS_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => out.push(Backend::Postgres),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("CI must set AEGIS_TEST_POSTGRES (.ci/run starts a PostgreSQL server)");
            }
            eprintln!(
                "skipped the PostgreSQL variant: set AEGIS_TEST_POSTGRES=postgres://… to run it"
            );
        }
    }
    out
}

/// A database URL for a fresh database of `backend`, its files under `dir`.
pub async fn fresh_url(backend: Backend, dir: &Path) -> String {
    sqlx::any::install_default_drivers();
    match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("aegis.db").display()),
        Backend::Postgres => {
            let admin = std::env::var("AEGIS_TEST_POSTGRES").unwrap();
            let mut bytes = [0u8; 6];
            getrandom::fill(&mut bytes).unwrap();
            let name = format!("aegis_store_{}", hex::encode(bytes));
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .unwrap();
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
            let _ = sqlx::Connection::close(conn).await;
            let base = &admin[..admin.rfind('/').unwrap()];
            format!("{base}/{name}")
        }
    }
}

/// A store (one "replica") on `url`.
pub async fn open(backend: Backend, url: &str, data_dir: &Path) -> Store {
    sqlx::any::install_default_drivers();
    let mut options = AnyPoolOptions::new().max_connections(4);
    if backend == Backend::Sqlite {
        options = options.after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                Ok(())
            })
        });
    }
    let pool = options.connect(url).await.unwrap();
    Store::open(pool, backend, data_dir).await.unwrap()
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP receiver on 127.0.0.1 answering every request with `status`; its URL and what it received.
pub async fn webhook_receiver(status: u16) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/aegis", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut headers = Vec::new();
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                loop {
                    line.clear();
                    reader.read_line(&mut line).await.unwrap();
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((n, v)) = l.split_once(':') {
                        headers.push((n.trim().to_string(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).await.unwrap();
                seen.lock().unwrap().push(Received { headers, body });
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = reader.get_mut().write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, got)
}

/// A plain SMTP sink on 127.0.0.1 (no STARTTLS); its `host:port` and the messages' DATA.
pub async fn smtp_sink() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                reader
                    .get_mut()
                    .write_all(b"220 sink ESMTP\r\n")
                    .await
                    .unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        reader.get_mut().write_all(b"354 go\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            reader.read_line(&mut l).await.unwrap();
                            if l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        seen.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = reader.get_mut().write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    reader.get_mut().write_all(reply).await.unwrap();
                }
            });
        }
    });
    (addr, got)
}

/// A pickle that calls `os.system` (as data; nothing here loads it).
pub fn malicious_pickle() -> Vec<u8> {
    b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.".to_vec()
}

/// A harmless pickle: a list of two floats.
pub fn benign_pickle() -> Vec<u8> {
    b"\x80\x02]q\x00(G?\xf0\x00\x00\x00\x00\x00\x00G@\x00\x00\x00\x00\x00\x00\x00e.".to_vec()
}

/// The bundled demo fraud model and its reference data (2000 labelled rows).
pub fn demo_model() -> (Vec<u8>, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/assets");
    (
        std::fs::read(root.join("demo-fraud.onnx")).unwrap(),
        std::fs::read_to_string(root.join("demo-fraud.reference.csv")).unwrap(),
    )
}

/// An SMTP sink on 127.0.0.1 that offers STARTTLS with a fresh self-signed certificate for `localhost` and
/// requires AUTH PLAIN inside TLS: its `localhost:port`, the CA file (the certificate) written in `dir`, what it
/// received (DATA), and the credentials it saw (decoded AUTH PLAIN).
pub async fn starttls_sink(
    dir: &Path,
) -> (
    String,
    std::path::PathBuf,
    Arc<Mutex<Vec<String>>>,
    Arc<Mutex<Vec<String>>>,
) {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let ca = dir.join("smtp-ca.pem");
    std::fs::write(&ca, cert.pem()).unwrap();
    let certs = vec![cert.der().clone()];
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("localhost:{}", listener.local_addr().unwrap().port());
    let (got, auths) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let (seen, seen_auth) = (got.clone(), auths.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, seen, seen_auth) = (acceptor.clone(), seen.clone(), seen_auth.clone());
            tokio::spawn(async move {
                let mut plain = BufReader::new(stream);
                plain
                    .get_mut()
                    .write_all(b"220 sink ESMTP\r\n")
                    .await
                    .unwrap();
                let mut line = String::new();
                // Before TLS: EHLO offers STARTTLS; anything else but STARTTLS is refused.
                loop {
                    line.clear();
                    if plain.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    if cmd.starts_with("EHLO") {
                        plain
                            .get_mut()
                            .write_all(b"250-sink\r\n250 STARTTLS\r\n")
                            .await
                            .unwrap();
                    } else if cmd == "STARTTLS" {
                        plain
                            .get_mut()
                            .write_all(b"220 go ahead\r\n")
                            .await
                            .unwrap();
                        break;
                    } else {
                        plain
                            .get_mut()
                            .write_all(b"530 must issue STARTTLS first\r\n")
                            .await
                            .unwrap();
                    }
                }
                let tls = acceptor.accept(plain.into_inner()).await.unwrap();
                let mut r = BufReader::new(tls);
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_string();
                    let upper = cmd.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-sink\r\n250 AUTH PLAIN\r\n"
                    } else if let Some(token) = cmd.strip_prefix("AUTH PLAIN ") {
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(token)
                            .unwrap();
                        seen_auth
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&raw).replace('\0', "|"));
                        b"235 ok\r\n"
                    } else if upper.starts_with("DATA") {
                        r.get_mut().write_all(b"354 go\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            r.read_line(&mut l).await.unwrap();
                            if l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        seen.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = r.get_mut().write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    r.get_mut().write_all(reply).await.unwrap();
                }
            });
        }
    });
    (addr, ca, got, auths)
}
