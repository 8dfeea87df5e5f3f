//! The upstream proxy: forwards an already authenticated, authorised and size-bounded request to an upstream
//! model server (a JSON `predict` API, a KServe/Triton V2 server or an OpenAI-compatible LLM server) and
//! streams the answer back chunk by chunk, without buffering it.
//!
//! Why it looks like this:
//! - Latency: one pooled hyper-util client (HTTP/1.1 keep-alive, `TCP_NODELAY`) is shared by every request and
//!   every upstream, so the hot path reuses warm connections and allocates little (the URI, the filtered header
//!   map and one boxed body).
//! - Isolation: each upstream has its own concurrency limit (a semaphore). A request waits at most the
//!   upstream's `timeout_ms` for a slot (then [`ProxyError::Busy`], 503), then at most `timeout_ms` for the
//!   upstream's response headers (then [`ProxyError::Timeout`], 504). The slot is held until the response
//!   *body* has finished or been dropped, so a long stream counts against the limit for as long as it runs.
//! - Secrets stay here: the client's credentials (`authorization`, `x-api-key`, `cookie`), the gateway's own
//!   `x-aegis-*` headers, hop-by-hop headers and `host` are never forwarded; `host` is the upstream's.
//! - Paths stay under the upstream's base path: `.` and `..` segments (also percent-encoded) are refused.
//!
//! Assumes the caller has already checked the key's scope for the upstream/model and bounded the body.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Method, Request, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Protocol, UpstreamConfig};
use crate::error::{Error, Result};

/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probe interval on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why a request could not be proxied. The `Display` text is for server logs; clients get
/// [`ProxyError::status`] and [`ProxyError::client_reason`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// No free slot under the upstream's concurrency limit within its timeout (503).
    #[error("upstream busy: no free slot within the timeout")]
    Busy,
    /// The upstream sent no response headers within its timeout (504).
    #[error("upstream sent no response headers within the timeout")]
    Timeout,
    /// Connecting to or talking to the upstream failed (502). The text is for server logs only.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The path would leave the upstream's base path (`..`) or is not a valid request target (400).
    #[error("invalid upstream path")]
    BadPath,
}

impl ProxyError {
    /// The HTTP status the client gets.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ProxyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Unavailable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::BadPath => StatusCode::BAD_REQUEST,
        }
    }

    /// A short reason safe to show the client (no addresses, no internals).
    pub(crate) fn client_reason(&self) -> &'static str {
        match self {
            ProxyError::Busy => "upstream busy",
            ProxyError::Timeout => "upstream timed out",
            ProxyError::Unavailable(_) => "upstream unavailable",
            ProxyError::BadPath => "invalid path",
        }
    }
}

/// One configured upstream: its identity, where it lives and its concurrency limit.
#[derive(Debug)]
pub struct Upstream {
    /// Name in routes and key scopes.
    pub name: String,
    /// What it speaks.
    pub protocol: Protocol,
    /// Model names it serves (V2 model names, OpenAI `model` values; `*` for any OpenAI model).
    pub models: Vec<String>,
    url: String,
    authority: Authority,
    host: HeaderValue,
    /// Base path without a trailing `/` (empty for the root).
    base_path: String,
    max_concurrency: usize,
    timeout: Duration,
    slots: Arc<Semaphore>,
}

impl Upstream {
    fn new(c: &UpstreamConfig) -> Result<Upstream> {
        let bad = |reason: &str| Error::Invalid(format!("upstream {:?}: {reason}", c.name));
        let uri: Uri = c.url.parse().map_err(|_| bad("url is not a valid URL"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(bad(
                "url must start with http:// (TLS to upstreams is not supported yet)",
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| bad("url has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("url must not contain credentials"));
        }
        if authority.host().is_empty() {
            return Err(bad("url has no host"));
        }
        if uri.query().is_some() {
            return Err(bad("url must not have a query"));
        }
        if c.max_concurrency == 0 {
            return Err(bad("max_concurrency must be at least 1"));
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("invalid host"))?;
        let base_path = uri.path().trim_end_matches('/').to_string();
        if has_dot_segment(&base_path) {
            return Err(bad("url path must not contain . or .. segments"));
        }
        let max_concurrency = c.max_concurrency.min(Semaphore::MAX_PERMITS);
        Ok(Upstream {
            name: c.name.clone(),
            protocol: c.protocol,
            models: c.models.clone(),
            url: c.url.clone(),
            authority,
            host,
            base_path,
            max_concurrency,
            timeout: Duration::from_millis(c.timeout_ms.max(1)),
            slots: Arc::new(Semaphore::new(max_concurrency)),
        })
    }

    /// Requests currently holding a slot (headers pending or body still streaming).
    pub fn in_flight(&self) -> usize {
        self.max_concurrency
            .saturating_sub(self.slots.available_permits())
    }

    fn serves(&self, model: &str, wildcard: bool) -> bool {
        self.models
            .iter()
            .any(|m| m == model || (wildcard && m == "*"))
    }

    /// The upstream request target: base path + `path_and_query`.
    fn uri(&self, path_and_query: &str) -> Result<Uri, ProxyError> {
        if !(path_and_query.is_empty()
            || path_and_query.starts_with('/')
            || path_and_query.starts_with('?'))
        {
            return Err(ProxyError::BadPath);
        }
        let path = path_and_query
            .split_once('?')
            .map_or(path_and_query, |(p, _)| p);
        if has_dot_segment(path) {
            return Err(ProxyError::BadPath);
        }
        let pq = if self.base_path.is_empty() {
            if path_and_query.is_empty() {
                PathAndQuery::from_static("/")
            } else if path_and_query.starts_with('?') {
                PathAndQuery::try_from(format!("/{path_and_query}"))
                    .map_err(|_| ProxyError::BadPath)?
            } else {
                PathAndQuery::try_from(path_and_query).map_err(|_| ProxyError::BadPath)?
            }
        } else {
            let mut s = String::with_capacity(self.base_path.len() + path_and_query.len());
            s.push_str(&self.base_path);
            s.push_str(path_and_query);
            PathAndQuery::try_from(s).map_err(|_| ProxyError::BadPath)?
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(pq);
        Uri::from_parts(parts).map_err(|_| ProxyError::BadPath)
    }
}

/// True when a path has a `.` or `..` segment, literally or percent-encoded (`%2e`). A backslash counts as a
/// separator too, as some servers treat it as one.
fn has_dot_segment(path: &str) -> bool {
    path.split(['/', '\\']).any(|seg| {
        let b = seg.as_bytes();
        let mut dots = 0;
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'.' {
                i += 1;
            } else if b.len() - i >= 3
                && b[i] == b'%'
                && b[i + 1] == b'2'
                && (b[i + 2] | 0x20) == b'e'
            {
                i += 3;
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    })
}

/// What `GET /admin/upstreams` shows about an upstream.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamInfo {
    /// Name in routes and key scopes.
    pub name: String,
    /// Base URL.
    pub url: String,
    /// What it speaks.
    pub protocol: Protocol,
    /// Model names it serves.
    pub models: Vec<String>,
    /// Concurrency limit.
    pub max_concurrency: usize,
    /// Requests holding a slot now.
    pub in_flight: usize,
}

/// All configured upstreams and the one pooled HTTP client they share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Upstreams {
    client: Client<HttpConnector, Full<Bytes>>,
    upstreams: Arc<[Upstream]>,
}

impl Upstreams {
    /// Check the upstream configurations (http URLs, unique names, limits) and build the shared client.
    pub fn new(configs: &[UpstreamConfig]) -> Result<Upstreams> {
        let mut list = Vec::with_capacity(configs.len());
        for c in configs {
            if list.iter().any(|u: &Upstream| u.name == c.name) {
                return Err(Error::Invalid(format!(
                    "upstream name {:?} is used twice",
                    c.name
                )));
            }
            list.push(Upstream::new(c)?);
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_keepalive(Some(TCP_KEEPALIVE));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Upstreams {
            client,
            upstreams: list.into(),
        })
    }

    /// The upstream called `name`.
    pub fn get(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// The OpenAI upstream that lists `model`; failing that, one that lists `*`.
    pub fn for_openai_model(&self, model: &str) -> Option<&Upstream> {
        let openai = || {
            self.upstreams
                .iter()
                .filter(|u| u.protocol == Protocol::Openai)
        };
        openai()
            .find(|u| u.serves(model, false))
            .or_else(|| openai().find(|u| u.serves(model, true)))
    }

    /// The V2 upstream that lists `model`.
    pub fn for_v2_model(&self, model: &str) -> Option<&Upstream> {
        self.upstreams
            .iter()
            .find(|u| u.protocol == Protocol::V2 && u.serves(model, false))
    }

    /// Every upstream with its current load.
    pub fn list(&self) -> Vec<UpstreamInfo> {
        self.upstreams
            .iter()
            .map(|u| UpstreamInfo {
                name: u.name.clone(),
                url: u.url.clone(),
                protocol: u.protocol,
                models: u.models.clone(),
                max_concurrency: u.max_concurrency,
                in_flight: u.in_flight(),
            })
            .collect()
    }

    /// Send one request to `up` and return its response with a body that streams as the upstream sends it.
    ///
    /// `path_and_query` is appended to the upstream's base path (`/v1/chat/completions`, or for `predict`
    /// upstreams the remainder after `/upstream/{name}`). `headers` are the client's, with `x-request-id`
    /// set by the server; credentials and hop-by-hop headers are removed here.
    pub(crate) async fn forward(
        &self,
        up: &Upstream,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        origin: &Origin<'_>,
        body: Bytes,
    ) -> Result<Forwarded, ProxyError> {
        let uri = up.uri(path_and_query)?;
        let permit = match up.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                match tokio::time::timeout(up.timeout, up.slots.clone().acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return Err(ProxyError::Unavailable("semaphore closed".into())),
                    Err(_) => return Err(ProxyError::Busy),
                }
            }
        };

        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = request_headers(headers, &up.host, origin);

        let sent = Instant::now();
        let response = match tokio::time::timeout(up.timeout, self.client.request(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(ProxyError::Unavailable(error_chain(&e))),
            Err(_) => return Err(ProxyError::Timeout),
        };
        let upstream_headers_time = sent.elapsed();

        let (mut parts, incoming) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = PermitBody {
            inner: incoming,
            permit: Some(permit),
        };
        Ok(Forwarded {
            response: axum::response::Response::from_parts(parts, axum::body::Body::new(body)),
            upstream_headers_time,
        })
    }
}

/// An upstream's answer, ready to return to the client.
#[derive(Debug)]
pub(crate) struct Forwarded {
    /// Status and end-to-end headers of the upstream; the body streams from the upstream and holds the
    /// concurrency slot until it is finished or dropped.
    pub response: axum::response::Response,
    /// Time from sending the request to receiving the upstream's response headers.
    pub upstream_headers_time: Duration,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy `keep-alive` / `proxy-connection`.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    ) || name.starts_with("proxy-")
}

/// Header names listed in `Connection` (they are hop-by-hop too). Rarely present, so allocating is fine.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

/// Who sent the request, as the gateway saw it: what the upstream is told in the forwarding headers.
#[derive(Debug, Clone)]
pub(crate) struct Origin<'a> {
    /// The gateway's request id (`x-request-id` upstream).
    pub(crate) request_id: String,
    /// The peer address of the client's connection.
    pub(crate) peer: Option<std::net::SocketAddr>,
    /// The client connected over TLS.
    pub(crate) tls: bool,
    /// Proxies whose own `X-Forwarded-For` is trusted (`server.trusted_proxies`).
    pub(crate) trusted_proxies: &'a [std::net::IpAddr],
}

/// Headers that say who the client is or how it connected: a client could pose as any address with them, so
/// they are dropped from the client's request and set by the gateway (see [`request_headers`]).
const FORWARDING: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
];

/// The headers sent upstream: the client's end-to-end headers minus credentials, hop-by-hop headers and
/// forwarding headers, then the gateway's own (set last, so a `Connection` header cannot remove them): the
/// upstream's host, `x-request-id`, and `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Real-IP` and `Forwarded` for
/// the peer. A peer listed in `trusted_proxies` is a proxy in front of the gateway: the client address its
/// `X-Forwarded-For` reports is kept, with the peer appended.
pub(crate) fn request_headers(
    client: &HeaderMap,
    host: &HeaderValue,
    origin: &Origin<'_>,
) -> HeaderMap {
    let listed = if client.contains_key(header::CONNECTION) {
        connection_listed(client)
    } else {
        Vec::new()
    };
    let mut out = HeaderMap::with_capacity(client.len() + 1);
    for (name, value) in client {
        let n = name.as_str();
        let drop = is_hop_by_hop(n)
            || matches!(
                n,
                // Credentials meant for the gateway, the client's idea of the host, and framing headers
                // that hyper derives from the (already complete) body.
                "authorization" | "x-api-key" | "cookie" | "host" | "content-length" | "expect"
            )
            || n.starts_with("x-aegis-")
            || FORWARDING.contains(&n)
            || listed.contains(name);
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(header::HOST, host.clone());
    if let Ok(v) = HeaderValue::from_str(&origin.request_id) {
        out.insert("x-request-id", v);
    }
    let peer = origin.peer.map(|p| p.ip().to_canonical());
    let reported = reported_chain(client, peer, origin.trusted_proxies);
    let chain: Vec<String> = reported
        .iter()
        .chain(peer.as_ref())
        .map(ToString::to_string)
        .collect();
    let client_ip = client_address(client, peer, origin.trusted_proxies);
    let client_ip = client_ip.as_ref();
    let proto = if origin.tls { "https" } else { "http" };
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.insert(name, v);
        }
    };
    if !chain.is_empty() {
        set("x-forwarded-for", chain.join(", "));
    }
    if let Some(ip) = client_ip {
        set("x-real-ip", ip.to_string());
        let node = match ip {
            std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        };
        set("forwarded", format!("for={node};proto={proto}"));
    }
    set("x-forwarded-proto", proto.to_string());
    out
}

/// The `X-Forwarded-For` addresses a trusted proxy peer reported (empty from any other peer).
fn reported_chain(
    client: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    trusted: &[std::net::IpAddr],
) -> Vec<std::net::IpAddr> {
    if !peer.is_some_and(|ip| trusted.contains(&ip)) {
        return Vec::new();
    }
    client
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect()
}

/// The client's address: the peer, or behind trusted proxies the rightmost address in `X-Forwarded-For` that
/// is not itself a trusted proxy (proxies append what they saw, so anything left of it is the client's own
/// claim and may be forged).
pub(crate) fn client_address(
    client: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    trusted: &[std::net::IpAddr],
) -> Option<std::net::IpAddr> {
    let peer = peer.map(|ip| ip.to_canonical());
    reported_chain(client, peer, trusted)
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .or(peer)
}

/// The canonical form of the raw (percent-encoded) path after an upstream route's prefix, or why it is
/// refused. Each `/`-separated segment is decoded once and must not hold `/`, `\`, `%`, `?`, `#` or control
/// characters, nor be `.` or `..`: an encoded separator or dot segment would escape the upstream's base in an
/// upstream (or a proxy in front of it) that decodes again, an encoded `%` would let it decode into one, and an
/// encoded `?` or `#` would start a query or a fragment upstream. The segments are then encoded again, every
/// byte but `A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , ; = : @`, so what the upstream receives decodes to exactly
/// what was checked.
pub fn canonical_path(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    for (i, segment) in raw.split('/').enumerate() {
        let decoded = percent_decode(segment)?;
        // `..;x` is `..` to servlet containers, which drop path parameters before resolving dot segments.
        let before_params = decoded.split(|&b| b == b';').next().unwrap_or_default();
        if before_params == b"." || before_params == b".." {
            return Err(format!("segment {} is a dot segment", i + 1));
        }
        if let Some(&b) = decoded
            .iter()
            .find(|&&b| matches!(b, b'/' | b'\\' | b'%' | b'?' | b'#') || b < 0x20 || b == 0x7f)
        {
            return Err(format!(
                "segment {} holds {} once decoded; encoded separators, '%', '?' and '#' are refused",
                i + 1,
                if b.is_ascii_graphic() {
                    format!("{:?}", char::from(b))
                } else {
                    format!("byte 0x{b:02x}")
                }
            ));
        }
        if i > 0 {
            out.push('/');
        }
        for &b in &decoded {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Ok(out)
}

/// `%XX` sequences decoded; a `%` not followed by two hex digits is an error.
fn percent_decode(segment: &str) -> Result<Vec<u8>, String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a '%' not followed by two hex digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Remove hop-by-hop headers from an upstream response.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        for name in connection_listed(headers) {
            headers.remove(&name);
        }
    }
    for name in [
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
    ] {
        headers.remove(name);
    }
}

/// An error and its causes on one line, for server logs.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The upstream's response body, passed through frame by frame, owning the concurrency slot until the body
/// ends, fails or is dropped.
struct PermitBody {
    inner: Incoming,
    permit: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for PermitBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermitBody")
            .field("holds_slot", &self.permit.is_some())
            .finish()
    }
}

impl http_body::Body for PermitBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_))))
            || (matches!(polled, Poll::Ready(Some(Ok(_)))) && this.inner.is_end_stream())
        {
            this.permit = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Read `model` (required, a non-empty string) and `stream` (optional boolean) from an OpenAI request body.
/// The error is a short reason safe to return to the client, naming the field.
pub fn openai_model(body: &[u8]) -> Result<(String, bool), String> {
    /// Only these two fields are materialised; the rest (messages, prompts) is skipped without allocating.
    #[derive(serde::Deserialize)]
    struct Head {
        model: Option<serde_json::Value>,
        stream: Option<serde_json::Value>,
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err("body must be a JSON object".into());
    }
    let head: Head = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            format!("body is not a valid request: {e}")
        }
        _ => format!(
            "body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    let model = match head.model {
        None => return Err("field `model` is missing".into()),
        Some(serde_json::Value::String(m)) if m.is_empty() => {
            return Err("field `model` must not be empty".into())
        }
        Some(serde_json::Value::String(m)) => m,
        Some(_) => return Err("field `model` must be a string".into()),
    };
    let stream = match head.stream {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => return Err("field `stream` must be a boolean".into()),
    };
    Ok((model, stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the gateway knows of a client connecting from 192.0.2.7 (a documentation address).
    fn origin() -> Origin<'static> {
        Origin {
            request_id: "req-123".into(),
            peer: Some("192.0.2.7:50000".parse().unwrap()),
            tls: false,
            trusted_proxies: &[],
        }
    }
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use tokio::sync::Notify;

    fn cfg(name: &str, url: &str, protocol: Protocol, models: &[&str]) -> UpstreamConfig {
        UpstreamConfig {
            name: name.into(),
            url: url.into(),
            protocol,
            models: models.iter().map(|s| s.to_string()).collect(),
            max_concurrency: 4,
            timeout_ms: 5_000,
            llm_guard: None,
        }
    }

    /// Echoes method, URI, headers and body as JSON; `/sse` streams two events with a pause on `gate`;
    /// `/hang` never answers.
    async fn start_upstream(gate: Arc<Notify>) -> SocketAddr {
        async fn echo(req: axum::extract::Request) -> axum::response::Response {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let headers: BTreeMap<String, String> = parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
                .collect();
            let json = serde_json::json!({
                "method": parts.method.as_str(),
                "uri": parts.uri.to_string(),
                "headers": headers,
                "body": String::from_utf8(body.to_vec()).unwrap(),
            });
            (
                [
                    ("x-up", "1"),
                    ("keep-alive", "timeout=5"),
                    ("proxy-authenticate", "Basic"),
                ],
                axum::Json(json),
            )
                .into_response()
        }
        let sse = move || {
            let gate = gate.clone();
            async move {
                let stream = futures_util::stream::unfold(0u8, move |step| {
                    let gate = gate.clone();
                    async move {
                        match step {
                            0 => Some((Ok::<_, std::io::Error>("data: one\n\n"), 1)),
                            1 => {
                                gate.notified().await;
                                Some((Ok("data: two\n\n"), 2))
                            }
                            _ => None,
                        }
                    }
                });
                (
                    [(header::CONTENT_TYPE, "text/event-stream")],
                    axum::body::Body::from_stream(stream),
                )
            }
        };
        let app = axum::Router::new()
            .route("/sse", axum::routing::post(sse))
            .route(
                "/hang",
                axum::routing::any(std::future::pending::<&'static str>),
            )
            .fallback(echo);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    async fn body_json(resp: axum::response::Response) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn body_and_end_to_end_headers_arrive_but_credentials_and_hop_headers_do_not() {
        let addr = start_upstream(Arc::new(Notify::new())).await;
        let ups = Upstreams::new(&[cfg(
            "p",
            &format!("http://{addr}/base/"),
            Protocol::Predict,
            &[],
        )])
        .unwrap();
        let up = ups.get("p").unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        h.insert(header::ACCEPT, "application/json".parse().unwrap());
        h.insert("x-custom", "kept".parse().unwrap());
        h.insert("x-request-id", "req-123".parse().unwrap());
        h.insert(header::AUTHORIZATION, "Bearer sk-secret".parse().unwrap());
        h.insert("x-api-key", "ak-secret".parse().unwrap());
        h.insert(header::COOKIE, "session=secret".parse().unwrap());
        h.insert(header::PROXY_AUTHORIZATION, "Basic secret".parse().unwrap());
        h.insert(header::HOST, "evil.example".parse().unwrap());
        h.insert(header::CONNECTION, "x-hop".parse().unwrap());
        h.insert("x-hop", "secret".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert("x-aegis-internal", "secret".parse().unwrap());
        let body = Bytes::from_static(br#"{"rows":[[1,2,3]]}"#);
        let f = ups
            .forward(
                up,
                Method::POST,
                "/predict?v=1",
                &h,
                &origin(),
                body.clone(),
            )
            .await
            .unwrap();
        assert_eq!(f.response.status(), StatusCode::OK);
        let rh = f.response.headers();
        assert_eq!(rh.get("x-up").unwrap(), "1");
        assert!(rh.get("keep-alive").is_none());
        assert!(rh.get("proxy-authenticate").is_none());
        let v = body_json(f.response).await;
        assert_eq!(v["method"], "POST");
        assert_eq!(v["uri"], "/base/predict?v=1");
        assert_eq!(v["body"], std::str::from_utf8(&body).unwrap());
        let got = &v["headers"];
        assert_eq!(got["content-type"], "application/json");
        assert_eq!(got["accept"], "application/json");
        assert_eq!(got["x-custom"], "kept");
        assert_eq!(got["x-request-id"], "req-123");
        assert_eq!(got["host"], addr.to_string());
        assert_eq!(got["content-length"], body.len().to_string());
        for gone in [
            "authorization",
            "x-api-key",
            "cookie",
            "proxy-authorization",
            "x-hop",
            "te",
            "upgrade",
            "x-aegis-internal",
        ] {
            assert!(got.get(gone).is_none(), "{gone} was forwarded: {v}");
        }
        assert!(!v.to_string().contains("secret"), "{v}");
        assert_eq!(up.in_flight(), 0);
    }

    #[test]
    fn canonical_paths_refuse_every_encoded_escape() {
        for bad in [
            "%252e%252e%252fsecret",
            "..%252f",
            "%2e%2e%252f",
            "x/..%252f..%252f",
            "..",
            "a/./b",
            "%2e%2E/x",
            "a%2Fb",
            "a%5Cb",
            "a\\b",
            "predict%3Fa=1",
            "predict%23frag",
            "a%00b",
            "a%0d%0aX-Injected:%201",
            "..;/admin",
            "..%3B/admin",
            ".;x",
            "bad%zz",
            "trailing%2",
        ] {
            assert!(canonical_path(bad).is_err(), "{bad} was accepted");
        }
        for (raw, canonical) in [
            ("predict", "predict"),
            ("v1/models/fraud:predict", "v1/models/fraud:predict"),
            ("caf%C3%A9/x%20y", "caf%C3%A9/x%20y"),
            ("café", "caf%C3%A9"),
            ("a%41b", "aAb"),
            ("", ""),
            ("a//b/", "a//b/"),
            ("...", "..."),
        ] {
            assert_eq!(canonical_path(raw).as_deref(), Ok(canonical), "{raw}");
            assert_eq!(canonical_path(canonical).as_deref(), Ok(canonical), "{raw}");
        }
    }

    #[test]
    fn clients_cannot_set_forwarding_headers_or_remove_the_gateways() {
        let host = HeaderValue::from_static("up.example");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.66".parse().unwrap());
        h.insert("forwarded", "for=203.0.113.66".parse().unwrap());
        h.insert("x-real-ip", "203.0.113.66".parse().unwrap());
        h.insert("x-forwarded-host", "admin.internal".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert("x-request-id", "chosen-by-client".parse().unwrap());
        h.insert(
            header::CONNECTION,
            "x-request-id, x-forwarded-for, host".parse().unwrap(),
        );
        let out = request_headers(&h, &host, &origin());
        assert_eq!(out["x-forwarded-for"], "192.0.2.7");
        assert_eq!(out["x-real-ip"], "192.0.2.7");
        assert_eq!(out["forwarded"], "for=192.0.2.7;proto=http");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-request-id"], "req-123");
        assert_eq!(out[header::HOST], "up.example");
        assert!(out.get("x-forwarded-host").is_none());
        assert_eq!(out.get_all("x-forwarded-for").iter().count(), 1);

        // Behind a trusted proxy, the address it appended is the client, whatever the client claimed before it;
        // the proxy is appended to the chain.
        h.insert("x-forwarded-for", "10.9.9.9, 203.0.113.66".parse().unwrap());
        let proxies = ["192.0.2.7".parse().unwrap()];
        let behind = Origin {
            trusted_proxies: &proxies,
            tls: true,
            ..origin()
        };
        let out = request_headers(&h, &host, &behind);
        assert_eq!(out["x-forwarded-for"], "10.9.9.9, 203.0.113.66, 192.0.2.7");
        assert_eq!(out["x-real-ip"], "203.0.113.66");
        assert_eq!(out["forwarded"], "for=203.0.113.66;proto=https");

        // An IPv4 proxy seen on a dual-stack listener as `::ffff:192.0.2.7` is still the trusted proxy.
        let mapped = Origin {
            peer: Some("[::ffff:192.0.2.7]:443".parse().unwrap()),
            ..behind.clone()
        };
        assert_eq!(
            request_headers(&h, &host, &mapped)["x-real-ip"],
            "203.0.113.66"
        );

        // An IPv6 peer is quoted in `Forwarded` (RFC 7239).
        let v6 = Origin {
            peer: Some("[2001:db8::1]:443".parse().unwrap()),
            ..origin()
        };
        let out = request_headers(&HeaderMap::new(), &host, &v6);
        assert_eq!(out["forwarded"], "for=\"[2001:db8::1]\";proto=http");
    }

    #[tokio::test]
    async fn dot_segments_are_refused_and_plain_paths_join_the_base() {
        let addr = start_upstream(Arc::new(Notify::new())).await;
        let ups = Upstreams::new(&[cfg(
            "p",
            &format!("http://{addr}/m/fraud"),
            Protocol::Predict,
            &[],
        )])
        .unwrap();
        let up = ups.get("p").unwrap();
        let h = HeaderMap::new();
        for bad in [
            "/../admin",
            "/a\\..\\b",
            "/%2e%2E/admin",
            "/a/./b",
            "/.%2e",
            "relative",
        ] {
            let e = ups
                .forward(up, Method::GET, bad, &h, &origin(), Bytes::new())
                .await
                .unwrap_err();
            assert!(matches!(e, ProxyError::BadPath), "{bad}: {e}");
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        }
        for (path, uri) in [
            ("", "/m/fraud"),
            ("/v1..x/a.b", "/m/fraud/v1..x/a.b"),
            ("?q=..", "/m/fraud?q=.."),
        ] {
            let f = ups
                .forward(up, Method::GET, path, &h, &origin(), Bytes::new())
                .await
                .unwrap();
            assert_eq!(body_json(f.response).await["uri"], uri, "{path}");
        }
    }

    #[tokio::test]
    async fn streams_pass_through_as_they_arrive_and_release_the_slot_at_the_end() {
        let gate = Arc::new(Notify::new());
        let addr = start_upstream(gate.clone()).await;
        let ups = Upstreams::new(&[cfg(
            "llm",
            &format!("http://{addr}"),
            Protocol::Openai,
            &["*"],
        )])
        .unwrap();
        let up = ups.for_openai_model("any").unwrap();
        let run = async {
            let f = ups
                .forward(
                    up,
                    Method::POST,
                    "/sse",
                    &HeaderMap::new(),
                    &origin(),
                    Bytes::new(),
                )
                .await
                .unwrap();
            assert_eq!(
                f.response.headers()[header::CONTENT_TYPE],
                "text/event-stream"
            );
            assert_eq!(up.in_flight(), 1);
            let mut body = f.response.into_body();
            // The upstream does not send the second event until we have seen the first one through the proxy.
            let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(&first[..], b"data: one\n\n");
            assert_eq!(up.in_flight(), 1);
            gate.notify_one();
            let mut rest = Vec::new();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    rest.extend_from_slice(&data);
                }
            }
            assert_eq!(rest, b"data: two\n\n");
            // Slot released at the end of the stream, before the body is dropped.
            assert_eq!(up.in_flight(), 0);
            drop(body);
        };
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the stream was buffered: chunk 1 never arrived on its own");
    }

    #[tokio::test]
    async fn silent_upstream_times_out_and_closed_port_is_unavailable() {
        let addr = start_upstream(Arc::new(Notify::new())).await;
        let closed = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let mut slow = cfg("slow", &format!("http://{addr}"), Protocol::Predict, &[]);
        slow.timeout_ms = 200;
        let gone = cfg("gone", &format!("http://{closed}"), Protocol::Predict, &[]);
        let ups = Upstreams::new(&[slow, gone]).unwrap();
        let h = HeaderMap::new();
        let slow = ups.get("slow").unwrap();
        let e = ups
            .forward(slow, Method::GET, "/hang", &h, &origin(), Bytes::new())
            .await
            .unwrap_err();
        assert!(matches!(e, ProxyError::Timeout), "{e}");
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(slow.in_flight(), 0);
        // The same upstream answers a normal request within the timeout.
        let ok = ups
            .forward(slow, Method::GET, "/x", &h, &origin(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(ok.response.status(), StatusCode::OK);

        let gone = ups.get("gone").unwrap();
        let e = ups
            .forward(gone, Method::GET, "/", &h, &origin(), Bytes::new())
            .await
            .unwrap_err();
        assert!(matches!(e, ProxyError::Unavailable(_)), "{e}");
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(e.client_reason(), "upstream unavailable");
        assert!(!e.client_reason().contains("127.0.0.1"));
        assert_eq!(gone.in_flight(), 0);
    }

    #[tokio::test]
    async fn the_slot_is_held_until_the_body_is_dropped() {
        let addr = start_upstream(Arc::new(Notify::new())).await;
        let mut c = cfg("one", &format!("http://{addr}"), Protocol::Predict, &[]);
        c.max_concurrency = 1;
        c.timeout_ms = 200;
        let ups = Upstreams::new(&[c]).unwrap();
        let up = ups.get("one").unwrap();
        let h = HeaderMap::new();
        let run = async {
            let first = ups
                .forward(up, Method::POST, "/sse", &h, &origin(), Bytes::new())
                .await
                .unwrap();
            let mut body = first.response.into_body();
            body.frame().await.unwrap().unwrap();
            assert_eq!(ups.list()[0].in_flight, 1);
            let e = ups
                .forward(up, Method::GET, "/x", &h, &origin(), Bytes::new())
                .await
                .unwrap_err();
            assert!(matches!(e, ProxyError::Busy), "{e}");
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
            drop(body);
            assert_eq!(ups.list()[0].in_flight, 0);
            let next = ups
                .forward(up, Method::GET, "/x", &h, &origin(), Bytes::new())
                .await
                .unwrap();
            assert_eq!(next.response.status(), StatusCode::OK);
        };
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_pooled_connection() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let accepted = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let ups =
            Upstreams::new(&[cfg("p", &format!("http://{addr}"), Protocol::Predict, &[])]).unwrap();
        let up = ups.get("p").unwrap();
        for _ in 0..5 {
            let f = ups
                .forward(
                    up,
                    Method::POST,
                    "/",
                    &HeaderMap::new(),
                    &origin(),
                    Bytes::from_static(b"{}"),
                )
                .await
                .unwrap();
            let body = f.response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
            tokio::task::yield_now().await;
        }
        // Normally 1; the pool returns a connection from a spawned task, so allow a rare second one.
        let n = accepted.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "{n} connections for 5 requests");
    }

    #[test]
    fn openai_model_reads_model_and_stream() {
        assert_eq!(
            openai_model(br#"{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}"#),
            Ok(("gpt-x".to_string(), false))
        );
        assert_eq!(
            openai_model(br#" {"stream":true,"model":"m"}"#),
            Ok(("m".to_string(), true))
        );
        assert_eq!(
            openai_model(br#"{"model":"m","stream":null}"#),
            Ok(("m".to_string(), false))
        );
        let err = |b: &[u8]| openai_model(b).unwrap_err();
        assert!(err(br#"{"messages":[]}"#).contains("`model` is missing"));
        assert!(err(br#"{"model":42}"#).contains("`model` must be a string"));
        assert!(err(br#"{"model":""}"#).contains("`model`"));
        assert!(err(br#"{"model":"m","stream":"yes"}"#).contains("`stream`"));
        assert!(err(br#"{"model":"m""#).contains("not valid JSON"));
        assert!(err(b"not json").contains("JSON object"));
        assert!(err(br#"["m", true]"#).contains("JSON object"));
        assert!(err(br#"{"model":"a","model":"b"}"#).contains("model"));
    }

    #[test]
    fn lookups_by_name_and_model() {
        let ups = Upstreams::new(&[
            cfg("fraud", "http://127.0.0.1:9001", Protocol::Predict, &[]),
            cfg("triton", "http://127.0.0.1:9002", Protocol::V2, &["resnet"]),
            cfg("any", "http://127.0.0.1:9003", Protocol::Openai, &["*"]),
            cfg(
                "llama",
                "http://127.0.0.1:9004",
                Protocol::Openai,
                &["llama-3"],
            ),
        ])
        .unwrap();
        assert_eq!(ups.get("fraud").unwrap().protocol, Protocol::Predict);
        assert!(ups.get("nope").is_none());
        assert_eq!(ups.for_v2_model("resnet").unwrap().name, "triton");
        assert!(ups.for_v2_model("llama-3").is_none());
        assert!(ups.for_v2_model("*").is_none());
        // An exact listing wins over the wildcard; the wildcard catches the rest.
        assert_eq!(ups.for_openai_model("llama-3").unwrap().name, "llama");
        assert_eq!(ups.for_openai_model("gpt-x").unwrap().name, "any");
        assert!(ups.for_openai_model("resnet").is_some());
        let only_exact = Upstreams::new(&[cfg(
            "llama",
            "http://127.0.0.1:9004",
            Protocol::Openai,
            &["llama-3"],
        )])
        .unwrap();
        assert!(only_exact.for_openai_model("gpt-x").is_none());
        let list = ups.list();
        assert_eq!(list.len(), 4);
        assert_eq!(list[1].models, vec!["resnet"]);
        assert_eq!(list[1].in_flight, 0);
        let json = serde_json::to_value(&list[1]).unwrap();
        assert_eq!(json["protocol"], "v2");
    }

    #[test]
    fn bad_urls_and_duplicate_names_are_refused() {
        let ok = cfg("a", "http://127.0.0.1:1", Protocol::Predict, &[]);
        assert!(Upstreams::new(std::slice::from_ref(&ok)).is_ok());
        for url in [
            "https://127.0.0.1:1",
            "ftp://x",
            "http://user:pw@127.0.0.1:1",
            "http://127.0.0.1:1/x?y=1",
            "http://127.0.0.1:1/a/../b",
            "not a url",
            "/relative",
        ] {
            let mut c = ok.clone();
            c.url = url.into();
            assert!(Upstreams::new(&[c]).is_err(), "{url}");
        }
        let mut zero = ok.clone();
        zero.max_concurrency = 0;
        assert!(Upstreams::new(&[zero]).is_err());
        assert!(Upstreams::new(&[ok.clone(), ok]).is_err());
    }
}
