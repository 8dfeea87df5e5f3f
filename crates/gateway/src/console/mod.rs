//! The console: the web pages `aegis serve` shows at `/` (or under `[server] console_path`), for a person with
//! no security training to run the company's AI security from.
//!
//! The pages are the `aegis-web` crate's templates; this module routes, checks the session and the role exactly
//! as the JSON API does (an auditor reads and changes nothing, a client account cannot open the console),
//! gathers what each page shows, and performs what its forms ask. Every change goes through the same library
//! functions as the API and is audited the same way, with the route it came from.
//!
//! Every response carries a strict Content-Security-Policy (no inline script or style: the templates have
//! none), `no-referrer`, `nosniff`, and refuses framing; pages are never cached.

/// The visitor, or the response that sends them to sign in (for the page handlers of the submodules).
macro_rules! visitor {
    ($state:expr, $headers:expr) => {
        match super::auth::visitor(&$state, &$headers, &super::views::base(&$state)).await {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

mod actions;
mod admin_pages;
mod auth;
mod monitor;
mod once;
mod sign_in;
mod views;

use axum::extract::{DefaultBodyLimit, Path};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::state::Shared;

/// The console's routes, mounted at `base` (`""` or a path such as `/aegis`).
pub(crate) fn routes(base: &str) -> Router<Shared> {
    let pages = Router::new()
        .route("/", get(views::overview))
        .route("/sign-in", get(sign_in::page).post(sign_in::submit))
        .route(
            "/sign-out",
            post(sign_in::sign_out).get(|| async { Redirect::to("./") }),
        )
        .route(
            "/setup",
            get(sign_in::setup_page).post(sign_in::setup_submit),
        )
        .route("/findings", get(views::findings))
        .route("/findings/bulk", post(actions::bulk_triage))
        .route("/findings/{fingerprint}", get(views::finding))
        .route("/findings/{fingerprint}/triage", post(actions::triage))
        .route(
            "/assets",
            get(views::assets)
                .post(actions::add_asset)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/assets/{name}", get(views::asset))
        .route("/assets/{name}/runs", get(views::runs))
        .route(
            "/assets/{name}/versions",
            post(actions::upload_version).layer(DefaultBodyLimit::disable()),
        )
        .route("/assets/{name}/checks", post(actions::run_checks))
        .route("/assets/{name}/links", post(actions::link_dataset))
        .route("/runs/{id}", get(views::run_report))
        .route("/rules/{id}", get(views::rule))
        .route("/monitor", get(monitor::monitor))
        .route("/gateway", get(admin_pages::gateway))
        .route("/gateway/users", post(actions::add_user))
        .route("/gateway/users/{name}/{action}", post(actions::user_state))
        .route("/gateway/keys", post(actions::create_key))
        .route("/gateway/keys/{id}/{action}", post(actions::key_action))
        .route("/audit", get(admin_pages::audit))
        .route("/audit/export", get(admin_pages::audit_export))
        .route("/settings", get(admin_pages::settings))
        .route("/settings/channels", post(actions::add_channel))
        .route(
            "/settings/channels/{name}/{action}",
            post(actions::channel_action),
        )
        .route("/static/{file}", get(static_file))
        .route_layer(axum::middleware::from_fn(security_headers));
    if base.is_empty() {
        pages
    } else {
        let home = format!("{base}/");
        Router::new()
            .route(
                "/",
                get(move || async move { Redirect::to(&home).into_response() }),
            )
            .route(
                &format!("{base}/"),
                get(views::overview).route_layer(axum::middleware::from_fn(security_headers)),
            )
            .nest(base, pages)
    }
}

/// The strict headers of every console response. HTTP/2 carries the host in the `:authority` pseudo-header,
/// not in `Host`; it is copied to `Host` here so the same-origin check sees one place for both versions.
async fn security_headers(mut request: axum::extract::Request, next: Next) -> Response {
    if !request.headers().contains_key(header::HOST) {
        let authority = request.uri().authority().map(|a| a.as_str().to_string());
        if let Some(v) = authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
            request.headers_mut().insert(header::HOST, v);
        }
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(aegis_web::CONTENT_SECURITY_POLICY),
        );
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The embedded static files (cached for an hour: they change only with the binary).
async fn static_file(Path(file): Path<String>) -> Response {
    match aegis_web::asset(&file) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// The page a browser gets for an address that does not exist (with the console's strict headers).
pub(crate) fn not_found(base: &str) -> Response {
    let mut r = message_page(
        StatusCode::NOT_FOUND,
        base,
        "No such page",
        "Nothing is at this address. The console's menu leads to every page.",
    );
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(aegis_web::CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An authenticator enrolment as the pages show it once: the key in groups of four, its QR code, the recovery
/// codes.
fn enrolment_view(username: &str, e: &crate::identity::Enrollment) -> aegis_web::Enrolment {
    let secret = e
        .secret_base32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    aegis_web::Enrolment {
        username: username.to_string(),
        secret,
        uri: e.otpauth_uri.clone(),
        qr_svg: aegis_web::qr_svg(&e.otpauth_uri),
        recovery: e.recovery_codes.clone(),
    }
}

/// A rendered page as a response.
fn page(status: StatusCode, html: String) -> Response {
    (status, Html(html)).into_response()
}

/// A page that only says something, for a visitor who may not be signed in.
fn message_page(status: StatusCode, base: &str, title: &str, text: &str) -> Response {
    let html = aegis_web::render(&aegis_web::Message {
        chrome: aegis_web::Chrome {
            base: base.to_string(),
            ..Default::default()
        },
        title: title.to_string(),
        text: text.to_string(),
        next: Some(("Go to the overview".into(), format!("{base}/"))),
    });
    page(status, html)
}
