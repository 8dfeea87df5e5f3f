//! The accept loop of `aegis serve`: TCP, optional TLS, HTTP/1.1 and HTTP/2, limits and graceful shutdown.
//!
//! `axum::serve` has no TLS, no header timeout and no cap on open connections, so the gateway runs its own
//! loop over hyper. What it defends against, and how:
//! - **Slow or silent clients** (slowloris): the TLS handshake and the first bytes of the connection (enough
//!   to tell HTTP/1.1 from the HTTP/2 preface) must arrive within `header_timeout`; after that hyper's HTTP/1
//!   `header_read_timeout` bounds every request head, including the idle wait between keep-alive requests.
//!   HTTP/2 connections are pinged and closed when the peer stops answering.
//! - **Too many connections**: a semaphore caps open connections. At the cap the connection idle the longest
//!   is shed to make room; when none is idle, the new client waits up to `header_timeout` for a slot and is
//!   then closed, so the process never runs out of descriptors. Accept errors (EMFILE, ENFILE, ENOBUFS) back
//!   off 50 ms and never end the loop.
//! - **Clients that hold a slot without using it** (idle HTTP/2 connections, HTTP/1.1 clients that never read
//!   their answers, zero receive windows, many connections from one address): see [`crate::connections`];
//!   each connection task runs a watchdog that closes it by those rules.
//! - **Memory per HTTP/2 connection**: at most [`H2_MAX_STREAMS`] concurrent streams, each buffering at most
//!   [`H2_SEND_BUFFER`] bytes of answer and [`H2_STREAM_WINDOW`] of request, within a connection window of
//!   [`H2_CONNECTION_WINDOW`]; a peer that keeps its window at zero is closed by the write rule.
//! - **Memory across connections**: every [`ENFORCE_EVERY`] the loop applies the rules that look at all
//!   connections at once (stalled answers per address, answer bytes held in all; see [`crate::connections`]).
//! - **Oversized request heads**: the HTTP/1 read buffer and the HTTP/2 header list are capped at
//!   [`MAX_HEADER_BYTES`]; bodies are limited by the router's own layers.
//!
//! Every request carries the peer's address as `axum::extract::ConnectInfo<SocketAddr>`. On shutdown the
//! listener is closed at once, open connections finish their in-flight requests (HTTP/1 stops keep-alive,
//! HTTP/2 sends GOAWAY), and whatever is still open after [`SHUTDOWN_GRACE`] is dropped.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::connections::{Activity, Limits, Registered, Registry, Tracked, Verdict};
use crate::error::Result;

/// How long open connections may take to finish once shutdown has begun.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Cap on an HTTP/1 request head (the read buffer) and on an HTTP/2 header list, in bytes.
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Default cap on open connections.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Interval and timeout of HTTP/2 keep-alive pings.
const H2_KEEPALIVE: Duration = Duration::from_secs(20);

/// Concurrent streams per HTTP/2 connection.
pub(crate) const H2_MAX_STREAMS: u32 = 32;
/// Answer bytes buffered per HTTP/2 stream before the body is asked for more.
pub(crate) const H2_SEND_BUFFER: usize = 64 * 1024;
/// Request bytes a client may send on one HTTP/2 stream before the gateway reads them.
pub(crate) const H2_STREAM_WINDOW: u32 = 256 * 1024;
/// Request bytes a client may send on one HTTP/2 connection before the gateway reads them.
pub(crate) const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Default time a connection may stay open with no request in flight.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a peer may leave what it was sent untaken.
pub(crate) const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on open connections per client address.
pub(crate) const DEFAULT_MAX_PER_ADDRESS: usize = 256;

/// Default bound on the answer bytes all connections together hold.
pub(crate) const DEFAULT_MAX_BUFFERED: u64 = 256 << 20;

/// How often the rules that look at all connections at once are applied.
const ENFORCE_EVERY: Duration = Duration::from_millis(250);

/// Pause after an accept error that is about the process (descriptors, memory), not one connection.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How [`serve`] listens.
#[derive(Clone)]
pub(crate) struct ListenOptions {
    /// Time allowed for the TLS handshake plus the first bytes, and for each HTTP/1 request head.
    pub header_timeout: Duration,
    /// TLS configuration; `None` serves plain HTTP (only when the operator asked for it).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Maximum number of open connections (at least 1).
    pub max_connections: usize,
    /// Idle, write and per-address rules (see [`crate::connections`]).
    pub limits: Limits,
    /// Reverse proxies: no per-address cap.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            header_timeout: Duration::from_secs(5),
            tls: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            limits: Limits {
                idle: DEFAULT_IDLE_TIMEOUT,
                write: DEFAULT_WRITE_TIMEOUT,
                per_address: DEFAULT_MAX_PER_ADDRESS,
                buffered: DEFAULT_MAX_BUFFERED,
            },
            trusted_proxies: Vec::new(),
        }
    }
}

impl std::fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenOptions")
            .field("header_timeout", &self.header_timeout)
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains open connections for at most
/// [`SHUTDOWN_GRACE`].
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    opts: ListenOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let max = opts.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let limit = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let registry = Arc::new(Registry::new(opts.limits, &opts.trusted_proxies));
    let shared = Arc::new(Shared {
        h1: builder(false, opts.header_timeout),
        h2: builder(true, opts.header_timeout),
        header_timeout: opts.header_timeout,
        tls: opts.tls.map(TlsAcceptor::from),
        app,
        registry: registry.clone(),
    });
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let mut enforce_tick = tokio::time::interval(ENFORCE_EVERY);
    enforce_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            _ = enforce_tick.tick() => {
                enforce(&registry);
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(v) => v,
            Err(e) if is_per_connection(&e) => continue,
            Err(_) => {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
                continue;
            }
        };
        let Ok(registered) = registry.admit(peer.ip()) else {
            // Over the per-address cap: closed at once, before any TLS or HTTP work.
            continue;
        };
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // At the cap: make room by shedding the idlest connection, else wait a moment for a slot.
                registry.shed_idlest(&registered);
                let waited = tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    p = tokio::time::timeout(opts.header_timeout, limit.clone().acquire_owned()) => p,
                };
                match waited {
                    Ok(Ok(p)) => p,
                    _ => continue,
                }
            }
        };
        tasks.spawn(connection(
            shared.clone(),
            stream,
            peer,
            stop_rx.clone(),
            permit,
            registered,
        ));
    }

    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.shutdown().await;
    }
    Ok(())
}

/// Apply the rules that look at all connections at once (stalled answers per address, answer bytes held in
/// all), and log what they closed.
fn enforce(registry: &Registry) {
    let done = registry.enforce();
    if done.per_address > 0 {
        crate::log::emit(
            crate::log::Level::Warn,
            "connections_over_address_cap",
            &[
                ("closed", done.per_address.into()),
                ("cap", registry.limits().per_address.into()),
            ],
        );
    }
    if done.buffered > 0 {
        crate::log::emit(
            crate::log::Level::Warn,
            "connections_over_memory_bound",
            &[
                ("closed", done.buffered.into()),
                ("held_bytes", done.held_bytes.into()),
                ("bound_bytes", registry.limits().buffered.into()),
            ],
        );
    }
}

/// What every connection task needs.
struct Shared {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    header_timeout: Duration,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    registry: Arc<Registry>,
}

fn builder(http2: bool, header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEADER_BYTES);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_KEEPALIVE))
        .keep_alive_timeout(H2_KEEPALIVE)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_send_buf_size(H2_SEND_BUFFER)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW);
    if http2 {
        b.http2_only()
    } else {
        b.http1_only()
    }
}

/// Errors that concern one connection only (the peer gave up before we accepted it).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Resolves once shutdown has been asked for (or the server is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    registered: Registered,
) {
    let _ = stream.set_nodelay(true);
    let activity = registered.activity.clone();
    let setup = async {
        let inner = match &shared.tls {
            None => Inner::Plain(stream),
            Some(acceptor) => Inner::Tls(Box::new(acceptor.accept(stream).await?)),
        };
        sniff(inner, activity.clone()).await
    };
    let (io, http2) = tokio::select! {
        setup = tokio::time::timeout(shared.header_timeout, setup) => match setup {
            Ok(Ok(v)) => v,
            _ => return,
        },
        () = stopped(&mut stop) => return,
        () = activity.shed.notified() => return,
    };

    let app = shared.app.clone();
    let tracker = activity.clone();
    let service = tower::service_fn(move |req: http::Request<Incoming>| {
        let app = app.clone();
        let flight = tracker.begin();
        async move {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            let response = app.oneshot(req).await?;
            Ok::<_, std::convert::Infallible>(
                response.map(|body| axum::body::Body::new(Tracked::new(body, flight))),
            )
        }
    });
    let builder = if http2 { &shared.h2 } else { &shared.h1 };
    let conn =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    let mut conn = pin!(conn);
    let limits = shared.registry.limits();
    let mut watchdog = tokio::time::interval(watchdog_period(&limits));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = stopped(&mut stop) => break,
            () = activity.shed.notified() => return,
            _ = watchdog.tick() => match activity.verdict(&limits) {
                Verdict::Keep => {}
                Verdict::Idle => break,
                // Dropping the connection drops its answers, and with them what they hold upstream.
                Verdict::Stalled => return,
            },
        }
    }
    // Graceful: HTTP/1 finishes the request in flight, HTTP/2 sends GOAWAY. A peer that then stalls is dropped by
    // the same write rule, and one that does not let the connection finish within the write timeout (answers
    // already handed to HTTP/2 but held back by a window the peer keeps closed) is dropped then.
    conn.as_mut().graceful_shutdown();
    let deadline = tokio::time::Instant::now() + limits.write;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(deadline) => return,
            _ = watchdog.tick() => if activity.verdict(&limits) == Verdict::Stalled {
                return;
            },
        }
    }
}

/// How often a connection's watchdog looks: a quarter of the shortest rule, between 50 ms and 1 s.
fn watchdog_period(limits: &Limits) -> Duration {
    (limits.idle.min(limits.write) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Reads until the bytes read so far either are the whole HTTP/2 preface or cannot be its start.
/// Returns the stream with those bytes to be read again, and whether the client speaks HTTP/2.
async fn sniff(mut inner: Inner, activity: Arc<Activity>) -> io::Result<(ConnIo, bool)> {
    let mut seen = Vec::with_capacity(H2_PREFACE.len());
    let mut chunk = [0u8; 24];
    loop {
        let want = H2_PREFACE.len() - seen.len();
        let n = inner.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&chunk[..n]);
        if seen.len() == H2_PREFACE.len() || !H2_PREFACE.starts_with(&seen) {
            break;
        }
    }
    let http2 = seen.as_slice() == H2_PREFACE;
    Ok((
        ConnIo {
            prefix: seen,
            pos: 0,
            inner,
            activity,
        },
        http2,
    ))
}

/// The transport under HTTP.
enum Inner {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A connection whose first bytes, already read by [`sniff`], are replayed before the rest; writes the socket
/// refuses are reported to the connection's activity (the write rule).
struct ConnIo {
    prefix: Vec<u8>,
    pos: usize,
    inner: Inner,
    activity: Arc<Activity>,
}

impl ConnIo {
    /// Note whether the socket took the write that gave `poll`, and how much.
    fn wrote(&self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &poll {
            Poll::Pending => self.activity.write_blocked(),
            Poll::Ready(Ok(n)) => self.activity.write_done(*n),
            Poll::Ready(Err(_)) => {}
        }
        poll
    }

    /// Note whether the socket took the flush that gave `poll` (no bytes: not progress by itself).
    fn flushed(&self, poll: Poll<io::Result<()>>) -> Poll<io::Result<()>> {
        match &poll {
            Poll::Pending => self.activity.write_blocked(),
            Poll::Ready(Ok(())) => self.activity.write_done(0),
            Poll::Ready(Err(_)) => {}
        }
        poll
    }
}

impl AsyncRead for Inner {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        this.wrote(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        this.wrote(poll)
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(s) => s.is_write_vectored(),
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        this.flushed(poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use http_body_util::{BodyExt, Empty};
    use rustls::pki_types::ServerName;
    use tokio::io::AsyncWriteExt;
    use tokio::sync::{mpsc, oneshot};

    const LONG: Duration = Duration::from_secs(10);

    fn app() -> axum::Router {
        axum::Router::new()
            .route("/", get(|| async { "hello" }))
            .route(
                "/ip",
                get(|ConnectInfo(addr): ConnectInfo<SocketAddr>| async move { addr.to_string() }),
            )
    }

    struct Running {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<Result<()>>,
    }

    impl Running {
        async fn shutdown(mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            tokio::time::timeout(LONG, self.task)
                .await
                .expect("serve ends")
                .unwrap()
                .unwrap();
        }
    }

    async fn start(app: axum::Router, opts: ListenOptions) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, opts, async move {
            let _ = rx.await;
        }));
        Running {
            addr,
            stop: Some(tx),
            task,
        }
    }

    fn opts(tls: Option<Arc<rustls::ServerConfig>>, header_timeout: Duration) -> ListenOptions {
        ListenOptions {
            header_timeout,
            tls,
            max_connections: 64,
            ..ListenOptions::default()
        }
    }

    /// A generated certificate, its server config, and a client config that trusts it.
    fn tls_pair(
        dir: &std::path::Path,
        alpn: &[u8],
    ) -> (Arc<rustls::ServerConfig>, tokio_rustls::TlsConnector) {
        let material = crate::tls::self_signed(dir, &[]).unwrap();
        let pem = std::fs::read(dir.join("tls/cert.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
        (material.config, connector(roots, alpn))
    }

    fn connector(roots: rustls::RootCertStore, alpn: &[u8]) -> tokio_rustls::TlsConnector {
        let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        client.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(client))
    }

    /// Sends a hand-written HTTP/1.1 request and reads the whole answer.
    async fn http1_get<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, path: &str) -> String {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        io.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(LONG, io.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn tls_http1_answers_and_passes_connect_info() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = tls_pair(dir.path(), b"http/1.1");
        let run = start(app(), opts(Some(server), LONG)).await;

        let tcp = TcpStream::connect(run.addr).await.unwrap();
        let local = tcp.local_addr().unwrap();
        let tls = client
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let answer = http1_get(tls, "/ip").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(&local.to_string()), "{answer}");

        let tcp = TcpStream::connect(run.addr).await.unwrap();
        let tls = client
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let answer = http1_get(tls, "/").await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
            "{answer}"
        );
        run.shutdown().await;
    }

    #[tokio::test]
    async fn tls_http2_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = tls_pair(dir.path(), b"h2");
        let run = start(app(), opts(Some(server), LONG)).await;

        let tcp = TcpStream::connect(run.addr).await.unwrap();
        let tls = client
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("https://localhost/")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
        drop(send);
        run.shutdown().await;
    }

    #[tokio::test]
    async fn tls_listener_refuses_untrusted_and_plaintext_clients() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _) = tls_pair(dir.path(), b"http/1.1");
        let run = start(app(), opts(Some(server), LONG)).await;

        // A client that trusts another certificate: the handshake fails.
        let other = tempfile::tempdir().unwrap();
        let (_, stranger) = tls_pair(other.path(), b"http/1.1");
        let tcp = TcpStream::connect(run.addr).await.unwrap();
        let refused = stranger
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await;
        assert!(refused.is_err());

        // Plain HTTP against the TLS port: no HTTP answer.
        let tcp = TcpStream::connect(run.addr).await.unwrap();
        let mut tcp = tcp;
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(LONG, tcp.read_to_end(&mut out))
            .await
            .expect("the server closes the connection");
        assert!(!out.starts_with(b"HTTP/"), "{out:?}");
        assert!(!String::from_utf8_lossy(&out).contains("hello"));
        run.shutdown().await;
    }

    #[tokio::test]
    async fn plaintext_answers_http1_and_h2c() {
        let run = start(app(), opts(None, LONG)).await;
        let tcp = TcpStream::connect(run.addr).await.unwrap();
        let answer = http1_get(tcp, "/").await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
            "{answer}"
        );

        // HTTP/2 with prior knowledge is told apart by its preface.
        let tcp = TcpStream::connect(run.addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("http://localhost/")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        drop(send);
        run.shutdown().await;
    }

    #[tokio::test]
    async fn slow_and_silent_clients_are_disconnected_after_header_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _) = tls_pair(dir.path(), b"http/1.1");
        for tls in [None, Some(server)] {
            let run = start(app(), opts(tls.clone(), Duration::from_millis(300))).await;

            // Half a request line, then nothing.
            let mut tcp = TcpStream::connect(run.addr).await.unwrap();
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: loc").await.unwrap();
            let mut out = Vec::new();
            let read = tokio::time::timeout(LONG, tcp.read_to_end(&mut out)).await;
            assert!(read.is_ok(), "still open after the header timeout");
            assert!(!String::from_utf8_lossy(&out).contains("hello"));

            // Nothing at all (no TLS handshake, no request).
            let mut tcp = TcpStream::connect(run.addr).await.unwrap();
            let read = tokio::time::timeout(LONG, tcp.read_to_end(&mut out)).await;
            assert!(read.is_ok(), "silent client still connected");

            // A client that completes its request in time is still served.
            if tls.is_none() {
                let tcp = TcpStream::connect(run.addr).await.unwrap();
                let answer = http1_get(tcp, "/").await;
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            }
            run.shutdown().await;
        }
    }

    #[tokio::test]
    async fn graceful_shutdown_finishes_in_flight_requests() {
        let (started_tx, mut started_rx) = mpsc::channel::<()>(1);
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let release_rx = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
        let app = axum::Router::new().route(
            "/slow",
            get(move || {
                let started_tx = started_tx.clone();
                let release_rx = release_rx.clone();
                async move {
                    let _ = started_tx.send(()).await;
                    if let Some(rx) = release_rx.lock().await.take() {
                        let _ = rx.await;
                    }
                    "done"
                }
            }),
        );
        let mut run = start(app, opts(None, LONG)).await;
        let addr = run.addr;
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            http1_get(tcp, "/slow").await
        });
        tokio::time::timeout(LONG, started_rx.recv()).await.unwrap();

        // Shut down while the request is in flight.
        run.stop.take().unwrap().send(()).unwrap();
        // New connections are refused once the listener is closed.
        let mut refused = false;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "listener still accepting after shutdown");
        assert!(!run.task.is_finished(), "in-flight request abandoned");

        release_tx.send(()).unwrap();
        let answer = tokio::time::timeout(LONG, client).await.unwrap().unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
            "{answer}"
        );
        tokio::time::timeout(LONG, run.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn at_the_cap_a_busy_connection_holds_the_newcomer_until_it_finishes() {
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let release_rx = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
        let app = app().route(
            "/slow",
            get(move || {
                let release_rx = release_rx.clone();
                async move {
                    if let Some(rx) = release_rx.lock().await.take() {
                        let _ = rx.await;
                    }
                    "done"
                }
            }),
        );
        let mut o = opts(None, LONG);
        o.max_connections = 1;
        let run = start(app, o).await;

        let first = tokio::spawn({
            let addr = run.addr;
            async move { http1_get(TcpStream::connect(addr).await.unwrap(), "/slow").await }
        });
        // Give the loop time to accept the first connection (not a timing assertion: a slow loop only makes the
        // check below weaker).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let second = tokio::spawn({
            let addr = run.addr;
            async move { http1_get(TcpStream::connect(addr).await.unwrap(), "/").await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "served past the connection cap");

        release_tx.send(()).unwrap();
        let answer = tokio::time::timeout(LONG, first).await.unwrap().unwrap();
        assert!(answer.ends_with("done"), "{answer}");
        let answer = tokio::time::timeout(LONG, second).await.unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        run.shutdown().await;
    }

    #[test]
    fn watchdog_looks_often_enough_for_the_shortest_rule() {
        let limits = |idle: u64, write: u64| Limits {
            idle: Duration::from_millis(idle),
            write: Duration::from_millis(write),
            per_address: 1,
            buffered: 1,
        };
        assert_eq!(
            watchdog_period(&limits(60_000, 30_000)),
            Duration::from_secs(1)
        );
        assert_eq!(
            watchdog_period(&limits(1_000, 1_000)),
            Duration::from_millis(250)
        );
        assert_eq!(watchdog_period(&limits(10, 10)), Duration::from_millis(50));
    }

    #[test]
    fn default_options() {
        let o = ListenOptions::default();
        assert_eq!(o.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert!(o.tls.is_none());
        assert!(format!("{o:?}").contains("tls: false"));
    }
}
