//! Traffic through a real `aegis serve` on 127.0.0.1, on SQLite and PostgreSQL: rate limits and budgets on
//! every kind of inference route (local model, generic proxy, OpenAI streaming), limits shared by two gateways
//! on one database, body size and schema checks, batch and V2 shapes, the OpenAI proxy (pass-through, no
//! credential forwarding, scope before forwarding, unbuffered streaming), upstream failures, `/metrics`, the
//! overhead header and audit completeness under concurrency.
//!
//! Upstreams are tiny axum servers started inside each test; they count their hits and record the headers they
//! receive, so a test can prove what the gateway did or did not forward.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_gateway::audit_log::{self, AuditRecord};
use aegis_gateway::config::{Protocol, UpstreamConfig};
use aegis_gateway::identity::Role;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use support::{Backend, Resp, TestServer};
use tokio::sync::Notify;

/// A valid single-row predict body for the demo model.
const ROW: &str = r#"{"rows":[{"amount":2400,"hour":3,"merchant_risk":0.9,"card_age_days":12,"foreign":1,"n_tx_24h":14}]}"#;
const PREDICT: &str = "/v1/models/demo-fraud/predict";
const CHAT: &str = "/v1/chat/completions";
const PROXY: &str = "/upstream/pred/predict";
/// The OpenAI model the stub serves.
const LLM: &str = "gpt-test";

// ---------------------------------------------------------------------------------------------------------
// The upstream stub.

/// What the stub saw, shared with the test.
#[derive(Clone, Default)]
struct Stub {
    hits: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    /// Path and query of every request the fallback route answered.
    uris: Arc<Mutex<Vec<String>>>,
    /// A streaming answer asked to `wait` holds its second chunk until this fires.
    release: Arc<Notify>,
}

impl Stub {
    fn hit(&self, headers: &HeaderMap) {
        self.hits.fetch_add(1, Ordering::SeqCst);
        self.headers.lock().unwrap().push(headers.clone());
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn stub_chat(State(s): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    s.hit(&headers);
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if v["stream"] == true {
        let wait = v["wait"] == true;
        let release = s.release.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(4);
        tokio::spawn(async move {
            let _ = tx
                .send(Ok(Bytes::from_static(
                    b"data: {\"choices\":[{\"delta\":{\"content\":\"chunk-one\"}}]}\n\n",
                )))
                .await;
            if wait {
                release.notified().await;
            }
            let _ = tx
                .send(Ok(Bytes::from_static(
                    b"data: {\"choices\":[{\"delta\":{\"content\":\"chunk-two\"}}]}\n\n",
                )))
                .await;
            let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        return (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from_stream(stream),
        )
            .into_response();
    }
    Json(json!({
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "model": v["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello from stub"},
                     "finish_reason": "stop"}],
    }))
    .into_response()
}

async fn stub_predict(State(s): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    s.hit(&headers);
    Json(json!({"upstream": "pred", "bytes": body.len()})).into_response()
}

async fn stub_slow(State(s): State<Stub>, headers: HeaderMap) -> Response {
    s.hit(&headers);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Json(json!({"late": true})).into_response()
}

async fn stub_v2(State(s): State<Stub>, headers: HeaderMap) -> Response {
    s.hit(&headers);
    Json(json!({"model_name": "remote-v2", "outputs": [
        {"name": "out", "shape": [1], "datatype": "FP32", "data": [0.25]}]}))
    .into_response()
}

/// Any other path: record it and answer `{}`.
async fn stub_record(State(s): State<Stub>, request: axum::extract::Request) -> Response {
    s.hit(request.headers());
    s.uris.lock().unwrap().push(
        request
            .uri()
            .path_and_query()
            .map_or_else(String::new, ToString::to_string),
    );
    Json(json!({})).into_response()
}

/// Start the stub on 127.0.0.1:0.
async fn start_stub() -> (SocketAddr, Stub) {
    let stub = Stub::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(stub_chat))
        .route("/predict", any(stub_predict))
        .route("/slow/{*rest}", any(stub_slow))
        .route("/v2/models/{name}/infer", post(stub_v2))
        .fallback(stub_record)
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, stub)
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

fn upstream(name: &str, url: String, protocol: Protocol, models: &[&str]) -> UpstreamConfig {
    UpstreamConfig {
        name: name.into(),
        url,
        protocol,
        models: models.iter().map(|m| m.to_string()).collect(),
        max_concurrency: 64,
        timeout_ms: 5_000,
        llm_guard: None,
    }
}

/// The upstreams every scenario gets: `llm` (OpenAI, model `gpt-test`), `pred` (generic predict),
/// `v2up` (V2, model `remote-v2`), `down` (nothing listening) and `slow` (answers after 1.5 s, timeout 200 ms).
fn upstreams(addr: SocketAddr, closed: u16) -> Vec<UpstreamConfig> {
    let base = format!("http://{addr}");
    let mut slow = upstream("slow", format!("{base}/slow"), Protocol::Predict, &[]);
    slow.timeout_ms = 200;
    vec![
        upstream("llm", base.clone(), Protocol::Openai, &[LLM]),
        upstream("pred", base.clone(), Protocol::Predict, &[]),
        upstream("v2up", base, Protocol::V2, &["remote-v2"]),
        upstream(
            "down",
            format!("http://127.0.0.1:{closed}"),
            Protocol::Predict,
            &[],
        ),
        slow,
    ]
}

/// A gateway with the stub upstreams; `tweak` edits the config further.
async fn start_with_stub(
    backend: Backend,
    tweak: impl FnOnce(&mut aegis_gateway::config::Config),
) -> Option<(TestServer, Stub)> {
    let (addr, stub) = start_stub().await;
    let closed = closed_port().await;
    let server = support::start(backend, |c| {
        c.upstreams = upstreams(addr, closed);
        tweak(c);
    })
    .await?;
    Some((server, stub))
}

// ---------------------------------------------------------------------------------------------------------
// Assertions.

/// A JSON error with `status` and `code`, whose `request_id` is the `x-request-id` header.
fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "body: {}", r.text());
    let id = r.header("x-request-id").expect("x-request-id header");
    assert!(!id.is_empty());
    assert_eq!(v["error"]["request_id"].as_str(), Some(id.as_str()));
}

/// `x-aegis-overhead-ms` is present and a finite number ≥ 0.
fn assert_overhead(r: &Resp) {
    let text = r
        .header("x-aegis-overhead-ms")
        .unwrap_or_else(|| panic!("no x-aegis-overhead-ms on a {} response", r.status));
    let ms: f64 = text.parse().expect("overhead parses as f64");
    assert!(ms.is_finite() && ms >= 0.0, "overhead {ms}");
}

fn assert_ok(r: &Resp) {
    assert_eq!(r.status, 200, "body: {}", r.text());
    assert_overhead(r);
    assert!(r.header("x-request-id").is_some());
}

fn retry_after(r: &Resp) -> u64 {
    r.header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("Retry-After is whole seconds")
}

fn chat_body(stream: bool) -> String {
    json!({"model": LLM, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

/// Inference and denial records (not the startup `model`/`admin` ones), once at least `n` are stored (10 s).
async fn inference_records(server: &TestServer, n: usize) -> Vec<AuditRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let all = audit_log::list(server.db(), 0, 10_000).await.unwrap();
        let records: Vec<AuditRecord> = all
            .into_iter()
            .filter(|r| r.kind == "inference" || r.kind == "denied")
            .collect();
        if records.len() >= n || tokio::time::Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Rate limits and budgets.

async fn rate_limit(backend: Backend) {
    let Some((server, stub)) = start_with_stub(backend, |_| {}).await else {
        return;
    };
    // Everything the gateway serves is in the inventory: the local model, and each upstream as an endpoint.
    let assets = server.state().store.list_assets(None).await.unwrap();
    for name in ["demo-fraud", "llm", "pred", "v2up", "down", "slow"] {
        assert!(
            assets.iter().any(|a| a.name == name),
            "{name} is not an asset"
        );
    }
    let llm = assets.iter().find(|a| a.name == "llm").unwrap();
    assert_eq!(llm.kind, aegis_store::assets::AssetKind::Endpoint);
    assert!(
        llm.endpoint.starts_with("http://127.0.0.1:"),
        "{}",
        llm.endpoint
    );
    let tight = |k: &mut aegis_gateway::keys::NewKey| {
        k.burst = 3;
        k.rate_per_sec = 0.01;
    };
    // Local model.
    let key = server.key(&["demo-fraud"], tight).await;
    for _ in 0..3 {
        assert_ok(&server.post_key(PREDICT, &key, ROW).await);
    }
    let r = server.post_key(PREDICT, &key, ROW).await;
    assert_error(&r, 429, "rate_limit");
    assert!(retry_after(&r) >= 1);
    assert_overhead(&r);
    // A key with room is unaffected (negative case).
    let other = server.key(&["demo-fraud"], |_| {}).await;
    assert_ok(&server.post_key(PREDICT, &other, ROW).await);

    // Generic proxy.
    let key = server.key(&["pred"], tight).await;
    for _ in 0..3 {
        assert_ok(&server.post_key(PROXY, &key, "{}").await);
    }
    let before = stub.hits();
    let r = server.post_key(PROXY, &key, "{}").await;
    assert_error(&r, 429, "rate_limit");
    assert!(retry_after(&r) >= 1);
    assert_eq!(
        stub.hits(),
        before,
        "a refused request reached the upstream"
    );

    // OpenAI streaming.
    let key = server.key(&[LLM], tight).await;
    for _ in 0..3 {
        let r = server.post_key(CHAT, &key, &chat_body(true)).await;
        assert_ok(&r);
        assert!(r.text().contains("[DONE]"), "{}", r.text());
    }
    let before = stub.hits();
    let r = server.post_key(CHAT, &key, &chat_body(true)).await;
    assert_error(&r, 429, "rate_limit");
    assert!(retry_after(&r) >= 1);
    assert_eq!(stub.hits(), before);
    server.stop().await;
}

both!(rate_limits_on_every_route, rate_limit);

async fn budget(backend: Backend) {
    let Some((server, stub)) = start_with_stub(backend, |_| {}).await else {
        return;
    };
    let two = |k: &mut aegis_gateway::keys::NewKey| k.daily_budget = 2;
    let check = |r: &Resp| {
        assert_error(r, 429, "budget");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains("daily budget") && msg.contains("exhausted"),
            "{msg}"
        );
        assert!(retry_after(r) >= 1);
    };

    let key = server.key(&["demo-fraud"], two).await;
    assert_ok(&server.post_key(PREDICT, &key, ROW).await);
    assert_ok(&server.post_key(PREDICT, &key, ROW).await);
    check(&server.post_key(PREDICT, &key, ROW).await);

    let key = server.key(&["pred"], two).await;
    let start = stub.hits();
    assert_ok(&server.post_key(PROXY, &key, "{}").await);
    assert_ok(&server.post_key(PROXY, &key, "{}").await);
    assert_eq!(stub.hits(), start + 2);
    check(&server.post_key(PROXY, &key, "{}").await);
    assert_eq!(
        stub.hits(),
        start + 2,
        "a refused request reached the upstream"
    );

    let key = server.key(&[LLM], two).await;
    let start = stub.hits();
    assert_ok(&server.post_key(CHAT, &key, &chat_body(true)).await);
    assert_ok(&server.post_key(CHAT, &key, &chat_body(true)).await);
    assert_eq!(stub.hits(), start + 2);
    check(&server.post_key(CHAT, &key, &chat_body(true)).await);
    assert_eq!(
        stub.hits(),
        start + 2,
        "a refused request reached the upstream"
    );

    // Concurrent requests cannot overspend a budget.
    let key = server.key(&["demo-fraud"], |k| k.daily_budget = 5).await;
    let responses =
        futures_util::future::join_all((0..16).map(|_| server.post_key(PREDICT, &key, ROW))).await;
    assert_eq!(responses.iter().filter(|r| r.status == 200).count(), 5);
    for r in responses.iter().filter(|r| r.status != 200) {
        check(r);
    }
    server.stop().await;
}

both!(daily_budgets_on_every_route, budget);

async fn shared_limits(backend: Backend) {
    let Some(first) = support::start(backend, |_| {}).await else {
        return;
    };
    let url = first.db_url.clone();
    let secrets = first.state().config.secrets_path();
    let second = support::start(backend, |c| {
        c.server.database = Some(url);
        c.server.secrets_file = Some(secrets);
    })
    .await
    .unwrap();
    let key = first
        .key(&["demo-fraud"], |k| {
            k.burst = 4;
            k.rate_per_sec = 0.01;
        })
        .await;
    // Concurrent, alternating between the gateways: the charge is atomic in the shared database.
    let responses = futures_util::future::join_all((0..12).map(|i| {
        let server = if i % 2 == 0 { &first } else { &second };
        let key = &key;
        async move { server.post_key(PREDICT, key, ROW).await }
    }))
    .await;
    let mut admitted = 0;
    for r in &responses {
        match r.status {
            200 => admitted += 1,
            _ => assert_error(r, 429, "rate_limit"),
        }
    }
    assert_eq!(admitted, 4, "burst 4 is shared by both gateways");
    // Both gateways append to one audit chain, and it stays intact.
    let records = inference_records(&first, 12).await;
    assert_eq!(records.len(), 12, "{records:#?}");
    let v = audit_log::verify(first.db()).await.unwrap();
    assert!(v.problem.is_none(), "{v:?}");
    second.stop().await;
    first.stop().await;
}

both!(limits_are_shared_between_gateways, shared_limits);

// ---------------------------------------------------------------------------------------------------------
// Bodies and schemas.

/// POST `body` with no Content-Length (chunked, in 256-byte frames).
async fn post_chunked(server: &TestServer, path: &str, key: &str, body: Vec<u8>) -> Resp {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = body
        .chunks(256)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{}{path}", server.base))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    assert!(request.headers().get("content-length").is_none());
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("response within 10 s")
        .expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

async fn bodies(backend: Backend) {
    let Some(server) = support::start(backend, |c| c.server.max_body_bytes = 1024).await else {
        return;
    };
    let key = server.key(&["demo-fraud"], |_| {}).await;
    // Positive case: a valid body under the limit.
    assert_ok(&server.post_key(PREDICT, &key, ROW).await);
    let mut sent = 1;

    // Over the limit, with and without Content-Length, on predict and V2.
    let big = format!(r#"{{"rows":[],"pad":"{}"}}"#, "x".repeat(2000));
    for path in [PREDICT, "/v2/models/demo-fraud/infer"] {
        let r = server.post_key(path, &key, &big).await;
        assert_error(&r, 413, "too_large");
        sent += 1;
        assert_overhead(&r);
        let r = post_chunked(&server, path, &key, big.clone().into_bytes()).await;
        assert_error(&r, 413, "too_large");
        sent += 1;
    }
    // A chunked body under the limit is fine (negative case for the chunked check).
    assert_ok(&post_chunked(&server, PREDICT, &key, ROW.as_bytes().to_vec()).await);
    sent += 1;

    // Malformed JSON names the position.
    let r = server
        .post_key(PREDICT, &key, r#"{"rows":[{"amount":"#)
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_error(&r, 400, &r.code());
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("line 1 column"), "{msg}");
    sent += 1;

    // Schema violations name the field; the model is never run.
    let row = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut v: Value = serde_json::from_str(ROW).unwrap();
        edit(v["rows"][0].as_object_mut().unwrap());
        v.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            row(&|r| {
                r.insert("amount".into(), json!("2400"));
            }),
            "rows[0].amount",
        ),
        (
            row(&|r| {
                r.remove("hour");
            }),
            "rows[0].hour",
        ),
        (
            row(&|r| {
                r.insert("hour".into(), json!(30));
            }),
            "rows[0].hour",
        ),
        (
            row(&|r| {
                r.insert("zip".into(), json!(12345));
            }),
            "rows[0].zip",
        ),
        (
            r#"{"instances":[[2400,3,0.9]]}"#.to_string(),
            "instances[0]",
        ),
    ];
    for (body, field) in &cases {
        let r = server.post_key(PREDICT, &key, body).await;
        assert_error(&r, 400, "schema");
        assert_overhead(&r);
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(field), "{field} not named in {msg}");
        sent += 1;
    }

    let records = inference_records(&server, sent).await;
    assert_eq!(records.len(), sent, "{records:#?}");
    let allowed: Vec<_> = records.iter().filter(|r| r.decision == "allowed").collect();
    assert_eq!(
        allowed.len(),
        2,
        "only the two valid requests ran the model"
    );
    assert!(allowed.iter().all(|r| r.status == 200));
    for r in records.iter().filter(|r| r.decision != "allowed") {
        assert!(r.decision.starts_with("denied:"), "{r:?}");
        assert!(r.status == 400 || r.status == 413, "{r:?}");
    }
    server.stop().await;
}

both!(body_limits_and_schemas, bodies);

async fn batches_and_v2(backend: Backend) {
    let Some((server, stub)) = start_with_stub(backend, |_| {}).await else {
        return;
    };
    let key = server.key(&["demo-fraud", "remote-v2"], |_| {}).await;
    let columns = json!({"columns": {"amount": [2400, 12.5], "hour": [3, 14], "merchant_risk": [0.9, 0.1],
        "card_age_days": [12, 900], "foreign": [1, 0], "n_tx_24h": [14, 1]}});
    let r = server.post_key(PREDICT, &key, &columns.to_string()).await;
    assert_ok(&r);
    assert_eq!(r.json()["predictions"].as_array().unwrap().len(), 2);
    let r = server
        .post_key(
            PREDICT,
            &key,
            r#"{"instances":[[2400,3,0.9,12,1,14],[12.5,14,0.1,900,0,1],[1,1,0,1,0,0]]}"#,
        )
        .await;
    assert_ok(&r);
    assert_eq!(r.json()["predictions"].as_array().unwrap().len(), 3);

    // V2 infer on the local model.
    let v2 = json!({"id": "req-1", "inputs": [{"name": "input", "shape": [2, 6], "datatype": "FP32",
        "data": [2400, 3, 0.9, 12, 1, 14, 12.5, 14, 0.1, 900, 0, 1]}]});
    let r = server
        .post_key("/v2/models/demo-fraud/infer", &key, &v2.to_string())
        .await;
    assert_ok(&r);
    let v = r.json();
    assert_eq!(v["model_name"], "demo-fraud");
    assert_eq!(v["id"], "req-1");
    let outputs = v["outputs"].as_array().unwrap();
    assert!(outputs.iter().any(|o| o["name"] == "probabilities"
        && o["shape"] == json!([2, 2])
        && o["data"].as_array().unwrap().len() == 4));
    // A wrong V2 shape is refused naming the input.
    let bad = json!({"inputs": [{"name": "input", "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]});
    let r = server
        .post_key("/v2/models/demo-fraud/infer", &key, &bad.to_string())
        .await;
    assert_error(&r, 400, "schema");
    assert!(r.text().contains("inputs[0]"), "{}", r.text());

    // V2 metadata.
    let auth = format!("Bearer {key}");
    let r = server
        .request(
            "GET",
            "/v2/models/demo-fraud",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_ok(&r);
    let v = r.json();
    assert_eq!(v["name"], "demo-fraud");
    assert_eq!(v["inputs"][0]["shape"], json!([-1, 6]));
    let r = server
        .request("GET", "/v2/models/demo-fraud", &[], "")
        .await;
    assert_error(&r, 401, "no_key");

    // V2 forwarded to a V2 upstream.
    let before = stub.hits();
    let r = server
        .post_key("/v2/models/remote-v2/infer", &key, &v2.to_string())
        .await;
    assert_ok(&r);
    assert_eq!(r.json()["model_name"], "remote-v2");
    assert_eq!(stub.hits(), before + 1);
    server.stop().await;
}

both!(column_batches_instances_and_v2, batches_and_v2);

// ---------------------------------------------------------------------------------------------------------
// OpenAI proxy and upstream failures.

async fn openai_proxy(backend: Backend) {
    // The LLM guard off: this is the bare proxy (tests/llm_guard.rs covers the guard, which holds back the
    // last characters of a stream until it knows they carry no secret).
    let Some((server, stub)) = start_with_stub(backend, |c| {
        let llm = c.upstreams.iter_mut().find(|u| u.name == "llm").unwrap();
        llm.llm_guard = Some(aegis_gateway::llm_guard::LlmGuardConfig {
            mode: aegis_gateway::llm_guard::GuardMode::Off,
            canary: aegis_gateway::llm_guard::CanaryMode::Off,
            pii_prompts: aegis_gateway::llm_guard::PiiMode::Off,
            pii_answers: aegis_gateway::llm_guard::PiiMode::Off,
            ..Default::default()
        });
    })
    .await
    else {
        return;
    };
    let key = server.key(&[LLM], |_| {}).await;
    let auth = format!("Bearer {key}");

    // Non-streaming JSON passes through; the client's credentials stay at the gateway.
    let r = server
        .request(
            "POST",
            CHAT,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("x-api-key", "client-secret"),
                ("cookie", "session=client-secret"),
                ("x-trace", "kept"),
            ],
            chat_body(false),
        )
        .await;
    assert_ok(&r);
    let v = r.json();
    assert_eq!(v["id"], "chatcmpl-stub");
    assert_eq!(v["choices"][0]["message"]["content"], "hello from stub");
    {
        let seen = stub.headers.lock().unwrap();
        let last = seen.last().expect("the stub was called");
        assert!(last.get("authorization").is_none(), "{last:?}");
        assert!(last.get("x-api-key").is_none());
        assert!(last.get("cookie").is_none());
        assert_eq!(
            last.get("x-trace").unwrap(),
            "kept",
            "ordinary headers pass"
        );
        assert_eq!(
            last.get("x-request-id").unwrap().to_str().unwrap(),
            r.header("x-request-id").unwrap(),
            "the upstream gets the gateway's request id"
        );
        let dump = format!("{:?}", *seen);
        assert!(!dump.contains(&key), "the key reached the upstream");
    }

    // A model no upstream serves.
    let any = server.key(&["*"], |_| {}).await;
    let before = stub.hits();
    let r = server
        .post_key(CHAT, &any, r#"{"model":"no-such-llm","messages":[]}"#)
        .await;
    assert_error(&r, 404, "not_found");
    // A key not scoped to the model: refused before anything is forwarded.
    let other = server.key(&["demo-fraud"], |_| {}).await;
    let r = server.post_key(CHAT, &other, &chat_body(false)).await;
    assert_error(&r, 403, "scope");
    let r = server.post_key(CHAT, &other, &chat_body(true)).await;
    assert_error(&r, 403, "scope");
    // Missing model field.
    let r = server.post_key(CHAT, &key, r#"{"messages":[]}"#).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(stub.hits(), before, "nothing was forwarded");

    // Streaming is not buffered: chunk 1 arrives while the upstream still holds chunk 2.
    let streamed = tokio::time::timeout(Duration::from_secs(10), async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let body = json!({"model": LLM, "stream": true, "wait": true, "messages": []}).to_string();
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("{}{CHAT}", server.base))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("x-aegis-overhead-ms").is_some());
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        let mut body = response.into_body();
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("chunk-one") {
            let frame = body.frame().await.expect("chunk 1 before the end").unwrap();
            if let Ok(data) = frame.into_data() {
                seen.extend_from_slice(&data);
            }
        }
        assert!(!String::from_utf8_lossy(&seen).contains("chunk-two"));
        stub.release.notify_one();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                seen.extend_from_slice(&data);
            }
        }
        String::from_utf8(seen).unwrap()
    })
    .await
    .expect("the gateway buffered the stream (chunk 1 never arrived alone)");
    assert!(streamed.contains("chunk-two") && streamed.ends_with("data: [DONE]\n\n"));

    let records = inference_records(&server, 6).await;
    let chats: Vec<_> = records.iter().filter(|r| r.route == CHAT).collect();
    assert!(chats
        .iter()
        .any(|r| r.decision == "allowed" && r.detail == "stream" && r.model == LLM));
    assert!(chats.iter().any(|r| r.decision == "denied:scope"));
    server.stop().await;
}

both!(openai_proxy_passes_through_and_streams, openai_proxy);

async fn upstream_failures(backend: Backend) {
    let Some((server, _stub)) = start_with_stub(backend, |_| {}).await else {
        return;
    };
    let key = server.key(&["down", "slow", "pred"], |_| {}).await;
    let r = server.post_key("/upstream/down/predict", &key, "{}").await;
    assert_error(&r, 502, "upstream");
    assert_overhead(&r);
    assert!(!r.text().contains("127.0.0.1"), "no addresses to clients");
    let r = server.post_key("/upstream/slow/predict", &key, "{}").await;
    assert_error(&r, 504, "upstream");
    // Positive case: a healthy upstream answers.
    assert_ok(&server.post_key(PROXY, &key, "{}").await);

    let records = inference_records(&server, 3).await;
    let failed: Vec<_> = records
        .iter()
        .filter(|r| r.decision == "error:upstream")
        .collect();
    assert!(
        failed.iter().any(|r| r.status == 502 && r.model == "down"),
        "{records:#?}"
    );
    assert!(
        failed.iter().any(|r| r.status == 504 && r.model == "slow"),
        "{records:#?}"
    );
    server.stop().await;
}

both!(upstream_down_and_slow, upstream_failures);

// ---------------------------------------------------------------------------------------------------------
// Metrics.

async fn metrics(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let r = server.request("GET", "/metrics", &[], "").await;
    assert_eq!(r.status, 401, "{}", r.text());
    let key = server
        .key(&["demo-fraud"], |k| {
            k.burst = 1;
            k.rate_per_sec = 0.01;
        })
        .await;
    assert_ok(&server.post_key(PREDICT, &key, ROW).await);
    assert_error(
        &server.post_key(PREDICT, &key, ROW).await,
        429,
        "rate_limit",
    );
    // An API key is not a session.
    let auth = format!("Bearer {key}");
    let r = server
        .request("GET", "/metrics", &[("authorization", &auth)], "")
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let client = server.session("client1", Role::Client).await;
    let r = server.with_session("GET", "/metrics", &client, "").await;
    assert!(r.status == 403 || r.status == 401, "{}", r.status);

    let auditor = server.session("auditor1", Role::Auditor).await;
    let r = server.with_session("GET", "/metrics", &auditor, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    for needle in [
        "aegis_requests_total",
        "aegis_gateway_overhead_seconds_bucket",
        "aegis_denials_total{reason=\"rate_limit\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    server.stop().await;

    let Some(open) = support::start(backend, |c| c.server.metrics_public = true).await else {
        return;
    };
    let r = open.request("GET", "/metrics", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("aegis_requests_total"));
    open.stop().await;
}

both!(metrics_need_a_session_unless_public, metrics);

// ---------------------------------------------------------------------------------------------------------
// Audit completeness.

async fn audit_completeness(backend: Backend) {
    // A 1 s window for refusals without an identity, so their summary arrives within the test.
    let Some(server) = support::start(backend, |c| c.server.refusal_summary_secs = 1).await else {
        return;
    };
    let good = server.key(&["demo-fraud"], |_| {}).await;
    let limited = server
        .key(&["demo-fraud"], |k| {
            k.burst = 1;
            k.rate_per_sec = 0.01;
        })
        .await;
    const N: usize = 200;
    const TASKS: usize = 8;
    let bad_schema = r#"{"rows":[{"amount":"lots"}]}"#;
    let unknown_key = "aeg_nonexistent_key_000000000000000000";
    let statuses = futures_util::future::join_all((0..TASKS).map(|t| {
        let server = &server;
        let (good, limited) = (&good, &limited);
        async move {
            let mut statuses = Vec::new();
            for i in (t..N).step_by(TASKS) {
                let r = match i % 4 {
                    0 => server.post_key(PREDICT, good, ROW).await,
                    1 => server.post_key(PREDICT, good, bad_schema).await,
                    2 => server.post_key(PREDICT, unknown_key, ROW).await,
                    _ => server.post_key(PREDICT, limited, ROW).await,
                };
                assert!(r.header("x-request-id").is_some());
                statuses.push(r.status);
            }
            statuses
        }
    }))
    .await;
    let statuses: Vec<u16> = statuses.into_iter().flatten().collect();
    assert_eq!(statuses.len(), N);
    assert!(
        statuses.iter().all(|s| [200, 400, 401, 429].contains(s)),
        "{statuses:?}"
    );
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    assert_eq!(ok, N / 4 + 1, "the good key's requests and one limited one");

    // Every request with an identity is one record; the N/4 with an unknown key (all from 127.0.0.1) are one
    // full record and one summary that counts the rest.
    let anonymous = statuses.iter().filter(|&&s| s == 401).count();
    assert_eq!(anonymous, N / 4);
    let records = inference_records(&server, N - anonymous + 2).await;
    assert_eq!(
        records.len(),
        N - anonymous + 2,
        "every request with an identity is audited exactly once"
    );
    let summaries: Vec<_> = records
        .iter()
        .filter(|r| r.detail.contains("more refusals"))
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    assert!(
        summaries[0]
            .detail
            .starts_with(&format!("{} more refusals", anonymous - 1)),
        "{}",
        summaries[0].detail
    );
    assert_eq!(
        records.iter().filter(|r| r.decision == "allowed").count(),
        ok
    );
    assert!(records
        .iter()
        .all(|r| r.route == "/v1/models/{name}/predict"));
    let v = audit_log::verify(server.db()).await.unwrap();
    assert!(v.problem.is_none(), "{v:?}");
    assert_eq!(v.records, v.head_seq);
    assert!(v.records >= (N - anonymous + 2) as i64);
    server.stop().await;
}

both!(every_request_is_audited_once, audit_completeness);

/// `n` rows for the demo model, as `instances`.
fn instances(n: usize) -> String {
    let rows: Vec<Value> = (0..n)
        .map(|i| json!([100 + i, 3, 0.5, 12, 1, 14]))
        .collect();
    json!({ "instances": rows }).to_string()
}

/// A batch costs one unit per row of the key's rate limit and budgets, on predict and V2 alike; a batch above
/// the server's row cap or the key's burst is refused with what to do, and nothing is charged for it beyond
/// the admission.
async fn rows_are_the_cost(backend: Backend) {
    let Some(server) = support::start(backend, |c| c.server.max_rows_per_request = 100).await
    else {
        return;
    };
    // Generous rate, burst 50, daily budget 100 rows.
    let key = server
        .key(&["demo-fraud"], |k| {
            k.rate_per_sec = 1000.0;
            k.burst = 50;
            k.daily_budget = 100;
        })
        .await;
    let r = server.post_key(PREDICT, &key, &instances(150)).await;
    assert_error(&r, 400, "too_many_rows");
    assert!(r.text().contains("at most 100"), "{}", r.text());
    let r = server.post_key(PREDICT, &key, &instances(60)).await;
    assert_error(&r, 400, "too_many_rows");
    assert!(r.text().contains("burst"), "{}", r.text());
    // Two refusals charged one unit each (their admission); 40 + 40 rows fit the remaining 98.
    assert_ok(&server.post_key(PREDICT, &key, &instances(40)).await);
    // Let the rate (1,000 rows/s) refill the burst; only the budget is under test here.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let data = [2400.0, 3.0, 0.9, 12.0, 1.0, 14.0_f64].repeat(40);
    let v2 = json!({"inputs": [{"name": "input", "shape": [40, 6], "datatype": "FP32",
        "data": data}]});
    let r = server
        .post_key("/v2/models/demo-fraud/infer", &key, &v2.to_string())
        .await;
    assert_ok(&r);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = server.post_key(PREDICT, &key, &instances(40)).await;
    assert_error(&r, 429, "budget");
    assert!(r.text().contains("40 rows"), "{}", r.text());
    // Single rows still fit what is left.
    assert_ok(&server.post_key(PREDICT, &key, ROW).await);

    // The rate limit counts rows too: burst 50 at 1 row/s admits one 50-row batch, then refuses the next.
    let slow = server
        .key(&["demo-fraud"], |k| {
            k.rate_per_sec = 1.0;
            k.burst = 50;
        })
        .await;
    assert_ok(&server.post_key(PREDICT, &slow, &instances(50)).await);
    let r = server.post_key(PREDICT, &slow, &instances(10)).await;
    assert_error(&r, 429, "rate_limit");
    server.stop().await;
}

both!(batch_rows_cost_units, rows_are_the_cost);

/// `/upstream/{name}/…` reaches only `predict` upstreams: a key scoped to an OpenAI or V2 upstream's *name* cannot
/// use it to reach models its scope does not name.
async fn generic_proxy_only_for_predict_upstreams(backend: Backend) {
    let Some((server, stub)) = start_with_stub(backend, |_| {}).await else {
        return;
    };
    let key = server.key(&["*"], |_| {}).await;
    let hits = stub.hits.load(std::sync::atomic::Ordering::SeqCst);
    let r = server
        .post_key("/upstream/llm/v1/chat/completions", &key, &chat_body(false))
        .await;
    assert_error(&r, 404, "not_found");
    let r = server
        .post_key("/upstream/v2up/v2/models/remote-v2/infer", &key, "{}")
        .await;
    assert_error(&r, 404, "not_found");
    assert_eq!(
        stub.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits,
        "nothing was forwarded"
    );
    // A predict upstream still works (the positive case).
    assert_ok(&server.post_key("/upstream/pred/predict", &key, "{}").await);
    server.stop().await;
}

both!(
    generic_proxy_reaches_only_predict_upstreams,
    generic_proxy_only_for_predict_upstreams
);

/// One request over HTTP/2 (prior knowledge on the plaintext listener), the path sent as written.
async fn h2_request(server: &TestServer, method: &str, path: &str, key: &str) -> (u16, Bytes) {
    let stream = tokio::net::TcpStream::connect(server.info().addr)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", server.info().addr))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("answer within 10 s")
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// The upstream only ever gets a path under its base: every doubly encoded or encoded separator, dot segment,
/// `%`, `?` and `#` is refused (400 `path`) over HTTP/1.1 and HTTP/2 before anything is forwarded, a clean
/// path arrives canonically encoded, methods the proxy does not need (`TRACE`) are refused, and the client
/// cannot set the forwarding headers or strip the gateway's own with `Connection`.
async fn upstream_paths_and_forwarding(backend: Backend) {
    let Some((server, stub)) = start_with_stub(backend, |_| {}).await else {
        return;
    };
    let key = server.key(&["pred"], |_| {}).await;
    let escapes = [
        "%252e%252e%252fsecret",
        "..%252f",
        "%2e%2e%252f",
        "x/..%252f..%252f",
        "..%2fsecret",
        "a%2Fb",
        "a%5Cb",
        "predict%3Fadmin=1",
        "predict%23x",
        "%2e%2e/%2e%2e/etc/passwd",
    ];
    let before = stub.hits();
    for bad in escapes {
        let path = format!("/upstream/pred/{bad}");
        let r = server.post_key(&path, &key, "{}").await;
        assert_error(&r, 400, "path");
        let (status, body) = h2_request(&server, "POST", &path, &key).await;
        assert_eq!(status, 400, "HTTP/2 {path}: {body:?}");
        assert!(
            String::from_utf8_lossy(&body).contains("\"path\""),
            "{body:?}"
        );
    }
    assert_eq!(stub.hits(), before, "an escaping path was forwarded");

    let r = server
        .post_key("/upstream/pred/caf%C3%A9/x%20y?v=1", &key, "{}")
        .await;
    assert_ok(&r);
    let (status, _) = h2_request(&server, "POST", "/upstream/pred/caf%C3%A9/x%20y?v=1", &key).await;
    assert_eq!(status, 200);
    assert_eq!(
        stub.uris.lock().unwrap().as_slice(),
        ["/caf%C3%A9/x%20y?v=1", "/caf%C3%A9/x%20y?v=1"]
    );

    let auth = format!("Bearer {key}");
    let r = server
        .request(
            "TRACE",
            "/upstream/pred/predict",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_error(&r, 405, "method");

    let r = server
        .request(
            "POST",
            "/upstream/pred/predict",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("x-forwarded-for", "203.0.113.9"),
                ("forwarded", "for=203.0.113.9"),
                ("x-real-ip", "203.0.113.9"),
                ("x-request-id", "chosen-by-client"),
                ("connection", "x-request-id, x-forwarded-for"),
            ],
            "{}",
        )
        .await;
    assert_ok(&r);
    let seen = stub.headers.lock().unwrap().last().unwrap().clone();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-real-ip"], "127.0.0.1");
    assert_eq!(seen["forwarded"], "for=127.0.0.1;proto=http");
    assert_eq!(
        seen["x-request-id"].to_str().unwrap(),
        r.header("x-request-id").unwrap()
    );
    server.stop().await;
}

both!(
    upstream_paths_stay_under_the_base_and_forwarding_headers_are_the_gateways,
    upstream_paths_and_forwarding
);
