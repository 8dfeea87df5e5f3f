//! The harness itself: a server starts on each backend, answers, and stops cleanly.

mod support;

use support::Backend;

async fn starts_and_answers(backend: Backend) {
    let Some(server) = support::start(backend, |_| {}).await else {
        return;
    };
    let r = server.request("GET", "/healthz", &[], "").await;
    assert_eq!(r.status, 200);
    let r = server.request("GET", "/no/such/route", &[], "").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    server.stop().await;
}

both!(harness, starts_and_answers);
