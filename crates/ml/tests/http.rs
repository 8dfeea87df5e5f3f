//! `HttpModel` against a tiny in-process HTTP/1.1 server on 127.0.0.1 serving a known linear model.
//!
//! Each test starts its own server thread that answers a bounded number of connections (one request each,
//! `Connection: close`) and then stops accepting, so no test can hang on it. The server records every request
//! it saw, so the tests check what went over the wire as well as what the client returned.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use aegis_ml::http::{HttpModel, HttpModelConfig, Protocol};
use aegis_ml::{Error, Model};
use serde_json::{json, Value};

const D: usize = 4;
const K: usize = 3;
const W: [[f64; D]; K] = [
    [1.0, -0.5, 0.25, 0.0],
    [-0.3, 0.8, -0.1, 0.5],
    [0.2, 0.1, -0.7, -0.4],
];
const B: [f64; K] = [0.1, -0.2, 0.05];

fn logits(row: &[f64]) -> Vec<f64> {
    (0..K)
        .map(|c| B[c] + W[c].iter().zip(row).map(|(w, x)| w * x).sum::<f64>())
        .collect()
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (j, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = j;
        }
    }
    best
}

/// `n` rows of `D` features in [-2, 2] from a seeded LCG.
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n * D)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 4.0 - 2.0) as f32
        })
        .collect()
}

fn expected(x: &[f32]) -> Vec<f32> {
    x.chunks(D)
        .flat_map(|row| {
            let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            softmax(&logits(&row))
        })
        .map(|p| p as f32)
        .collect()
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-5, "value {i}: got {g}, want {w}");
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The rows of a JSON-protocol request.
    fn instances(&self) -> Vec<Vec<f64>> {
        self.json()["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            })
            .collect()
    }
}

struct Reply {
    status: u16,
    body: String,
}

fn ok(body: Value) -> Reply {
    Reply {
        status: 200,
        body: body.to_string(),
    }
}

fn status(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.to_string(),
    }
}

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serve at most `max_connections` connections, one request each; `handler` gets the connection index.
fn serve<F>(max_connections: usize, handler: F) -> Server
where
    F: Fn(usize, &Seen) -> Reply + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    thread::spawn(move || {
        for (i, stream) in listener.incoming().take(max_connections).enumerate() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let Some(request) = read_request(&mut stream) else {
                continue;
            };
            let reply = handler(i, &request);
            log.lock().unwrap().push(request);
            let reason = match reply.status {
                200 => "OK",
                400 => "Bad Request",
                401 => "Unauthorized",
                429 => "Too Many Requests",
                503 => "Service Unavailable",
                _ => "Status",
            };
            let head = format!(
                "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reply.status,
                reply.body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(reply.body.as_bytes());
            let _ = stream.flush();
        }
    });
    Server { base, seen }
}

/// Minimal HTTP/1.1 request reader: head up to 64 KiB, body by Content-Length up to 16 MiB.
fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let got = stream.read(&mut chunk).ok()?;
        if got == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..got]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > 16 << 20 {
        return None;
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let got = stream.read(&mut chunk).ok()?;
        if got == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..got]);
    }
    body.truncate(len);
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

/// Probabilities of the linear model for a JSON-protocol request.
fn json_probabilities(req: &Seen) -> Vec<Vec<f64>> {
    req.instances()
        .iter()
        .map(|r| softmax(&logits(r)))
        .collect()
}

fn json_model(url: String) -> HttpModelConfig {
    HttpModelConfig::new(url, Protocol::Json, D)
}

fn eval_message(err: Error) -> String {
    match err {
        Error::Eval(m) => m,
        other => panic!("expected an evaluation error, got {other:?}"),
    }
}

#[test]
fn json_endpoint_gives_the_linear_model_probabilities() {
    let server = serve(1, |_, req| {
        ok(json!({ "predictions": json_probabilities(req) }))
    });
    let model = HttpModel::new(json_model(server.url("/predict"))).unwrap();
    assert_eq!(model.n_classes(), 0, "unknown until the first response");
    let x = data(10, 1);
    let p = model.predict_proba(&x, 10).unwrap();
    assert_close(&p, &expected(&x));
    assert_eq!(model.n_classes(), K, "learnt from the response");
    assert!(!model.labels_only());
    assert_eq!((model.requests(), model.queries()), (1, 10));
    let seen = server.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/predict");
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    let sent: Vec<f32> = seen[0]
        .instances()
        .concat()
        .iter()
        .map(|&v| v as f32)
        .collect();
    assert_eq!(sent, x, "inputs go over the wire exactly");
    assert!(model.as_differentiable().is_none());
    assert!(model.describe().starts_with("http-json http://127.0.0.1:"));
}

#[test]
fn json_endpoint_accepts_probabilities_key_bare_array_and_logits() {
    let server = serve(3, |i, req| match i {
        0 => ok(json!({ "probabilities": json_probabilities(req) })),
        1 => ok(json!(json_probabilities(req))),
        // Raw logits: the client applies a softmax.
        _ => {
            ok(json!({ "outputs": req.instances().iter().map(|r| logits(r)).collect::<Vec<_>>() }))
        }
    });
    let mut config = json_model(server.url("/"));
    config.n_classes = Some(K);
    let model = HttpModel::new(config).unwrap();
    let x = data(5, 2);
    for _ in 0..3 {
        assert_close(&model.predict_proba(&x, 5).unwrap(), &expected(&x));
    }
    assert!(!model.labels_only());
}

#[test]
fn kserve_v2_endpoint_gives_the_linear_model_probabilities() {
    let server = serve(1, |_, req| {
        let body = req.json();
        let input = &body["inputs"][0];
        if req.path != "/v2/models/linear/infer"
            || input["name"] != "features"
            || input["datatype"] != "FP32"
        {
            return status(400, "wrong request");
        }
        let n = input["shape"][0].as_u64().unwrap() as usize;
        assert_eq!(input["shape"][1].as_u64(), Some(D as u64));
        let flat: Vec<f64> = input["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let out: Vec<f64> = flat.chunks(D).flat_map(|r| softmax(&logits(r))).collect();
        ok(json!({
            "model_name": "linear",
            "outputs": [{ "name": "probs", "shape": [n, K], "datatype": "FP32", "data": out }]
        }))
    });
    let mut config = HttpModelConfig::new(
        server.url("/"),
        Protocol::KServeV2 {
            model: "linear".into(),
        },
        D,
    );
    config.input_name = "features".into();
    let model = HttpModel::new(config).unwrap();
    let x = data(7, 3);
    let p = model.predict_proba(&x, 7).unwrap();
    assert_close(&p, &expected(&x));
    assert_eq!(model.n_classes(), K);
    assert!(model.describe().ends_with("/v2/models/linear/infer"));
}

#[test]
fn kserve_v2_label_output_is_one_hot() {
    let server = serve(1, |_, req| {
        let input = &req.json()["inputs"][0];
        let flat: Vec<f64> = input["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let labels: Vec<usize> = flat.chunks(D).map(|r| argmax(&logits(r))).collect();
        ok(
            json!({ "outputs": [{ "name": "label", "shape": [labels.len()], "datatype": "INT64", "data": labels }] }),
        )
    });
    let mut config = HttpModelConfig::new(
        server.base.clone(),
        Protocol::KServeV2 { model: "m".into() },
        D,
    );
    config.n_classes = Some(K);
    let model = HttpModel::new(config).unwrap();
    let x = data(6, 4);
    let p = model.predict_proba(&x, 6).unwrap();
    assert!(model.labels_only());
    let want: Vec<u32> = expected(&x)
        .chunks(K)
        .map(|r| argmax(&r.iter().map(|&v| v as f64).collect::<Vec<_>>()) as u32)
        .collect();
    assert_eq!(aegis_ml::argmax_rows(&p, K), want);
}

#[test]
fn rows_are_sent_in_batches() {
    let server = serve(3, |_, req| {
        ok(json!({ "predictions": json_probabilities(req) }))
    });
    let model = HttpModel::new(json_model(server.url("/predict"))).unwrap();
    let x = data(150, 5);
    let p = model.predict_proba(&x, 150).unwrap();
    assert_close(&p, &expected(&x));
    assert_eq!(model.requests(), 3);
    assert_eq!(model.queries(), 150);
    let sizes: Vec<usize> = server.seen().iter().map(|s| s.instances().len()).collect();
    assert_eq!(sizes, vec![64, 64, 22]);
    // No rows, no request.
    assert!(model.predict_proba(&[], 0).unwrap().is_empty());
    assert_eq!(model.requests(), 3);
}

#[test]
fn a_503_is_retried_then_succeeds() {
    let server = serve(2, |i, req| match i {
        0 => status(503, "warming up"),
        _ => ok(json!({ "predictions": json_probabilities(req) })),
    });
    let model = HttpModel::new(json_model(server.url("/predict"))).unwrap();
    let x = data(3, 6);
    assert_close(&model.predict_proba(&x, 3).unwrap(), &expected(&x));
    assert_eq!(model.requests(), 2);
    assert_eq!(model.queries(), 6, "rows of retried requests count too");
    assert_eq!(server.seen().len(), 2);
}

#[test]
fn retries_give_up_with_the_last_status() {
    let server = serve(2, |_, _| status(429, "slow down"));
    let mut config = json_model(server.url("/predict"));
    config.max_retries = 1;
    let model = HttpModel::new(config).unwrap();
    let msg = eval_message(model.predict_proba(&data(1, 7), 1).unwrap_err());
    assert!(msg.contains("HTTP 429"), "{msg}");
    assert!(msg.contains("2 attempts"), "{msg}");
    assert!(msg.contains(&server.base), "{msg}");
    assert_eq!(model.requests(), 2);
}

#[test]
fn a_400_is_not_retried_and_is_reported_clearly() {
    let server = serve(4, |_, _| status(400, r#"{"error": "expected 5 features"}"#));
    let model = HttpModel::new(json_model(server.url("/predict"))).unwrap();
    let msg = eval_message(model.predict_proba(&data(2, 8), 2).unwrap_err());
    assert!(msg.contains("HTTP 400"), "{msg}");
    assert!(msg.contains("expected 5 features"), "{msg}");
    assert!(msg.contains(&server.url("/predict")), "{msg}");
    assert_eq!(model.requests(), 1);
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn a_refused_connection_is_retried_then_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/predict", listener.local_addr().unwrap());
    drop(listener);
    let mut config = json_model(url.clone());
    config.max_retries = 1;
    let model = HttpModel::new(config).unwrap();
    let msg = eval_message(model.predict_proba(&data(1, 9), 1).unwrap_err());
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("2 attempts"), "{msg}");
    assert_eq!(model.requests(), 2);
}

#[test]
fn a_label_only_endpoint_gives_one_hot_rows() {
    let server = serve(2, |_, req| {
        let labels: Vec<usize> = req.instances().iter().map(|r| argmax(&logits(r))).collect();
        ok(json!({ "predictions": labels }))
    });
    let mut config = json_model(server.url("/predict"));
    config.n_classes = Some(K);
    let model = HttpModel::new(config).unwrap();
    let x = data(20, 10);
    let p = model.predict_proba(&x, 20).unwrap();
    assert!(model.labels_only());
    let want = aegis_ml::argmax_rows(&expected(&x), K);
    assert_eq!(aegis_ml::argmax_rows(&p, K), want);
    for row in p.chunks(K) {
        assert_eq!(row.iter().filter(|&&v| v == 1.0).count(), 1);
        assert_eq!(row.iter().sum::<f32>(), 1.0);
    }

    // Without a class count the labels cannot be expanded: a clear error, not a guess.
    let model = HttpModel::new(json_model(server.url("/predict"))).unwrap();
    let msg = eval_message(model.predict_proba(&x[..D], 1).unwrap_err());
    assert!(
        msg.contains("labels only") && msg.contains("n_classes"),
        "{msg}"
    );
}

#[test]
fn class_name_labels_map_through_class_names() {
    let server = serve(1, |_, _| {
        ok(json!({ "predictions": ["virginica", "setosa"] }))
    });
    let mut config = json_model(server.url("/predict"));
    config.class_names = vec!["setosa".into(), "versicolor".into(), "virginica".into()];
    let model = HttpModel::new(config).unwrap();
    assert_eq!(model.n_classes(), 3);
    let p = model.predict_proba(&data(2, 11), 2).unwrap();
    assert_eq!(p, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    assert!(model.labels_only());
}

#[test]
fn one_score_per_row_is_a_binary_probability() {
    let server = serve(1, |_, _| ok(json!([0.25, [0.9]])));
    let model = HttpModel::new(json_model(server.url("/"))).unwrap();
    let p = model.predict_proba(&data(2, 12), 2).unwrap();
    assert_close(&p, &[0.75, 0.25, 0.1, 0.9]);
    assert_eq!(model.n_classes(), 2);
    assert!(!model.labels_only());
}

#[test]
fn malformed_responses_are_clear_errors_naming_the_url() {
    let server = serve(5, |i, req| {
        let mut probs = json_probabilities(req);
        match i {
            0 => {
                probs.pop();
                ok(json!({ "predictions": probs }))
            }
            1 => {
                probs[1].pop();
                ok(json!({ "predictions": probs }))
            }
            2 => ok(json!({ "result": probs })),
            3 => ok(json!({ "predictions": [[0.5, null, 0.5], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]] })),
            _ => status(200, "<html>not json</html>"),
        }
    });
    let url = server.url("/predict");
    let model = HttpModel::new(json_model(url.clone())).unwrap();
    let x = data(3, 13);
    let wants = [
        "response has 2 rows, expected 3",
        "row 1 has 2 values",
        "expected `predictions`",
        "row 0 value 1 is not a number",
        "not JSON",
    ];
    for want in wants {
        let msg = eval_message(model.predict_proba(&x, 3).unwrap_err());
        assert!(msg.contains(want), "{msg}");
        assert!(msg.contains(&url), "{msg}");
    }
    assert_eq!(model.requests(), 5, "invalid responses are not retried");
}

#[test]
fn an_oversized_response_is_refused() {
    let server = serve(1, |_, _| {
        ok(json!({ "predictions": vec![vec![0.5; 2]; 1000] }))
    });
    let mut config = json_model(server.url("/predict"));
    config.max_response_bytes = 4096;
    let model = HttpModel::new(config).unwrap();
    let msg = eval_message(model.predict_proba(&data(1000, 14), 1000).unwrap_err());
    assert!(msg.contains("4096-byte limit"), "{msg}");
}

#[test]
fn non_finite_inputs_and_wrong_shapes_send_nothing() {
    let model = HttpModel::new(json_model("http://127.0.0.1:9/predict".into())).unwrap();
    let mut x = data(2, 15);
    x[5] = f32::NAN;
    let msg = eval_message(model.predict_proba(&x, 2).unwrap_err());
    assert!(msg.contains("row 1 feature 1 is not finite"), "{msg}");
    assert!(matches!(
        model.predict_proba(&x[..3], 1),
        Err(Error::Shape { .. })
    ));
    assert_eq!(model.requests(), 0);
}

#[test]
fn header_values_never_appear_in_errors_or_debug() {
    const TOKEN: &str = "Bearer s3cr3t-token-XYZ";
    const KEY: &str = "k-9f8e7d6c5b";
    const QUERY_KEY: &str = "qwerty12345";
    // The server checks the credentials, then echoes them back in a 400.
    let server = serve(2, |i, req| {
        let auth = req.header("authorization").unwrap_or_default().to_string();
        let key = req.header("x-api-key").unwrap_or_default().to_string();
        if auth != TOKEN || key != KEY || !req.path.ends_with(QUERY_KEY) {
            return status(401, "missing credentials");
        }
        match i {
            0 => ok(json!({ "predictions": json_probabilities(req) })),
            _ => status(
                400,
                &format!("bad request from {auth} key={key} url={}", req.path),
            ),
        }
    });
    let config = json_model(server.url(&format!("/predict?api_key={QUERY_KEY}")))
        .with_header("Authorization", TOKEN)
        .with_header("X-Api-Key", KEY);
    let model = HttpModel::new(config.clone()).unwrap();
    // Positive: the credentials are sent.
    let x = data(2, 16);
    assert_close(&model.predict_proba(&x, 2).unwrap(), &expected(&x));
    // Negative: they are never printed.
    let err = model.predict_proba(&x, 2).unwrap_err();
    let texts = [
        err.to_string(),
        format!("{err:?}"),
        format!("{model:?}"),
        format!("{config:?}"),
        model.describe(),
        model.shown_url().to_string(),
    ];
    for text in &texts {
        for secret in [TOKEN, "s3cr3t-token-XYZ", KEY, QUERY_KEY] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
    assert!(texts[0].contains("HTTP 400") && texts[0].contains("<redacted>"));
    assert!(texts[3].contains("Authorization") && texts[3].contains("<redacted>"));

    // An invalid header value is named by its header, not its value.
    let bad = json_model(server.url("/p")).with_header("Authorization", "Bearer abc\r\ndef-secret");
    let msg = HttpModel::new(bad).unwrap_err().to_string();
    assert!(
        msg.contains("Authorization") && !msg.contains("def-secret"),
        "{msg}"
    );
    // So is a whole `Name: value` line passed as the name.
    let bad = json_model(server.url("/p")).with_header("X-Api-Key: k-0123456789", "");
    let msg = HttpModel::new(bad).unwrap_err().to_string();
    assert!(
        msg.contains("X-Api-Key") && !msg.contains("k-0123456789"),
        "{msg}"
    );
}

#[test]
fn bad_configurations_are_load_errors_naming_the_url() {
    let cases: Vec<(HttpModelConfig, &str)> = vec![
        (json_model("https://models.example/predict".into()), "https"),
        (json_model("ftp://models.example/predict".into()), "http://"),
        (json_model("models.example/predict".into()), "http://"),
        (
            json_model("http://user:hunter2pass@models.example/predict".into()),
            "credentials",
        ),
        (
            {
                let mut c = json_model("http://models.example/predict".into());
                c.batch_size = 0;
                c
            },
            "batch_size",
        ),
        (
            {
                let mut c = json_model("http://models.example/predict".into());
                c.n_classes = Some(1);
                c
            },
            "n_classes",
        ),
        (
            HttpModelConfig::new(
                "http://models.example",
                Protocol::KServeV2 {
                    model: "../admin".into(),
                },
                D,
            ),
            "model name",
        ),
        (
            json_model("http://models.example/predict".into()).with_header("Content-Length", "5"),
            "managed by the client",
        ),
    ];
    for (config, want) in cases {
        let shown = match HttpModel::new(config) {
            Err(Error::Load { path, reason }) => {
                assert!(reason.contains(want), "{reason}");
                path.display().to_string()
            }
            other => panic!("expected a load error, got {other:?}"),
        };
        assert!(shown.contains("models.example"), "{shown}");
        assert!(!shown.contains("hunter2pass"), "{shown}");
    }
    // A good configuration builds without touching the network.
    let model = HttpModel::new(json_model("http://models.example:8080/predict".into())).unwrap();
    assert_eq!(model.requests(), 0);
    assert_eq!(model.known_n_classes(), None);
}
