//! Identity and access against the real `aegis serve` gateway on 127.0.0.1, on SQLite and PostgreSQL: API keys
//! (missing, wrong, malformed, revoked, expired, out of scope, rotated), roles on every admin route, sessions
//! (forged, tampered, disabled user), TOTP (missing, wrong, replayed, recovery codes), lockout, the one-time
//! bootstrap, the hash-chained audit log before and after tampering with the database, and TLS.
//!
//! Every refusal is checked for its status, its JSON error `code`, and an `error.request_id` equal to the
//! `x-request-id` header; every inference answer for an `x-aegis-overhead-ms` header.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aegis_gateway::audit_log::{self, AuditRecord};
use aegis_gateway::identity::{self, Role};
use aegis_gateway::{util, Db};
use support::{Backend, Resp, TestServer};

const MODEL: &str = "demo-fraud";
const PREDICT: &str = "/v1/models/demo-fraud/predict";
const INFER: &str = "/v2/models/demo-fraud/infer";
const ROW: &str = r#"{"rows":[{"amount":2400,"hour":3,"merchant_risk":0.9,"card_age_days":12,"foreign":1,"n_tx_24h":14}]}"#;
const V2_BODY: &str =
    r#"{"inputs":[{"name":"input","shape":[1,6],"datatype":"FP32","data":[2400,3,0.9,12,1,14]}]}"#;

// ------------------------------------------------------------------------------------------------ helpers

/// A refusal: status, JSON error code, and a request id in the body equal to the header.
#[track_caller]
fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "expected {status} {code}: {}", r.text());
    assert_eq!(r.code(), code, "body: {}", r.text());
    let header = r.header("x-request-id").expect("x-request-id header");
    assert!(!header.is_empty());
    assert_eq!(
        r.json()["error"]["request_id"].as_str(),
        Some(header.as_str()),
        "body request id matches the header"
    );
}

/// An inference answer carries the gateway's overhead as a non-negative number of milliseconds.
#[track_caller]
fn assert_overhead(r: &Resp) {
    let v = r
        .header("x-aegis-overhead-ms")
        .unwrap_or_else(|| panic!("no x-aegis-overhead-ms on {} {}", r.status, r.text()));
    let ms: f64 = v.parse().unwrap_or_else(|_| panic!("overhead {v:?}"));
    assert!(ms.is_finite() && ms >= 0.0, "overhead {ms}");
}

/// The public id inside `aeg_<id>_<secret>`.
fn key_id(key: &str) -> String {
    key.strip_prefix("aeg_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id.to_string())
        .expect("key shaped aeg_<id>_<secret>")
}

async fn predict(server: &TestServer, key: &str) -> Resp {
    let r = server.post_key(PREDICT, key, ROW).await;
    assert_overhead(&r);
    r
}

async fn infer(server: &TestServer, key: &str) -> Resp {
    let r = server.post_key(INFER, key, V2_BODY).await;
    assert_overhead(&r);
    r
}

/// The current TOTP code of `secret`.
fn totp_now(secret: &[u8]) -> String {
    format!(
        "{:06}",
        identity::totp::code_at(secret, (util::now_secs() / 30) as u64)
    )
}

/// A six-digit code valid for none of the steps the server accepts now.
fn totp_wrong(secret: &[u8]) -> String {
    let step = (util::now_secs() / 30) as u64;
    let valid: Vec<u32> = (step - 2..=step + 2)
        .map(|s| identity::totp::code_at(secret, s))
        .collect();
    let mut candidate = 123_456u32;
    while valid.contains(&candidate) {
        candidate = (candidate + 1) % 1_000_000;
    }
    format!("{candidate:06}")
}

async fn get(server: &TestServer, path: &str, token: &str) -> Resp {
    server.with_session("GET", path, token, "").await
}

async fn post(server: &TestServer, path: &str, token: &str, body: &str) -> Resp {
    server.with_session("POST", path, token, body).await
}

/// Poll until the audit log holds `n` records (the writer is asynchronous), at most 10 s.
async fn wait_for_audit(db: &Db, n: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let have = audit_log::count(db).await.unwrap();
        if have == n {
            return;
        }
        assert!(have < n, "audit log has {have} records, expected {n}");
        assert!(
            std::time::Instant::now() < deadline,
            "audit log still has {have} records after 10 s, expected {n}: {:#?}",
            audit_log::list(db, 0, 1000).await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------------------------------------ API keys

async fn keys_are_checked(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let key = server.key(&[MODEL], |_| {}).await;
    let ok = predict(&server, &key).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.json().is_object());

    // No key at all.
    let r = server
        .request(
            "POST",
            PREDICT,
            &[("content-type", "application/json")],
            ROW,
        )
        .await;
    assert_overhead(&r);
    assert_error(&r, 401, "no_key");

    // A well-formed key with an unknown id, and the right id with a wrong secret.
    let r = predict(
        &server,
        "aeg_kAAAAAAAAAA_0123456789012345678901234567890123456789",
    )
    .await;
    assert_error(&r, 401, "bad_key");
    let id = key_id(&key);
    let wrong_secret = format!("aeg_{id}_{}", "x".repeat(40));
    assert_error(&predict(&server, &wrong_secret).await, 401, "bad_key");

    // Malformed keys: not our prefix, a bare word, an overlong value; and the x-api-key header works too.
    for bad in [
        "sk-0123456789abcdef",
        "aeg_",
        "aeg_k1_short",
        &format!("aeg_{id}_{}", "y".repeat(300)),
        &key.replace('_', "-"),
    ] {
        assert_error(&predict(&server, bad).await, 401, "bad_key");
    }
    let r = server
        .request(
            "POST",
            PREDICT,
            &[("x-api-key", &key), ("content-type", "application/json")],
            ROW,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    server.stop().await;
}

both!(keys_missing_wrong_malformed, keys_are_checked);

async fn revocation_takes_effect_at_once(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let op = server.session("op", Role::Operator).await;
    let key = server.key(&[MODEL], |_| {}).await;
    let other = server.key(&[MODEL], |_| {}).await;
    assert_eq!(predict(&server, &key).await.status, 200);

    let r = post(
        &server,
        &format!("/admin/keys/{}/revoke", key_id(&key)),
        &op,
        "",
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    // The very next request is refused, with no delay and no cache.
    assert_error(&predict(&server, &key).await, 401, "revoked");
    assert_error(&infer(&server, &key).await, 401, "revoked");
    // Revocation does not reveal itself to someone without the secret.
    let guess = format!("aeg_{}_{}", key_id(&key), "z".repeat(40));
    assert_error(&predict(&server, &guess).await, 401, "bad_key");
    // Other keys are unaffected.
    assert_eq!(predict(&server, &other).await.status, 200);
    // Unknown key id: 404 with a request id.
    let r = post(&server, "/admin/keys/kNOSUCHKEY0/revoke", &op, "").await;
    assert_error(&r, 404, "not_found");
    server.stop().await;
}

both!(key_revoked, revocation_takes_effect_at_once);

async fn expired_keys_are_refused(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let key = server.key(&[MODEL], |k| k.expires_days = 30).await;
    assert_eq!(predict(&server, &key).await.status, 200);
    sqlx::query("UPDATE api_keys SET expires = 1 WHERE id = $1")
        .bind(key_id(&key))
        .execute(server.db().pool())
        .await
        .unwrap();
    // A change made behind the gateway's back by SQL must announce itself, like the library's own changes do;
    // the key cache then drops the old record within its 50 ms watch interval.
    aegis_gateway::keys::bump_keys_version(server.db())
        .await
        .unwrap();
    let mut status = 200;
    for _ in 0..100 {
        status = predict(&server, &key).await.status;
        if status != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 401, "the expiry is seen within 2 s");
    assert_error(&predict(&server, &key).await, 401, "expired");
    assert_error(&infer(&server, &key).await, 401, "expired");
    server.stop().await;
}

both!(key_expired, expired_keys_are_refused);

async fn scopes_are_enforced(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    // A key for another model.
    let elsewhere = server.key(&["other-model"], |_| {}).await;
    assert_error(&predict(&server, &elsewhere).await, 403, "scope");
    assert_error(&infer(&server, &elsewhere).await, 403, "scope");

    // A key for the predict route only.
    let predict_only = server
        .key(&[MODEL], |k| k.routes = vec!["predict".into()])
        .await;
    let r = predict(&server, &predict_only).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_error(&infer(&server, &predict_only).await, 403, "scope");

    // The V2 route with a key that has it.
    let all = server.key(&[MODEL], |_| {}).await;
    let r = infer(&server, &all).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let wildcard = server.key(&["*"], |_| {}).await;
    assert_eq!(predict(&server, &wildcard).await.status, 200);
    server.stop().await;
}

both!(key_scope, scopes_are_enforced);

async fn rotation_replaces_the_key(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let op = server.session("op", Role::Operator).await;
    let old = server.key(&[MODEL], |_| {}).await;
    assert_eq!(predict(&server, &old).await.status, 200);
    let r = post(
        &server,
        &format!("/admin/keys/{}/rotate", key_id(&old)),
        &op,
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let new = body["secret"].as_str().expect("new secret").to_string();
    assert_ne!(new, old);
    assert_eq!(body["key"]["id"].as_str(), Some(key_id(&new).as_str()));
    assert_eq!(body["key"]["models"], serde_json::json!([MODEL]));

    assert_error(&predict(&server, &old).await, 401, "revoked");
    let r = predict(&server, &new).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A rotated (revoked) key cannot be rotated again.
    let r = post(
        &server,
        &format!("/admin/keys/{}/rotate", key_id(&old)),
        &op,
        "",
    )
    .await;
    assert_error(&r, 400, "invalid");
    server.stop().await;
}

both!(key_rotated, rotation_replaces_the_key);

/// A second gateway (a replica) on the same database as `server`, with its own data directory.
async fn replica(server: &TestServer) -> (aegis_gateway::serve::Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = aegis_gateway::Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = dir.path().to_path_buf();
    config.server.plaintext = true;
    config.server.database = Some(server.db_url.clone());
    // Replicas share the database and its secrets key file.
    config.server.secrets_file = Some(server.state().config.secrets_path());
    let running = aegis_gateway::serve::start(config).await.unwrap();
    (running, dir)
}

/// One request to a gateway that is not a [`TestServer`].
async fn send(addr: std::net::SocketAddr, method: &str, path: &str, auth: &str, body: &str) -> u16 {
    use http_body_util::Full;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {auth}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .unwrap()
        .unwrap();
    response.status().as_u16()
}

async fn revocation_reaches_every_replica(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let (b, _b_dir) = replica(&server).await;
    let addr = b.info.addr;
    let key = server.key(&[MODEL], |_| {}).await;
    assert_eq!(send(addr, "POST", PREDICT, &key, ROW).await, 200);
    // Sessions are shared too: one replica's token works on the other.
    let op = server.session("op", Role::Operator).await;
    assert_eq!(send(addr, "GET", "/admin/keys", &op, "").await, 200);

    // Revoked on A, refused by B on its next request.
    let r = post(
        &server,
        &format!("/admin/keys/{}/revoke", key_id(&key)),
        &op,
        "",
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    // At once on A (its cache is cleared by the revocation itself) …
    assert_eq!(predict(&server, &key).await.status, 401);
    // … and on B within its key-cache watch interval (50 ms; allow 2 s for a loaded machine).
    let mut status = 200;
    for _ in 0..100 {
        status = send(addr, "POST", PREDICT, &key, ROW).await;
        if status != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 401);
    // Logged out on A, refused by B.
    assert_eq!(post(&server, "/admin/logout", &op, "").await.status, 204);
    assert_eq!(send(addr, "GET", "/admin/keys", &op, "").await, 401);
    b.shutdown().await.unwrap();
    server.stop().await;
}

both!(
    key_revoked_on_every_replica,
    revocation_reaches_every_replica
);

// ------------------------------------------------------------------------------------------------ roles

async fn roles_are_checked_server_side(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let op = server.session("op", Role::Operator).await;
    let auditor = server.session("aud", Role::Auditor).await;

    // An operator cannot create users of any role, least of all admins.
    for role in ["admin", "operator", "auditor", "client"] {
        let body = serde_json::json!({"username": format!("new{role}"), "password": "a long enough password", "role": role});
        let r = post(&server, "/admin/users", &op, &body.to_string()).await;
        assert_error(&r, 403, "role");
    }
    assert_error(&get(&server, "/admin/users", &op).await, 403, "role");
    assert_error(
        &post(&server, "/admin/users/aud/disable", &op, "").await,
        403,
        "role",
    );
    let users = identity::list_users(server.db()).await.unwrap();
    assert_eq!(users.len(), 2, "no user was created: {users:?}");

    // An operator creates keys; the secret is in that answer only.
    let body = serde_json::json!({"name": "web", "owner": "shop", "models": [MODEL]});
    let r = post(&server, "/admin/keys", &op, &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = r.json()["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("aeg_"));
    assert_eq!(predict(&server, &secret).await.status, 200);
    let listing = get(&server, "/admin/keys", &op).await;
    assert_eq!(listing.status, 200, "{}", listing.text());
    let text = listing.text();
    assert!(text.contains(&key_id(&secret)), "{text}");
    let secret_part = secret.rsplit('_').next().unwrap();
    assert!(!text.contains(secret_part), "secret listed: {text}");
    assert!(!text.contains("secret_hash") && !text.contains(&util::sha256_hex(secret.as_bytes())));

    // An auditor reads the audit log but creates nothing.
    let r = post(&server, "/admin/keys", &auditor, &body.to_string()).await;
    assert_error(&r, 403, "role");
    let body_user = serde_json::json!({"username": "x1", "password": "a long enough password", "role": "client"});
    let r = post(&server, "/admin/users", &auditor, &body_user.to_string()).await;
    assert_error(&r, 403, "role");
    assert_error(&get(&server, "/admin/keys", &auditor).await, 403, "role");
    let r = get(&server, "/admin/audit", &auditor).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json().is_array());
    let r = get(&server, "/admin/audit/verify", &auditor).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["problem"].is_null(), "{}", r.text());
    // …and an operator does not read it.
    assert_error(&get(&server, "/admin/audit", &op).await, 403, "role");
    assert_error(&get(&server, "/admin/audit/verify", &op).await, 403, "role");

    // A client session is refused on every admin route.
    let client = server.session("cli", Role::Client).await;
    let admin_routes: &[(&str, &str)] = &[
        ("GET", "/admin/users"),
        ("POST", "/admin/users"),
        ("POST", "/admin/users/op/disable"),
        ("POST", "/admin/users/op/enable"),
        ("GET", "/admin/keys"),
        ("POST", "/admin/keys"),
        ("POST", "/admin/keys/kSOMEKEY000/revoke"),
        ("POST", "/admin/keys/kSOMEKEY000/rotate"),
        ("GET", "/admin/models"),
        ("GET", "/admin/audit"),
        ("GET", "/admin/audit/verify"),
        ("GET", "/metrics"),
    ];
    for (method, path) in admin_routes {
        let r = server
            .with_session(method, path, &client, &body.to_string())
            .await;
        assert_error(&r, 403, "role");
        // Without a session: 401.
        let r = server.request(method, path, &[], "").await;
        assert_error(&r, 401, "no_session");
    }
    // A client may still see who it is.
    let r = get(&server, "/admin/me", &client).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["role"], "client");
    server.stop().await;
}

both!(role_escalation, roles_are_checked_server_side);

/// What an operator may grant is bounded by `[key_ceilings]`; beyond them only an admin, asking explicitly, and
/// the audit record says so.
async fn keys_beyond_the_ceilings_are_admin_only(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let op = server.session("op", Role::Operator).await;
    let admin = server.session("root", Role::Admin).await;
    let wide = serde_json::json!({"name": "wide", "owner": "shop", "models": ["*"], "rate_per_sec": 1e12,
                                  "burst": 1_000_000, "expires_days": 0});
    let r = post(&server, "/admin/keys", &op, &wide.to_string()).await;
    assert_error(&r, 403, "ceiling");
    for what in ["rate", "burst", "never expires", "every model"] {
        assert!(r.text().contains(what), "{what}: {}", r.text());
    }
    // An admin must ask for it.
    let r = post(&server, "/admin/keys", &admin, &wide.to_string()).await;
    assert_error(&r, 403, "ceiling");
    assert!(r.text().contains("unbounded"), "{}", r.text());
    let mut asked = wide.clone();
    asked["unbounded"] = serde_json::Value::from(true);
    // Not even when an operator asks.
    assert_error(
        &post(&server, "/admin/keys", &op, &asked.to_string()).await,
        403,
        "ceiling",
    );
    let r = post(&server, "/admin/keys", &admin, &asked.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Within the ceilings an operator needs nothing more.
    let narrow = serde_json::json!({"name": "narrow", "owner": "shop", "models": [MODEL], "rate_per_sec": 50,
                                    "expires_days": 30});
    let r = post(&server, "/admin/keys", &op, &narrow.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Answers wait for their audit record, so both are in the log now.
    let records = audit_log::list(server.db(), 0, 1000).await.unwrap();
    let created: Vec<_> = records
        .iter()
        .filter(|r| r.decision == "key.create" && r.actor != "aegis")
        .collect();
    assert_eq!(created.len(), 2, "{created:#?}");
    assert!(
        created[0].detail.contains("UNBOUNDED by admin"),
        "{}",
        created[0].detail
    );
    assert_eq!(created[0].actor, "root");
    assert!(
        !created[1].detail.contains("UNBOUNDED"),
        "{}",
        created[1].detail
    );
    let refused = records
        .iter()
        .filter(|r| r.decision == "denied:ceiling")
        .count();
    assert_eq!(refused, 3);
    server.stop().await;
}

both!(key_ceilings, keys_beyond_the_ceilings_are_admin_only);

async fn sessions_are_verified(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let admin = server.session("root", Role::Admin).await;
    let op = server.session("op", Role::Operator).await;
    assert_eq!(get(&server, "/admin/keys", &op).await.status, 200);

    // Forged: well-formed but signed with another key.
    let forged = format!("ses_{}.{}", "A".repeat(32), "B".repeat(43));
    assert_error(
        &get(&server, "/admin/keys", &forged).await,
        401,
        "bad_session",
    );
    // Tampered: one character of the id, or of the MAC, changed.
    let flip = |token: &str, at: usize| {
        let mut bytes = token.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
        String::from_utf8(bytes).unwrap()
    };
    let dot = op.find('.').unwrap();
    for at in [5, dot - 1, dot + 1, op.len() - 2] {
        let tampered = flip(&op, at);
        assert_ne!(tampered, op);
        assert_error(
            &get(&server, "/admin/keys", &tampered).await,
            401,
            "bad_session",
        );
    }
    assert_error(
        &get(&server, "/admin/keys", &format!("{op}x")).await,
        401,
        "bad_session",
    );
    assert_error(
        &get(&server, "/admin/keys", "ses_").await,
        401,
        "bad_session",
    );

    // An API key is not a session, and a session is not an API key.
    let key = server.key(&["*"], |_| {}).await;
    assert_error(&get(&server, "/admin/keys", &key).await, 401, "no_session");
    assert_error(&predict(&server, &op).await, 401, "bad_key");
    assert_error(&predict(&server, &admin).await, 401, "bad_key");

    // Disabling a user ends their existing session at once, and for good: enabling them again does not revive
    // it (disable revokes every session); they log in anew.
    let r = post(&server, "/admin/users/op/disable", &admin, "").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_error(&get(&server, "/admin/keys", &op).await, 401, "bad_session");
    let r = server.login("op", "correct horse battery op", None).await;
    assert_error(&r, 401, "login");
    let r = post(&server, "/admin/users/op/enable", &admin, "").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_error(&get(&server, "/admin/keys", &op).await, 401, "bad_session");
    let r = server.login("op", "correct horse battery op", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let op = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(get(&server, "/admin/keys", &op).await.status, 200);
    // Only an admin disables users.
    assert_error(
        &post(&server, "/admin/users/root/disable", &op, "").await,
        403,
        "role",
    );

    // A demotion applies to the open session at once (the role is read at each request).
    identity::set_role(server.db(), "op", Role::Client)
        .await
        .unwrap();
    assert_error(&get(&server, "/admin/keys", &op).await, 403, "role");
    identity::set_role(server.db(), "op", Role::Operator)
        .await
        .unwrap();
    assert_eq!(get(&server, "/admin/keys", &op).await.status, 200);

    // Logout revokes the session.
    let r = post(&server, "/admin/logout", &op, "").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_error(&get(&server, "/admin/keys", &op).await, 401, "bad_session");

    // An expired session is refused.
    let aud = server.session("aud", Role::Auditor).await;
    assert_eq!(get(&server, "/admin/audit", &aud).await.status, 200);
    sqlx::query("UPDATE sessions SET expires = 1 WHERE username = $1")
        .bind("aud")
        .execute(server.db().pool())
        .await
        .unwrap();
    assert_error(
        &get(&server, "/admin/audit", &aud).await,
        401,
        "bad_session",
    );
    server.stop().await;
}

both!(session_tokens, sessions_are_verified);

// ------------------------------------------------------------------------------------------------ TOTP, lockout

async fn totp_is_required_and_single_use(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let root = server.session("root", Role::Admin).await;
    // An admin created through the API gets a TOTP secret and recovery codes, shown once.
    let password = "a long enough admin password";
    let body = serde_json::json!({"username": "ada", "password": password, "role": "admin"});
    let r = post(&server, "/admin/users", &root, &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let secret = support::base32_decode(created["totp"]["secret_base32"].as_str().unwrap());
    let recovery: Vec<String> = created["totp"]["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10);

    // Missing, wrong, right, replayed.
    assert_error(&server.login("ada", password, None).await, 401, "login");
    assert_error(
        &server
            .login("ada", password, Some(&totp_wrong(&secret)))
            .await,
        401,
        "login",
    );
    assert_error(
        &server.login("ada", password, Some("12345")).await,
        401,
        "login",
    );
    let code = totp_now(&secret);
    let r = server.login("ada", password, Some(&code)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(get(&server, "/admin/users", &token).await.status, 200);
    assert_error(
        &server.login("ada", password, Some(&code)).await,
        401,
        "login",
    );
    // A right code with a wrong password is no way in either.
    let r = server
        .login("ada", "a wrong admin password!!", Some(&totp_now(&secret)))
        .await;
    assert_error(&r, 401, "login");

    // A recovery code works once.
    let r = server.login("ada", password, Some(&recovery[0])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_error(
        &server.login("ada", password, Some(&recovery[0])).await,
        401,
        "login",
    );
    let r = server.login("ada", password, Some(&recovery[1])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // An admin without an enrolled second factor cannot log in at all.
    identity::create_user(server.db(), "bare", password, Role::Admin)
        .await
        .unwrap();
    assert_error(&server.login("bare", password, None).await, 401, "login");
    assert_error(
        &server.login("bare", password, Some("123456")).await,
        401,
        "login",
    );
    // Someone else's recovery code is not valid here.
    let other = identity::enroll_totp(server.db(), "root", "Aegis")
        .await
        .unwrap();
    let r = server
        .login("ada", password, Some(&other.recovery_codes[0]))
        .await;
    assert_error(&r, 401, "login");
    server.stop().await;
}

both!(totp, totp_is_required_and_single_use);

/// Sign in as if from `client` (the gateway trusts 127.0.0.1 as a reverse proxy in these tests).
async fn login_from(
    server: &TestServer,
    client: &str,
    name: &str,
    password: &str,
    totp: Option<&str>,
) -> Resp {
    let mut body = serde_json::json!({"username": name, "password": password});
    if let Some(code) = totp {
        body["totp"] = serde_json::Value::from(code);
    }
    server
        .request(
            "POST",
            "/admin/login",
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", client),
            ],
            body.to_string(),
        )
        .await
}

async fn repeated_failures_lock_the_account(backend: Backend) {
    let Some(server) = support::start(backend, |c| {
        c.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let (password, _) = server.user("carol", Role::Operator).await;
    let (other_pw, _) = server.user("dave", Role::Operator).await;
    for _ in 0..5 {
        let r = server.login("carol", "not the password!", None).await;
        assert_error(&r, 401, "login");
    }
    let r = server.login("carol", &password, None).await;
    assert_error(&r, 429, "lockout");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "retry after {retry}");
    // The lock is per account.
    let r = server.login("dave", &other_pw, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The lockout is a finding on the gateway's own asset; a successful sign-in is not.
    let page = server
        .state()
        .store
        .list_findings(&aegis_store::findings::FindingFilter {
            asset: Some(aegis_gateway::signals::GATEWAY_ASSET.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.findings.len(), 1, "{:?}", page.findings);
    assert_eq!(page.findings[0].finding.rule.as_str(), "AEG-GW-002");
    assert!(page.findings[0].finding.message.contains("carol"));

    // A name that is no account fails and locks exactly like one that is: same statuses, same texts.
    let mut answers = Vec::new();
    for name in ["frank", "nobody"] {
        if name == "frank" {
            server.user("frank", Role::Operator).await;
        }
        let mut seen = Vec::new();
        let client = if name == "frank" {
            "192.0.2.100"
        } else {
            "192.0.2.101"
        };
        for _ in 0..6 {
            let r = login_from(&server, client, name, "not the password!", None).await;
            seen.push((
                r.status,
                r.json()["error"]["message"].as_str().unwrap().to_string(),
            ));
        }
        answers.push(seen);
    }
    // The same answers for a real and a made-up user; the retry delay counts down in seconds, so the two runs
    // may straddle a second: compare the words, and check the delay on its own.
    let words = |seen: &[(u16, String)]| -> Vec<(u16, String)> {
        seen.iter()
            .map(|(status, message)| (*status, message.replace(|c: char| c.is_ascii_digit(), "#")))
            .collect()
    };
    assert_eq!(words(&answers[0]), words(&answers[1]));
    assert_eq!(answers[0][5].0, 429);
    for seen in &answers {
        let delay: u64 = seen[5]
            .1
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .expect("a retry delay in seconds");
        assert!((25..=30).contains(&delay), "{}", seen[5].1);
    }

    // An admin locked by password guesses from elsewhere still gets in with the password and a valid TOTP code.
    let (owner_pw, owner_secret) = server.user("gina", Role::Admin).await;
    let owner_secret = owner_secret.unwrap();
    for i in 0..5 {
        let attacker = format!("192.0.2.{i}");
        let _ = login_from(&server, &attacker, "gina", "not the password!", None).await;
    }
    let owner = "198.51.100.7";
    assert_error(
        &login_from(&server, owner, "gina", &owner_pw, None).await,
        429,
        "lockout",
    );
    let code = totp_now(&owner_secret);
    let r = login_from(&server, owner, "gina", &owner_pw, Some(&code)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // One address that keeps failing, whatever names it tries, is refused before any password is checked;
    // others are not.
    let attacker = "203.0.113.5";
    for i in 0..20 {
        let _ = login_from(
            &server,
            attacker,
            &format!("guess{i}"),
            "not the password!",
            None,
        )
        .await;
    }
    assert_error(
        &login_from(&server, attacker, "dave", &other_pw, None).await,
        429,
        "lockout",
    );
    let r = login_from(&server, "198.51.100.8", "dave", &other_pw, None).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Guessing TOTP codes with the right password locks an admin too, and the lock holds against a right code.
    let (admin_pw, secret) = server.user("erin", Role::Admin).await;
    let secret = secret.unwrap();
    for _ in 0..5 {
        let r = server
            .login("erin", &admin_pw, Some(&totp_wrong(&secret)))
            .await;
        assert_error(&r, 401, "login");
    }
    let r = server
        .login("erin", &admin_pw, Some(&totp_now(&secret)))
        .await;
    assert_error(&r, 429, "lockout");
    assert!(r.header("retry-after").is_some());
    server.stop().await;
}

both!(lockout, repeated_failures_lock_the_account);

// ------------------------------------------------------------------------------------------------ bootstrap

async fn bootstrap_creates_the_first_admin_once(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let code = server
        .info()
        .bootstrap_code
        .clone()
        .expect("bootstrap code on an empty database");
    // No default password exists.
    for (user, pw) in [("admin", "admin"), ("admin", "password"), ("root", "root")] {
        assert_error(&server.login(user, pw, None).await, 401, "login");
    }
    let password = "the first admin's password";
    let send = |code: String| {
        let body = serde_json::json!({"code": code, "username": "first", "password": password});
        server.request(
            "POST",
            "/admin/bootstrap",
            &[("content-type", "application/json")],
            body.to_string(),
        )
    };
    assert_error(&send("wrong".into()).await, 403, "bootstrap");
    assert_error(&send(code.to_lowercase() + "x").await, 403, "bootstrap");
    let r = send(code.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = support::base32_decode(r.json()["secret_base32"].as_str().unwrap());
    assert_eq!(r.json()["recovery_codes"].as_array().unwrap().len(), 10);

    assert_error(&server.login("first", password, None).await, 401, "login");
    let r = server
        .login("first", password, Some(&totp_now(&secret)))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["role"], "admin");
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(get(&server, "/admin/users", &token).await.status, 200);

    // Once used, the code (and any other) is refused.
    assert_error(&send(code).await, 403, "bootstrap");
    assert_error(&send("wrong".into()).await, 403, "bootstrap");
    let users = identity::list_users(server.db()).await.unwrap();
    assert_eq!(users.len(), 1);
    server.stop().await;
}

both!(bootstrap, bootstrap_creates_the_first_admin_once);

async fn no_bootstrap_code_once_users_exist(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    server.user("someone", Role::Client).await;
    // A restart on the same database prints no code.
    let url = server.db_url.clone();
    let dir = server.dir.path().to_path_buf();
    let again = aegis_gateway::serve::start({
        let mut config = aegis_gateway::Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.data_dir = dir;
        config.server.plaintext = true;
        config.server.database = Some(url);
        config.server.secrets_file = Some(server.state().config.secrets_path());
        config
    })
    .await
    .unwrap();
    assert!(again.info.bootstrap_code.is_none());
    assert!(
        again.info.demo_key.is_none(),
        "demo key only on first start"
    );
    again.shutdown().await.unwrap();
    server.stop().await;
}

both!(
    bootstrap_only_when_empty,
    no_bootstrap_code_once_users_exist
);

// ------------------------------------------------------------------------------------------------ audit

fn find(records: &[AuditRecord], pred: impl Fn(&AuditRecord) -> bool) -> &AuditRecord {
    records
        .iter()
        .find(|r| pred(r))
        .unwrap_or_else(|| panic!("no such audit record in {records:#?}"))
}

/// Run one tampering statement against the database behind the server's back.
enum Tamper {
    Sqlite(sqlx::sqlite::SqliteConnection),
    Pool(sqlx::AnyPool),
}

impl Tamper {
    async fn run(&mut self, sql: &str, seq: i64, text: Option<&str>) {
        let done = match self {
            Tamper::Sqlite(conn) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
                if let Some(t) = text {
                    q = q.bind(t.to_string());
                }
                q.bind(seq)
                    .execute(&mut *conn)
                    .await
                    .unwrap()
                    .rows_affected()
            }
            Tamper::Pool(pool) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
                if let Some(t) = text {
                    q = q.bind(t.to_string());
                }
                q.bind(seq).execute(&*pool).await.unwrap().rows_affected()
            }
        };
        assert_eq!(done, 1, "{sql}");
    }
}

async fn audit_records_decisions_and_detects_tampering(backend: Backend) {
    // Refusals without an identity are sampled per address and window (see `refusals.rs`): a 1 s window
    // and a pause between the two below keep one record each here.
    let Some(mut server) = support::start(backend, |c| c.server.refusal_summary_secs = 1).await
    else {
        return;
    };
    // The run's boot record, model events and the demo key's creation.
    let startup =
        1 + server.info().model_events.len() as i64 + server.info().demo_key.is_some() as i64;
    wait_for_audit(server.db(), startup).await;
    let mut expected = startup;

    let op = server.session("op", Role::Operator).await;
    expected += 1; // login
    let key = server.key(&[MODEL], |_| {}).await;
    let scoped = server.key(&["other-model"], |_| {}).await;
    assert_eq!(predict(&server, &key).await.status, 200);
    assert_error(&predict(&server, &scoped).await, 403, "scope");
    assert_error(
        &server
            .request(
                "POST",
                PREDICT,
                &[("content-type", "application/json")],
                ROW,
            )
            .await,
        401,
        "no_key",
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_error(
        &predict(
            &server,
            "aeg_kZZZZZZZZZZ_0123456789012345678901234567890123456789",
        )
        .await,
        401,
        "bad_key",
    );
    expected += 4;
    let body = serde_json::json!({"name": "web", "owner": "shop", "models": [MODEL]});
    let r = post(&server, "/admin/keys", &op, &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created_secret = r.json()["secret"].as_str().unwrap().to_string();
    let body_user = serde_json::json!({"username": "evil", "password": "a long enough password", "role": "admin"});
    assert_error(
        &post(&server, "/admin/users", &op, &body_user.to_string()).await,
        403,
        "role",
    );
    assert_error(
        &server.login("op", "not the password!", None).await,
        401,
        "login",
    );
    expected += 3;

    wait_for_audit(server.db(), expected).await;
    let records = audit_log::list(server.db(), 0, 1000).await.unwrap();
    assert_eq!(records.len() as i64, expected);
    let allowed = find(&records, |r| r.decision == "allowed");
    assert_eq!(
        (
            allowed.kind.as_str(),
            allowed.key_id.as_str(),
            allowed.model.as_str(),
            allowed.status
        ),
        ("inference", key_id(&key).as_str(), MODEL, 200)
    );
    assert!(allowed.input_digest.starts_with("sha256:"));
    assert_eq!(allowed.actor, "tester");
    let scope = find(&records, |r| r.decision == "denied:scope");
    assert_eq!(
        (
            scope.kind.as_str(),
            scope.key_id.as_str(),
            scope.model.as_str(),
            scope.status
        ),
        ("denied", key_id(&scoped).as_str(), MODEL, 403)
    );
    let scope_seq = scope.seq;
    let no_key = find(&records, |r| r.decision == "denied:no_key");
    assert_eq!((no_key.kind.as_str(), no_key.status), ("denied", 401));
    find(&records, |r| {
        r.decision == "denied:bad_key" && r.status == 401
    });
    let create = find(&records, |r| r.decision == "key.create" && r.actor == "op");
    assert_eq!((create.kind.as_str(), create.status), ("admin", 201));
    assert_eq!(create.key_id, key_id(&created_secret));
    let create_seq = create.seq;
    let role = find(&records, |r| r.decision == "denied:role");
    assert_eq!((role.actor.as_str(), role.status), ("op", 403));
    // The refusal names the route that was refused.
    assert_eq!(role.route, "/admin/users");
    let login_ok = find(&records, |r| r.decision == "login" && r.actor == "op");
    assert_eq!((login_ok.kind.as_str(), login_ok.status), ("auth", 200));
    let login_bad = find(&records, |r| {
        r.decision == "denied:login" && r.actor == "op"
    });
    assert_eq!(login_bad.status, 401);
    // No secret ever reaches the log.
    let dump = serde_json::to_string(&records).unwrap();
    for secret in [
        key.as_str(),
        scoped.as_str(),
        created_secret.as_str(),
        op.as_str(),
        "correct horse battery op",
        "not the password!",
    ] {
        assert!(!dump.contains(secret), "secret in the audit log");
    }
    let v = audit_log::verify(server.db()).await.unwrap();
    assert_eq!(
        (v.records, v.head_seq, v.problem.clone()),
        (expected, expected, None)
    );

    // Tamper with the stored records, behind the gateway's back.
    let (db, mut tamper, _keep_dir, still_running) = match backend {
        Backend::Sqlite => {
            let url = server.db_url.clone();
            // Keep the data directory alive past stop().
            let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
            server.stop().await;
            let db = Db::connect(&url).await.unwrap();
            let v = audit_log::verify(&db).await.unwrap();
            // The stop added its `shutdown` record, and the run is complete.
            assert_eq!(
                (v.records, v.problem.clone()),
                (expected + 1, None),
                "clean after restart"
            );
            assert!(v.unstopped.is_empty(), "{v:?}");
            let conn = <sqlx::sqlite::SqliteConnection as sqlx::Connection>::connect_with(
                &sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("aegis.db")),
            )
            .await
            .unwrap();
            (db, Tamper::Sqlite(conn), Some(dir), None)
        }
        Backend::Postgres => {
            let db = server.db().clone();
            let pool = db.pool().clone();
            // stop() drops the PostgreSQL database: tamper while the server still runs (it is idle).
            (db, Tamper::Pool(pool), None, Some(server))
        }
    };

    // An edited decision is named by its sequence number.
    tamper
        .run(
            "UPDATE audit_log SET decision = $1 WHERE seq = $2",
            scope_seq,
            Some("allowed"),
        )
        .await;
    let v = audit_log::verify(&db).await.unwrap();
    let problem = v.problem.expect("edit detected");
    assert_eq!(problem.seq, scope_seq, "{}", problem.reason);
    // Putting it back makes the chain whole again (the check is exact, not heuristic).
    tamper
        .run(
            "UPDATE audit_log SET decision = $1 WHERE seq = $2",
            scope_seq,
            Some("denied:scope"),
        )
        .await;
    assert_eq!(audit_log::verify(&db).await.unwrap().problem, None);
    // A removed record is named too.
    tamper
        .run("DELETE FROM audit_log WHERE seq = $1", create_seq, None)
        .await;
    let v = audit_log::verify(&db).await.unwrap();
    let problem = v.problem.expect("removal detected");
    assert_eq!(problem.seq, create_seq, "{}", problem.reason);

    // The running gateway reports the same break to an auditor over HTTP (PostgreSQL: the server still runs).
    if let Some(server) = &still_running {
        let aud = server.session("aud", Role::Auditor).await;
        let r = get(server, "/admin/audit/verify", &aud).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["problem"]["seq"], create_seq, "{}", r.text());
        // … and the break is a critical finding on the gateway's own asset.
        let page = server
            .state()
            .store
            .list_findings(&aegis_store::findings::FindingFilter {
                asset: Some(aegis_gateway::signals::GATEWAY_ASSET.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            page.findings
                .iter()
                .any(|f| f.finding.rule.as_str() == "AEG-GW-003"
                    && f.finding.severity == aegis_core::Severity::Critical),
            "{:?}",
            page.findings
        );
    }
    match still_running {
        Some(server) => server.stop().await,
        None => db.close().await,
    }
}

both!(audit_chain, audit_records_decisions_and_detects_tampering);

/// A flood of requests without a key leaves one full record per address and window and one summary with the
/// count, not a record each; a failed sign-in (an account named) and authenticated requests keep theirs.
async fn anonymous_refusals_are_sampled(backend: Backend) {
    let Some(server) = support::start(backend, |c| c.server.refusal_summary_secs = 1).await else {
        return;
    };
    // The run's boot record, model events and the demo key's creation.
    let startup =
        1 + server.info().model_events.len() as i64 + server.info().demo_key.is_some() as i64;
    wait_for_audit(server.db(), startup).await;
    for _ in 0..200 {
        let r = server
            .request(
                "POST",
                PREDICT,
                &[("content-type", "application/json")],
                ROW,
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let key = server.key(&[MODEL], |_| {}).await;
    for _ in 0..3 {
        assert_eq!(predict(&server, &key).await.status, 200);
    }
    // The window ends within a second; the flusher writes its summary without another request.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let records = loop {
        let records = audit_log::list(server.db(), 0, 1000).await.unwrap();
        if records.iter().any(|r| r.detail.contains("more refusals")) {
            break records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no summary: {records:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let full: Vec<_> = records
        .iter()
        .filter(|r| r.decision == "denied:no_key")
        .collect();
    assert_eq!(full.len(), 1, "{full:#?}");
    let summary: Vec<_> = records
        .iter()
        .filter(|r| r.detail.contains("more refusals"))
        .collect();
    assert_eq!(summary.len(), 1);
    assert!(
        summary[0].detail.starts_with("199 more refusals")
            && summary[0].detail.contains("127.0.0.1"),
        "{}",
        summary[0].detail
    );
    assert_eq!(
        records.iter().filter(|r| r.decision == "allowed").count(),
        3,
        "authenticated requests keep one record each"
    );
    assert!(
        (records.len() as i64) < startup + 10,
        "{} records for 200 refusals",
        records.len()
    );
    // Every refusal is still counted.
    let metrics = server.state().metrics.render();
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("aegis_unauthenticated_refusals_total"))
        .unwrap_or_default();
    assert!(counted.ends_with(" 200"), "{counted:?}");
    server.stop().await;
}

both!(
    anonymous_refusal_floods_are_sampled,
    anonymous_refusals_are_sampled
);

// ------------------------------------------------------------------------------------------------ TLS

async fn tls_get(
    addr: std::net::SocketAddr,
    roots: rustls::RootCertStore,
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_generated_certificate() {
    let server = support::start(Backend::Sqlite, |c| c.server.plaintext = false)
        .await
        .unwrap();
    let info = server.info().clone();
    assert_eq!(info.scheme, "https");
    let (fingerprint, generated) = info.tls_fingerprint.clone().expect("fingerprint");
    assert!(generated);
    assert!(!fingerprint.is_empty());
    let pem = std::fs::read(info.tls_cert.as_ref().expect("certificate file")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    assert!(!roots.is_empty());
    let answer = tokio::time::timeout(Duration::from_secs(5), tls_get(info.addr, roots))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{answer}"
    );

    // A client that does not trust the certificate cannot connect.
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        tls_get(info.addr, rustls::RootCertStore::empty()),
    )
    .await
    .unwrap();
    assert!(refused.is_err(), "untrusted certificate accepted");

    // Plain HTTP to the TLS port gets no answer.
    let plain = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(info.addr).await?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out).await;
        std::io::Result::Ok(out)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        !String::from_utf8_lossy(&plain).contains("200"),
        "plain HTTP answered"
    );
    server.stop().await;
}

// ------------------------------------------------------------------------------------------------ admin edges

/// Whether a response is the gateway's JSON error shape.
fn is_json_error(r: &Resp) -> bool {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .map(|v| v["error"]["code"].is_string())
        .unwrap_or(false)
}

async fn admin_refusals_come_first_and_as_json(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let aud = server.session("aud", Role::Auditor).await;
    let r = get(&server, "/admin/audit?after=0&limit=5", &aud).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Authentication comes before the query string: anonymous → 401; a bad query → JSON 400 with the request id.
    let r = server.request("GET", "/admin/audit?after=x", &[], "").await;
    assert!(is_json_error(&r), "{}", r.text());
    assert_error(&r, 401, "no_session");
    let r = get(&server, "/admin/audit?after=x", &aud).await;
    assert!(is_json_error(&r), "{}", r.text());
    assert_error(&r, 400, "malformed");

    // The auth scheme is case-insensitive (RFC 9110 §11.1), for sessions as for API keys.
    let auth = format!("bearer {aud}");
    let r = server
        .request("GET", "/admin/audit", &[("authorization", &auth)], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A session in the x-api-key header is not a session either.
    let r = server
        .request("GET", "/admin/audit", &[("x-api-key", &aud)], "")
        .await;
    assert_error(&r, 401, "no_session");
    server.stop().await;
}

both!(admin_edges, admin_refusals_come_first_and_as_json);

/// Re-enrolling TOTP needs the password again: a stolen session token alone cannot replace the second factor.
async fn totp_reenrollment_needs_the_password(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let token = server.session("carol", Role::Operator).await;
    let r = server.with_session("POST", "/admin/totp", &token, "").await;
    assert_error(&r, 400, "malformed");
    let r = server
        .with_session(
            "POST",
            "/admin/totp",
            &token,
            r#"{"password":"not her password"}"#,
        )
        .await;
    assert_error(&r, 401, "reauth");
    let r = server
        .with_session(
            "POST",
            "/admin/totp",
            &token,
            r#"{"password":"correct horse battery carol"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    server.stop().await;
}

both!(
    totp_reenrollment_reauthenticates,
    totp_reenrollment_needs_the_password
);

/// The attack that minted an admin session from a read-only copy of `aegis.db`: with the secrets key file kept
/// apart, the copy holds no session key and no clear TOTP secret, a token forged with anything in it is
/// refused, and a gateway started on the copy with another key file refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_database_alone_mints_no_session() {
    let server = support::start(Backend::Sqlite, |_| {}).await.unwrap();
    let (password, secret) = server.user("root", Role::Admin).await;
    let secret = secret.unwrap();
    let code = format!(
        "{:06}",
        identity::totp::code_at(&secret, (util::now_secs() / 30) as u64)
    );
    let r = server.login("root", &password, Some(&code)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(get(&server, "/admin/users", &token).await.status, 200);

    // The attacker's copy: the database file only (after a checkpoint, so the copy is complete).
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(server.db().pool())
        .await
        .unwrap();
    let stolen = tempfile::tempdir().unwrap();
    std::fs::copy(
        server.dir.path().join("aegis.db"),
        stolen.path().join("aegis.db"),
    )
    .unwrap();
    let copy = Db::connect(&aegis_gateway::db::sqlite_url(
        &stolen.path().join("aegis.db"),
    ))
    .await
    .unwrap();
    let mut values: Vec<String> = Vec::new();
    for (table, column) in [
        ("settings", "value"),
        ("users", "totp_secret"),
        ("sessions", "id"),
    ] {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {column} AS v FROM {table}"
        )))
        .fetch_all(copy.pool())
        .await
        .unwrap();
        for row in rows {
            if let Ok(Some(v)) = sqlx::Row::try_get::<Option<String>, _>(&row, "v") {
                values.push(v);
            }
        }
    }
    // No clear TOTP secret in it.
    let clear = secret
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert!(
        values.iter().all(|v| !v.contains(&clear)),
        "clear TOTP secret in the copy"
    );
    // Every value in it, tried as a session MAC key over every session id, forges nothing the server accepts.
    let ids: Vec<String> = sqlx::query("SELECT id FROM sessions")
        .fetch_all(copy.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| sqlx::Row::try_get(r, "id").unwrap())
        .collect();
    assert!(!ids.is_empty());
    for candidate in &values {
        let key_bytes = candidate
            .as_bytes()
            .chunks(2)
            .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
            .collect::<Vec<u8>>();
        for key in [candidate.as_bytes().to_vec(), key_bytes] {
            for id in &ids {
                use base64::Engine;
                use hmac::Mac;
                let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key) else {
                    continue;
                };
                mac.update(id.as_bytes());
                let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(mac.finalize().into_bytes());
                let forged = format!("ses_{id}.{tag}");
                assert_ne!(forged, token, "the copy yields the real token");
                assert_eq!(get(&server, "/admin/users", &forged).await.status, 401);
            }
        }
    }
    // A gateway on the copy with a key file of the attacker's own refuses to start.
    let mut config = aegis_gateway::config::Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.plaintext = true;
    config.server.data_dir = stolen.path().to_path_buf();
    #[cfg(unix)]
    std::fs::set_permissions(
        stolen.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let refused = aegis_gateway::serve::start(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("secrets key file is not the one"),
        "{refused}"
    );
    copy.close().await;
    server.stop().await;
}
