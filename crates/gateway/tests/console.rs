//! The console's routes over real HTTP: every page needs a session and carries the strict headers, the roles
//! are those of the API (an auditor reads and changes nothing, a client account cannot open the console), every
//! change is refused without the session's CSRF token or from another site, and the base path moves it all.

mod support;

use aegis_gateway::identity::Role;
use support::{Backend, Resp, TestServer};

const PAGES: &[&str] = &["/", "/findings", "/assets", "/monitor", "/settings"];

fn cookie(token: &str) -> String {
    format!("__Host-aegis_session={token}")
}

async fn get(s: &TestServer, path: &str, token: &str) -> Resp {
    s.request("GET", path, &[("cookie", &cookie(token))], "")
        .await
}

/// A form POST as the console sends it (same origin), with `token`'s cookie.
async fn post(s: &TestServer, path: &str, token: &str, form: &str, extra: &[(&str, &str)]) -> Resp {
    let c = cookie(token);
    let mut headers = vec![
        ("cookie", c.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
        ("sec-fetch-site", "same-origin"),
    ];
    headers.extend_from_slice(extra);
    s.request("POST", path, &headers, form.to_string()).await
}

/// The CSRF token a page's forms carry.
fn csrf(page: &Resp) -> String {
    let text = page.text();
    let at = text
        .find("name=\"csrf\" value=\"")
        .expect("a form with its token");
    let rest = &text[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn assert_strict(r: &Resp, what: &str) {
    assert_eq!(
        r.header("content-security-policy").as_deref(),
        Some(aegis_web::CONTENT_SECURITY_POLICY),
        "{what}"
    );
    assert_eq!(
        r.header("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        r.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
}

/// A finding on the demo model, so there is something to triage.
async fn a_finding(s: &TestServer) -> String {
    let store = &s.state().store;
    let asset = store.asset("demo-fraud").await.unwrap();
    let rule = aegis_gateway::signals::rules()[0];
    let f = aegis_core::Finding::new(
        rule,
        aegis_core::Location::file("demo-fraud.onnx"),
        "test finding",
    );
    store
        .record_signal(&asset, "gateway", &[f], false)
        .await
        .unwrap();
    let page = store.list_findings(&Default::default()).await.unwrap();
    page.findings[0].fingerprint.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_and_carry_strict_headers() {
    let s = support::start(Backend::Sqlite, |_| {}).await.unwrap();
    // Signed out: every page sends people to the sign-in page, which is HTML, not a JSON 404.
    for path in PAGES {
        let r = s.request("GET", path, &[], "").await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location").as_deref(), Some("/sign-in"), "{path}");
        assert_strict(&r, path);
    }
    let r = s.request("GET", "/sign-in", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.text().contains("Nobody can sign in yet"),
        "no user exists yet"
    );
    assert_strict(&r, "/sign-in");
    // Signed in as an admin: every page renders with the strict headers and no inline script or style.
    let admin = s.session("ada", Role::Admin).await;
    for path in PAGES.iter().chain(&["/gateway", "/audit"]) {
        let r = get(&s, path, &admin).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_strict(&r, path);
        let text = r.text();
        assert!(
            !text.contains("<style") && !text.contains(" style=") && !text.contains("<script>"),
            "{path}"
        );
    }
    let js = s.request("GET", "/static/htmx.min.js", &[], "").await;
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(
        s.request("GET", "/static/../Cargo.toml", &[], "")
            .await
            .status,
        404
    );
    // An address that does not exist: a page for a browser, JSON for an API client.
    let r = s
        .request(
            "GET",
            "/no-such-page",
            &[("sec-fetch-dest", "document")],
            "",
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("No such page"));
    assert_strict(&r, "404 page");
    let r = s
        .request("GET", "/no-such-page", &[("accept", "*/*")], "")
        .await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["code"] == "not_found");
    // A forged or revoked cookie is no session.
    assert_eq!(get(&s, "/findings", "ses_forged.token").await.status, 303);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_those_of_the_api() {
    let s = support::start(Backend::Sqlite, |_| {}).await.unwrap();
    let fp = a_finding(&s).await;
    let auditor = s.session("audrey", Role::Auditor).await;
    let operator = s.session("otto", Role::Operator).await;
    let client = s.session("cleo", Role::Client).await;
    // A client account cannot open the console at all.
    let r = get(&s, "/findings", &client).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Client accounts"));
    // An auditor reads findings and the audit log, sees no form that changes anything, and is refused when
    // sending one anyway (with their own valid token).
    let page = get(&s, &format!("/findings/{fp}"), &auditor).await;
    assert_eq!(page.status, 200);
    assert!(
        !page.text().contains("/triage\""),
        "no triage form for an auditor"
    );
    assert_eq!(get(&s, "/audit", &auditor).await.status, 200);
    assert_eq!(get(&s, "/gateway", &auditor).await.status, 403);
    let token = csrf(&page);
    let form = format!("csrf={token}&state=false_positive&comment=nope");
    let r = post(&s, &format!("/findings/{fp}/triage"), &auditor, &form, &[]).await;
    assert_eq!(r.status, 403);
    let f = s.state().store.finding(&fp).await.unwrap();
    assert_eq!(f.state.as_str(), "in_triage", "the auditor changed nothing");
    // An operator triages; the change is the store's, with the operator as actor.
    let page = get(&s, &format!("/findings/{fp}"), &operator).await;
    let form = format!(
        "csrf={}&state=false_positive&comment=test+signal",
        csrf(&page)
    );
    let r = post(&s, &format!("/findings/{fp}/triage"), &operator, &form, &[]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let f = s.state().store.finding(&fp).await.unwrap();
    assert_eq!(f.state.as_str(), "false_positive");
    let events = s.state().store.finding_events(&fp).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.actor == "otto" && e.comment == "test signal"));
    // An operator links a dataset to a model from the model's page; an auditor cannot.
    let store = &s.state().store;
    store
        .create_asset(aegis_store::assets::NewAsset {
            name: "holdout".into(),
            kind: Some(aegis_store::assets::AssetKind::Dataset),
            role: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let page = get(&s, "/assets/demo-fraud", &operator).await;
    assert!(page.text().contains("Link a dataset to this model"));
    let form = format!("csrf={}&dataset=holdout&relation=evaluated_on", csrf(&page));
    let r = post(&s, "/assets/demo-fraud/links", &operator, &form, &[]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let model = store.asset("demo-fraud").await.unwrap();
    let links = store.links(&model.id).await.unwrap();
    assert!(links
        .iter()
        .any(|(rel, a)| rel.as_str() == "evaluated_on" && a.name == "holdout"));
    let page = get(&s, "/assets/demo-fraud", &auditor).await;
    assert!(!page.text().contains("Link a dataset to this model"));
    let form = format!("csrf={}&dataset=holdout&relation=trained_on", csrf(&page));
    assert_eq!(
        post(&s, "/assets/demo-fraud/links", &auditor, &form, &[])
            .await
            .status,
        403
    );
    // Operators manage keys but not people; the audit log is not theirs.
    assert_eq!(get(&s, "/gateway", &operator).await.status, 200);
    assert!(!get(&s, "/gateway", &operator)
        .await
        .text()
        .contains("Add a person"));
    assert_eq!(get(&s, "/audit", &operator).await.status, 403);
    let page = get(&s, "/gateway", &operator).await;
    let form = format!(
        "csrf={}&username=eve&role=admin&password=a+very+long+password+1",
        csrf(&page)
    );
    assert_eq!(
        post(&s, "/gateway/users", &operator, &form, &[])
            .await
            .status,
        403
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_token_and_the_same_origin() {
    let s = support::start(Backend::Sqlite, |_| {}).await.unwrap();
    let admin = s.session("ada", Role::Admin).await;
    let page = get(&s, "/gateway", &admin).await;
    let token = csrf(&page);
    let keys = || async { aegis_gateway::keys::list_keys(s.db()).await.unwrap().len() };
    let before = keys().await;
    // No token, a wrong token, a token from another session, another site: all refused, nothing created.
    for (form, extra) in [
        ("name=a&models=".to_string(), vec![]),
        ("csrf=00&name=a&models=".to_string(), vec![]),
        (
            format!("csrf={token}&name=a&models="),
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            format!("csrf={token}&name=a&models="),
            vec![("sec-fetch-site", "same-site")],
        ),
    ] {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        let c = cookie(&admin);
        headers.push(("cookie", &c));
        headers.push(("content-type", "application/x-www-form-urlencoded"));
        let site = extra.first().map_or("same-origin", |e| e.1);
        headers.push(("sec-fetch-site", site));
        let r = s
            .request("POST", "/gateway/keys", &headers, form.clone())
            .await;
        assert_eq!(r.status, 403, "{form} {extra:?}");
    }
    let other = s.session("bob", Role::Admin).await;
    let form = format!("csrf={token}&name=a&models=");
    assert_eq!(
        post(&s, "/gateway/keys", &other, &form, &[]).await.status,
        403,
        "another session's token"
    );
    // An old browser without Sec-Fetch-Site but with a foreign Origin is refused too.
    let c = cookie(&admin);
    let r = s
        .request(
            "POST",
            "/gateway/keys",
            &[
                ("cookie", &c),
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "https://evil.example"),
            ],
            form.clone(),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(keys().await, before, "no refused request created a key");
    // The real thing: the secret is shown once, in the answer.
    let r = post(
        &s,
        "/gateway/keys",
        &admin,
        "csrf=".to_string().as_str(),
        &[],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post(
        &s,
        "/gateway/keys",
        &admin,
        &format!("csrf={token}&name=billing&models=demo-fraud"),
        &[],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(keys().await, before + 1);
    // The answer is a redirect (a reload creates nothing); the next page shows the secret, once, to this session.
    let shown = |who: &str| {
        let who = who.to_string();
        let s = &s;
        async move {
            get(s, "/gateway", &who)
                .await
                .text()
                .contains("id=\"key-secret\"")
        }
    };
    assert!(!shown(&other).await, "not to another session");
    assert!(shown(&admin).await, "the secret is shown");
    assert!(!shown(&admin).await, "and only once");
    // A key for a model that is not served is refused.
    let form = format!("csrf={token}&name=typo&models=demo-frad");
    let r = post(&s, "/gateway/keys", &admin, &form, &[]).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("No model is served under the name"));
    // Sign-out ends the session.
    let r = post(&s, "/sign-out", &admin, &format!("csrf={token}"), &[]).await;
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(get(&s, "/findings", &admin).await.status, 303);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_cookie_and_admins_need_their_code() {
    let s = support::start(Backend::Sqlite, |_| {}).await.unwrap();
    let (password, secret) = s.user("ada", Role::Admin).await;
    let form = |code: &str| {
        format!(
            "username=ada&password={}&totp={code}",
            password.replace(' ', "+")
        )
    };
    let server = &s;
    let send = |body: String| async move {
        server
            .request(
                "POST",
                "/sign-in",
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("sec-fetch-site", "same-origin"),
                ],
                body,
            )
            .await
    };
    let r = send(form("")).await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("6-digit code"));
    let code = format!(
        "{:06}",
        aegis_gateway::identity::totp::code_at(
            &secret.unwrap(),
            (aegis_gateway::util::now_secs() / 30) as u64
        )
    );
    let r = send(form(&code)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let set = r.header("set-cookie").unwrap();
    for part in [
        "aegis_session=ses_",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(set.contains(part), "{set}");
    }
    // A sign-in started by another site is refused before the password is checked.
    let r = s
        .request(
            "POST",
            "/sign-in",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("sec-fetch-site", "cross-site"),
            ],
            form(&code),
        )
        .await;
    assert_eq!(r.status, 403);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_moves_under_a_base_path() {
    let s = support::start(Backend::Sqlite, |c| c.server.console_path = "/aegis".into())
        .await
        .unwrap();
    let r = s.request("GET", "/", &[], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/aegis/"));
    let r = s.request("GET", "/aegis/", &[], "").await;
    assert_eq!(r.header("location").as_deref(), Some("/aegis/sign-in"));
    let r = s.request("GET", "/aegis/sign-in", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("action=\"/aegis/sign-in\""));
    assert!(r.text().contains("href=\"/aegis/static/console.css\""));
    assert_eq!(
        s.request("GET", "/sign-in", &[], "").await.status,
        404,
        "nothing at the old place"
    );
    let admin = s.session("ada", Role::Admin).await;
    let plain = format!("aegis_session={admin}");
    let r = s
        .request("GET", "/aegis/findings", &[("cookie", &plain)], "")
        .await;
    assert_eq!(r.status, 200);
    // The root's cookie name means nothing here, and htmx gets a redirect header instead of a page.
    let r = get(&s, "/aegis/findings", &admin).await;
    assert_eq!(r.status, 303);
    let r = s
        .request(
            "GET",
            "/aegis/assets/demo-fraud/runs",
            &[("hx-request", "true")],
            "",
        )
        .await;
    assert_eq!(r.header("hx-redirect").as_deref(), Some("/aegis/sign-in"));
    assert_strict(&r, "/aegis/findings");
    // The API stays where it is.
    assert_eq!(s.request("GET", "/healthz", &[], "").await.status, 200);
    s.stop().await;
}

#[test]
fn a_console_path_must_be_a_plain_prefix() {
    for bad in ["aegis", "/aegis/", "/ae gis", "/../x", "/admin", "//x"] {
        let mut c = aegis_gateway::config::Config::default();
        c.server.console_path = bad.into();
        assert!(c.check().is_err(), "{bad:?} accepted");
    }
    for good in ["", "/aegis", "/tools/aegis-1.0"] {
        let mut c = aegis_gateway::config::Config::default();
        c.server.console_path = good.into();
        assert!(c.check().is_ok(), "{good:?} refused");
    }
}
