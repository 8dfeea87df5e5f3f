//! Signing in and out, and creating the first administrator from the one-time link `aegis serve` prints.
//!
//! Sign-in is the API's login (password, then a TOTP code for anyone enrolled and always for admins; the
//! same throttle and lockout); the session it opens goes into the console's cookie instead of a response body.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::auth;
use crate::admin_request::done;
use crate::audit_trail::AuditCtx;
use crate::identity::{self, LoginError};
use crate::state::Shared;
use crate::util;

fn base(state: &Shared) -> String {
    state.config.server.console_path.clone()
}

async fn nobody_yet(state: &Shared) -> bool {
    identity::list_users(&state.db)
        .await
        .map(|u| u.is_empty())
        .unwrap_or(false)
}

fn sign_in_page(
    state: &Shared,
    status: StatusCode,
    username: &str,
    problem: &str,
    needs_setup: bool,
) -> Response {
    super::page(
        status,
        aegis_web::render(&aegis_web::SignIn {
            base: base(state),
            username: username.to_string(),
            problem: problem.to_string(),
            needs_setup,
        }),
    )
}

/// `GET /sign-in`.
pub(super) async fn page(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if auth::visitor(&state, &headers, &base(&state)).await.is_ok() {
        return Redirect::to(&format!("{}/", base(&state))).into_response();
    }
    let needs_setup = nobody_yet(&state).await;
    sign_in_page(&state, StatusCode::OK, "", "", needs_setup)
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    username: String,
    password: String,
    #[serde(default)]
    totp: String,
}

/// `POST /sign-in`: the API's login, into a cookie.
pub(super) async fn submit(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let mut ctx = AuditCtx::admin("/sign-in");
    ctx.kind = "auth".into();
    ctx.actor = form.username.clone();
    if !auth::same_origin(&headers) {
        return cross_site(&state, ctx);
    }
    let source = crate::admin::login_source(&state, &headers);
    let totp: String = form.totp.chars().filter(|c| !c.is_whitespace()).collect();
    let attempt = identity::Attempt {
        username: &form.username,
        password: &form.password,
        second_factor: (!totp.is_empty()).then_some(totp.as_str()),
        source,
    };
    let ttl = state.config.server.session_ttl_secs;
    let result = identity::login(
        &state.db,
        &state.session_key,
        &state.login_throttle,
        attempt,
        ttl,
        util::now_secs(),
    )
    .await;
    let (status, problem) = match result {
        Ok(session) if session.role == crate::identity::Role::Client => {
            // Client accounts call models with keys; they get no console session.
            let now = util::now_secs();
            if let Ok(Some(p)) =
                identity::authenticate_session(&state.db, &state.session_key, &session.token, now).await
            {
                let _ = identity::logout(&state.db, &p.session_id).await;
            }
            (
                StatusCode::FORBIDDEN,
                "Client accounts call models with API keys; they cannot open the console. Ask an administrator for a staff account.".to_string(),
            )
        }
        Ok(session) => {
            let mut response = Redirect::to(&format!("{}/", base(&state))).into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                auth::cookie(&base(&state), &session.token, ttl),
            );
            return done(response, ctx, "login", "console".into());
        }
        Err(LoginError::Internal(_)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Signing in failed on the server; try again, and look at the server's log if it keeps failing.".to_string(),
        ),
        Err(LoginError::Locked { retry_after_secs }) => {
            let source_text = source.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
            crate::signals::lockout(&state.store, &state.lockout_signal, &form.username, &source_text).await;
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed attempts. Wait {retry_after_secs} seconds, then try again."),
            )
        }
        Err(LoginError::SecondFactorRequired) => (
            StatusCode::UNAUTHORIZED,
            "Enter the 6-digit code from your authenticator app as well.".to_string(),
        ),
        Err(LoginError::SecondFactorInvalid) => (
            StatusCode::UNAUTHORIZED,
            "That code is not right. Check the app shows Aegis for this user, and that this computer's clock is correct.".to_string(),
        ),
        Err(LoginError::SecondFactorReplayed) => (
            StatusCode::UNAUTHORIZED,
            "That code was used already. Wait for the app to show the next one.".to_string(),
        ),
        Err(LoginError::Disabled) => (
            StatusCode::FORBIDDEN,
            "This account is disabled. Ask an administrator.".to_string(),
        ),
        Err(LoginError::BadCredentials) => (
            StatusCode::UNAUTHORIZED,
            "Wrong user name or password.".to_string(),
        ),
    };
    let response = sign_in_page(&state, status, &form.username, &problem, false);
    done(response, ctx, "refused", problem)
}

fn cross_site(state: &Shared, ctx: AuditCtx) -> Response {
    let response = super::message_page(
        StatusCode::FORBIDDEN,
        &base(state),
        "Refused: this request did not come from the console",
        "Aegis only accepts changes sent from its own pages. Open the console and try again from there.",
    );
    done(response, ctx, "csrf", "cross-site request refused".into())
}

#[derive(Deserialize)]
pub(super) struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /sign-out`.
pub(super) async fn sign_out(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let base = base(&state);
    let visitor = match auth::visitor(&state, &headers, &base).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut ctx = AuditCtx::admin("/sign-out");
    ctx.kind = "auth".into();
    ctx.actor = visitor.principal.username.clone();
    if !auth::same_origin(&headers) || !auth::token_matches(&visitor, &form.csrf) {
        return cross_site(&state, ctx);
    }
    let _ = identity::logout(&state.db, &visitor.principal.session_id).await;
    let mut response = Redirect::to(&format!("{base}/sign-in")).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, auth::cookie(&base, "", 0));
    done(response, ctx, "logout", "console".into())
}

#[derive(Deserialize, Default)]
pub(super) struct SetupQuery {
    #[serde(default)]
    code: String,
}

fn setup_form(
    state: &Shared,
    status: StatusCode,
    code: &str,
    username: &str,
    problem: &str,
) -> Response {
    super::page(
        status,
        aegis_web::render(&aegis_web::Setup {
            base: base(state),
            code: code.to_string(),
            username: username.to_string(),
            problem: problem.to_string(),
            enrolment: None,
        }),
    )
}

/// `GET /setup?code=…`: the form that creates the first administrator.
async fn setup_page_get(state: &Shared, code: &str) -> Response {
    if !nobody_yet(state).await {
        return super::message_page(
            StatusCode::OK,
            &base(state),
            "Aegis is set up already",
            "The first administrator exists, so the setup link no longer works. Sign in instead; an administrator \
             adds other people under Users and keys.",
        );
    }
    setup_form(state, StatusCode::OK, code, "", "")
}

/// `GET /setup`.
pub(super) async fn setup_page(
    State(state): State<Shared>,
    Query(q): Query<SetupQuery>,
) -> Response {
    setup_page_get(&state, &q.code).await
}

#[derive(Deserialize)]
pub(super) struct SetupForm {
    code: String,
    username: String,
    password: String,
}

/// `POST /setup`: create the first administrator and show their authenticator secret once.
pub(super) async fn setup_submit(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Response {
    let mut ctx = AuditCtx::admin("/setup");
    ctx.kind = "auth".into();
    ctx.actor = form.username.clone();
    if !auth::same_origin(&headers) {
        return cross_site(&state, ctx);
    }
    let result = identity::bootstrap(
        &state.db,
        &form.code,
        &form.username,
        &form.password,
        "Aegis",
        util::now_secs(),
    )
    .await;
    match result {
        Ok(enrolment) => {
            let html = aegis_web::render(&aegis_web::Setup {
                base: base(&state),
                code: String::new(),
                username: form.username.clone(),
                problem: String::new(),
                enrolment: Some(super::enrolment_view(&form.username, &enrolment)),
            });
            let mut response = super::page(StatusCode::CREATED, html);
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            done(
                response,
                ctx,
                "user.bootstrap",
                "first admin created in the console".into(),
            )
        }
        Err(crate::Error::Denied(_)) => {
            let text = if nobody_yet(&state).await {
                "That setup code is wrong or expired. Restart `aegis serve` to print a fresh link, and open it."
            } else {
                "Aegis is set up already. Sign in instead."
            };
            let response = setup_form(
                &state,
                StatusCode::FORBIDDEN,
                &form.code,
                &form.username,
                text,
            );
            done(response, ctx, "refused", "bootstrap refused".into())
        }
        Err(e) => {
            let text = e.to_string();
            let response = setup_form(
                &state,
                StatusCode::BAD_REQUEST,
                &form.code,
                &form.username,
                &text,
            );
            done(response, ctx, "refused", text)
        }
    }
}
