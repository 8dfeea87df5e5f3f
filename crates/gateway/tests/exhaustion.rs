//! Attacks on a real `aegis serve` (plain HTTP on 127.0.0.1) that try to hold its connections, its upstream
//! slots or its memory without using them: idle HTTP/2 connections, clients that never read their answers
//! (HTTP/1.1 and HTTP/2 with a zero window), many connections from one address, and refusals whose body
//! follows the head. Each test also checks that a legitimate client is still served.
//!
//! Timeouts are set short in the configuration so the rules act within a second or two; every wait is bounded.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use aegis_gateway::config::{Config, Protocol, UpstreamConfig};
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Size of the stub's large streamed answer: far more than socket buffers hold on loopback.
const BIG: usize = 64 << 20;
const CHUNK: usize = 64 << 10;
const LONG: Duration = Duration::from_secs(20);

/// An upstream with `/big` (a [`BIG`]-byte answer in [`CHUNK`]s, made as it is read) and `/small`.
async fn start_stub() -> SocketAddr {
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let app = Router::new()
        .route(
            "/big",
            get(move || {
                let chunk = chunk.clone();
                async move {
                    let frames = futures_util::stream::iter(
                        (0..BIG / CHUNK)
                            .map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
                    );
                    Body::new(StreamBody::new(frames))
                }
            }),
        )
        .route("/small", get(|| async { "small" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A gateway with upstream `up` (two slots) in front of the stub, short idle and write timeouts, and
/// `tweak` applied last.
async fn start(tweak: impl FnOnce(&mut Config)) -> (TestServer, String) {
    let stub = start_stub().await;
    let server = support::start(Backend::Sqlite, |c| {
        c.upstreams = vec![UpstreamConfig {
            name: "up".into(),
            url: format!("http://{stub}"),
            protocol: Protocol::Predict,
            models: Vec::new(),
            max_concurrency: 2,
            timeout_ms: 1_000,
            llm_guard: None,
        }];
        c.server.idle_timeout_secs = 1;
        c.server.write_timeout_secs = 1;
        tweak(c);
    })
    .await
    .expect("SQLite is always available");
    let key = server
        .key(&["up"], |k| {
            k.rate_per_sec = 1000.0;
            k.burst = 1000;
        })
        .await;
    (server, key)
}

/// Write an HTTP/1.1 GET of `path` with `key`, and read only the head (so the answer's body stays unread).
async fn get_and_stop_reading(server: &TestServer, path: &str, key: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(server.info().addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(LONG, tcp.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));
    tcp
}

/// Whether the server has closed `tcp`: reads (discarding) until EOF or error within `within`.
async fn closed_by_server(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut sink = vec![0u8; 1 << 20];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Whether every slot of upstream `up` is free within 10 s.
async fn slots_freed(server: &TestServer) -> bool {
    for _ in 0..200 {
        if in_flight(server) == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// An HTTP/2 client (prior knowledge) whose streams announce a receive window of zero: it never lets the
/// server send a byte of an answer. The connection's task ends when the server closes it.
async fn zero_window_h2(
    server: &TestServer,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let tcp = TcpStream::connect(server.info().addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .unwrap();
    (send, tokio::spawn(conn))
}

/// Slots of upstream `up` in use now.
fn in_flight(server: &TestServer) -> usize {
    server.state().upstreams.list()[0].in_flight
}

/// GET `path` and read the whole answer; (status, body length).
async fn fetch(server: &TestServer, path: &str, key: &str) -> (u16, usize) {
    let tcp = TcpStream::connect(server.info().addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "x")
        .header("authorization", format!("Bearer {key}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(LONG, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let body = tokio::time::timeout(LONG, resp.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (status, body.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_clients_that_stop_reading_release_their_upstream_slots() {
    let (server, key) = start(|_| {}).await;
    // Two clients take both upstream slots and stop reading a 64 MiB answer.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        stalled.push(get_and_stop_reading(&server, "/upstream/up/big", &key).await);
    }
    assert_eq!(in_flight(&server), 2);
    // Within a few write timeouts the slots are free again, without the clients reading anything.
    assert!(
        slots_freed(&server).await,
        "clients that stopped reading kept their upstream slots"
    );
    // And their connections were closed.
    for tcp in &mut stalled {
        assert!(closed_by_server(tcp, Duration::from_secs(10)).await);
    }
    // A client that reads gets the whole answer.
    assert_eq!(fetch(&server, "/upstream/up/big", &key).await, (200, BIG));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_slowly_keeps_streaming() {
    let (server, key) = start(|_| {}).await;
    let mut tcp = TcpStream::connect(server.info().addr).await.unwrap();
    let req = format!("GET /upstream/up/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    // Read in bursts of 8 MiB with pauses of 400 ms, under the 1 s write timeout.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let mut burst = 0usize;
    loop {
        let n = tokio::time::timeout(LONG, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        got += n;
        burst += n;
        if burst >= 8 << 20 {
            burst = 0;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }
    assert!(got > BIG, "answer cut short: {got} bytes");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_with_a_zero_window_do_not_hold_the_connection_or_the_slots() {
    let (server, key) = start(|_| {}).await;
    let (mut send, conn) = zero_window_h2(&server).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let req = http::Request::get(format!("http://{}/upstream/up/big", server.info().addr))
            .header("authorization", format!("Bearer {key}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = tokio::time::timeout(LONG, send.send_request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 200);
        held.push(resp); // never read
    }
    assert_eq!(in_flight(&server), 2);
    // The connection is closed by the write rule and the slots come back.
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("a connection whose peer keeps a zero window is closed")
        .unwrap()
        .ok();
    assert!(slots_freed(&server).await);
    assert_eq!(fetch(&server, "/upstream/up/small", &key).await, (200, 5));
    drop(held);
    server.stop().await;
}

/// Answers built in memory (here `/openapi.json`, no key needed) on streams whose window the peer keeps at zero
/// are never asked for a frame; the connection is still closed by the write rule, releasing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_answers_never_sent_for_a_zero_window_are_released() {
    let (server, _) = start(|_| {}).await;
    let (mut send, conn) = zero_window_h2(&server).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let req = http::Request::get(format!("http://{}/openapi.json", server.info().addr))
            .body(Empty::<Bytes>::new())
            .unwrap();
        held.push(send.send_request(req));
    }
    let heads = futures_util::future::join_all(held).await;
    assert!(heads
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == 200)));
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("a connection whose streams never open their window is closed")
        .unwrap()
        .ok();
    drop(heads);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_and_shed_for_new_clients() {
    let (server, key) = start(|c| {
        c.server.max_connections = 6;
        c.server.idle_timeout_secs = 2;
    })
    .await;
    // Fill every slot with HTTP/2 connections that answer PINGs but open no stream.
    let mut idle = Vec::new();
    for _ in 0..6 {
        let tcp = TcpStream::connect(server.info().addr).await.unwrap();
        let (send, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
            TokioExecutor::new(),
            TokioIo::new(tcp),
        )
        .await
        .unwrap();
        idle.push((send, tokio::spawn(conn)));
    }
    // A new client is served at once: the idlest connection is shed to make room.
    assert_eq!(fetch(&server, "/upstream/up/small", &key).await, (200, 5));
    // And every idle connection is closed after the idle timeout.
    for (send, conn) in idle {
        tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("an idle HTTP/2 connection stayed open")
            .unwrap()
            .ok();
        drop(send);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_pipelining_clients_that_never_read_are_disconnected() {
    let (server, key) = start(|c| {
        c.server.max_connections = 4;
        c.upstreams[0].max_concurrency = 16;
    })
    .await;
    // Four clients pipeline requests for large answers and never read; they hold every slot.
    let mut quiet = Vec::new();
    for _ in 0..4 {
        let mut tcp = TcpStream::connect(server.info().addr).await.unwrap();
        let one = format!(
            "GET /upstream/up/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
        );
        tcp.write_all(one.repeat(3).as_bytes()).await.unwrap();
        quiet.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A new client is still served, and the silent ones are closed.
    assert_eq!(fetch(&server, "/upstream/up/small", &key).await, (200, 5));
    for tcp in &mut quiet {
        assert!(closed_by_server(tcp, Duration::from_secs(10)).await);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_more_than_its_share_of_connections() {
    let (server, key) = start(|c| {
        c.server.max_connections_per_address = 3;
        // Long enough that only the cap can explain a closed connection.
        c.server.header_timeout_ms = 60_000;
        c.server.idle_timeout_secs = 60;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(server.info().addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = TcpStream::connect(server.info().addr).await.unwrap();
    assert!(
        closed_by_server(&mut fourth, Duration::from_secs(5)).await,
        "a fourth connection from one address was kept"
    );
    // One closes: the address may connect again and is served.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fetch(&server, "/upstream/up/small", &key).await, (200, 5));
    drop(held);
    server.stop().await;
}

/// Open `streams` HTTP/2 streams for `/openapi.json` (about 12 KiB each, no key needed) on a zero-window
/// connection; the answers are built and never sent. Returns the connection's task and what keeps the streams
/// open (the sender and the answer heads).
async fn zero_window_streams(
    server: &TestServer,
    streams: usize,
) -> (tokio::task::JoinHandle<hyper::Result<()>>, impl Sized) {
    let (mut send, conn) = zero_window_h2(server).await;
    let mut pending = Vec::new();
    for _ in 0..streams {
        let req = http::Request::get(format!("http://{}/openapi.json", server.info().addr))
            .body(Empty::<Bytes>::new())
            .unwrap();
        pending.push(send.send_request(req));
    }
    let heads = futures_util::future::join_all(pending).await;
    let heads: Vec<_> = heads.into_iter().map(|r| r.unwrap()).collect();
    assert!(heads.iter().all(|r| r.status() == 200));
    (conn, (send, heads))
}

/// Streams that do not drain count against the per-address cap: with a cap of 8, a connection that keeps 20
/// answers from draining is closed at once (long before the write timeout), while one with 5 and one whose 20
/// answers were read are kept, and the address is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_do_not_drain_count_against_the_per_address_cap() {
    let (server, key) = start(|c| {
        c.server.max_connections_per_address = 8;
        c.server.header_timeout_ms = 60_000;
        c.server.idle_timeout_secs = 60;
        c.server.write_timeout_secs = 60;
    })
    .await;
    // Negative: 20 answers read to the end on one connection.
    let (mut send, drained) = {
        let tcp = TcpStream::connect(server.info().addr).await.unwrap();
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
            .await
            .unwrap();
        (send, tokio::spawn(conn))
    };
    for _ in 0..20 {
        let req = http::Request::get(format!("http://{}/openapi.json", server.info().addr))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        resp.into_body().collect().await.unwrap();
    }
    // Negative: 5 stalled answers (2 connections + 5 = 7, under the cap).
    let (light, light_streams) = zero_window_streams(&server, 5).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !drained.is_finished() && !light.is_finished(),
        "closed under the cap"
    );

    // Positive: 20 more stalled answers (3 + 25 = 28): the connection holding them is closed.
    let (heavy, heavy_streams) = zero_window_streams(&server, 20).await;
    tokio::time::timeout(Duration::from_secs(5), heavy)
        .await
        .expect("a connection holding 20 stalled answers over a cap of 8 was kept")
        .unwrap()
        .ok();
    assert!(
        !light.is_finished(),
        "the lighter connection was closed too"
    );
    assert_eq!(fetch(&server, "/upstream/up/small", &key).await, (200, 5));
    drop((light_streams, heavy_streams, send));
    server.stop().await;
}

/// Above `max_buffered_mib` of answers held across all connections, the connections holding the most are
/// closed at once (long before the write timeout); under the bound nothing is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_held_across_connections_are_bounded() {
    for (bound_mib, expect_closed) in [(64, false), (1, true)] {
        let (server, key) = start(|c| {
            c.server.max_buffered_mib = bound_mib;
            c.server.header_timeout_ms = 60_000;
            c.server.idle_timeout_secs = 60;
            c.server.write_timeout_secs = 60;
        })
        .await;
        // Six connections of unsent `/openapi.json` answers: about 1.4 MiB in all, whatever the document's size.
        let answer = aegis_gateway::openapi_document().to_string().len();
        let per_connection = (1_450_000 / 6 / answer).clamp(2, 40);
        let mut conns = Vec::new();
        let mut heads = Vec::new();
        for _ in 0..6 {
            let (conn, h) = zero_window_streams(&server, per_connection).await;
            conns.push(conn);
            heads.push(h);
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let closed = conns.iter().filter(|c| c.is_finished()).count();
        if expect_closed {
            assert!(
                (1..=3).contains(&closed),
                "{closed} of 6 connections closed over a 1 MiB bound (the heaviest only)"
            );
        } else {
            assert_eq!(closed, 0, "connections closed under a 64 MiB bound");
        }
        // Either way a legitimate client is served.
        assert_eq!(fetch(&server, "/upstream/up/small", &key).await, (200, 5));
        drop(heads);
        for c in conns {
            c.abort();
        }
        server.stop().await;
    }
}

/// A refusal (401 without a key, 401 with a bad one) to a request whose body follows its head is a complete
/// answer, and the keep-alive connection serves the next request; over HTTP/2 the refusal arrives as a
/// response, not a stream error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_answers_and_keep_the_connection() {
    let (server, key) = start(|_| {}).await;
    let body = "x".repeat(200_000);
    // HTTP/1.1: head first, body a moment later, then a second request on the same connection.
    let mut tcp = TcpStream::connect(server.info().addr).await.unwrap();
    let head = format!(
        "POST /upstream/up/small HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer aeg_bad\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tcp.write_all(body.as_bytes()).await.unwrap();
    let next = format!("GET /upstream/up/small HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n");
    tcp.write_all(next.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(LONG, tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert_eq!(out.matches("HTTP/1.1 ").count(), 2, "{out}");
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("small"), "{out}");

    // HTTP/2: the body is still being sent when the refusal comes.
    let tcp = TcpStream::connect(server.info().addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (mut tx, rx) = futures_channel_body();
    let req = http::Request::post(format!("http://{}/upstream/up/small", server.info().addr))
        .header("authorization", "Bearer aeg_bad")
        .body(rx)
        .unwrap();
    let pending = tokio::spawn(send.send_request(req));
    tx.send(Bytes::from(body.clone())).await;
    let resp = tokio::time::timeout(LONG, pending).await.unwrap().unwrap();
    let resp = resp.expect("an early refusal is a response, not a stream error");
    assert_eq!(resp.status(), 401);
    drop(tx);
    server.stop().await;
}

/// A request body fed from the test: `send` chunks, drop the sender to end it.
fn futures_channel_body() -> (BodyTx, http_body_util::StreamBody<tokio_stream_like::Rx>) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (BodyTx(tx), StreamBody::new(tokio_stream_like::Rx(rx)))
}

struct BodyTx(tokio::sync::mpsc::Sender<Bytes>);

impl BodyTx {
    async fn send(&mut self, b: Bytes) {
        let _ = self.0.send(b).await;
    }
}

mod tokio_stream_like {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct Rx(pub tokio::sync::mpsc::Receiver<Bytes>);

    impl futures_util::Stream for Rx {
        type Item = Result<Frame<Bytes>, Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
        }
    }
}
