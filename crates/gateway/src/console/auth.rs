//! Who is looking at the console, and whether a change they send really comes from the console.
//!
//! The session is the gateway's own (the same token `POST /admin/login` returns), carried in a cookie that
//! scripts cannot read (`HttpOnly`), that is never sent with a request another site starts
//! (`SameSite=Strict`) and only over TLS (`Secure`). Every state-changing request is also checked three more
//! ways: `Sec-Fetch-Site` must say the request came from this origin, `Origin` (when sent) must name this host,
//! and the form must carry the session's CSRF token, an HMAC of the session id that needs no storage.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use crate::identity::{self, Principal, Role};
use crate::state::AppState;
use crate::util;

/// The session cookie's name under a base path. At the root it is `__Host-aegis_session`: browsers accept a
/// `__Host-` cookie only from this host, over TLS, for `/`, so a sibling subdomain cannot plant one.
pub(super) fn cookie_name(base: &str) -> &'static str {
    if base.is_empty() {
        "__Host-aegis_session"
    } else {
        "aegis_session"
    }
}

/// A signed-in visitor and their CSRF token.
#[derive(Debug, Clone)]
pub(super) struct Visitor {
    pub(super) principal: Principal,
    pub(super) csrf: String,
}

impl Visitor {
    /// Admins and operators change findings, assets, checks, keys and channels (as on the API).
    pub(super) fn can_change(&self) -> bool {
        matches!(self.principal.role, Role::Admin | Role::Operator)
    }

    /// Admins manage people.
    pub(super) fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }

    /// Admins and auditors read the audit log.
    pub(super) fn can_audit(&self) -> bool {
        matches!(self.principal.role, Role::Admin | Role::Auditor)
    }
}

/// The session token in the request's cookies, if there is exactly one (two cookies of the name mean one was
/// planted: neither is trusted).
fn session_token<'h>(headers: &'h HeaderMap, base: &str) -> Option<&'h str> {
    let name = cookie_name(base);
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, value)| value.trim());
    let token = found.next()?;
    if found.next().is_some() {
        return None;
    }
    Some(token).filter(|t| t.starts_with("ses_"))
}

/// The visitor behind the request's cookie; otherwise the response to send instead (to the sign-in page, or a
/// refusal for a client account, which may not use the console).
pub(super) async fn visitor(
    state: &AppState,
    headers: &HeaderMap,
    base: &str,
) -> Result<Visitor, Response> {
    let to = format!("{base}/sign-in");
    // A fragment htmx refreshes must send the whole page to sign-in, not draw the sign-in page inside itself.
    let htmx = headers.contains_key("hx-request");
    let sign_in = || {
        if htmx {
            let mut r = StatusCode::OK.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert("hx-redirect", v);
            }
            r
        } else {
            Redirect::to(&to).into_response()
        }
    };
    let Some(token) = session_token(headers, base) else {
        return Err(sign_in());
    };
    let principal =
        identity::authenticate_session(&state.db, &state.session_key, token, util::now_secs())
            .await
            .map_err(|_| sign_in())?
            .ok_or_else(sign_in)?;
    if principal.role == Role::Client {
        return Err(super::message_page(
            StatusCode::FORBIDDEN,
            base,
            "Not for client accounts",
            "Client accounts call models with API keys; they cannot open the console. Ask an administrator \
             for a staff account.",
        ));
    }
    let csrf = state.session_key.derive("csrf", &principal.session_id);
    Ok(Visitor { principal, csrf })
}

/// Refuse a state-changing request that another site could have started. A browser that sends
/// `Sec-Fetch-Site` says where the request came from, and only `same-origin` passes (its `Origin` is then
/// `null`, because the console's `Referrer-Policy: no-referrer` hides it). Without that header, an `Origin`
/// must name this host. A client that sends neither is not a browser another site can drive; the session's
/// CSRF token still guards every change.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.to_str().is_ok_and(|s| s == "same-origin");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'));
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// Whether `sent` is the visitor's CSRF token.
pub(super) fn token_matches(visitor: &Visitor, sent: &str) -> bool {
    !visitor.csrf.is_empty() && bool::from(visitor.csrf.as_bytes().ct_eq(sent.trim().as_bytes()))
}

/// The `Set-Cookie` value that stores `token` for `ttl_secs` (or deletes the cookie when `token` is empty).
pub(super) fn cookie(base: &str, token: &str, ttl_secs: i64) -> HeaderValue {
    let path = if base.is_empty() { "/" } else { base };
    let name = cookie_name(base);
    let value = if token.is_empty() {
        format!("{name}=; Path={path}; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
    } else {
        format!(
            "{name}={token}; Path={path}; Max-Age={ttl_secs}; HttpOnly; Secure; SameSite=Strict"
        )
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_same_origin_requests_may_change_anything() {
        let host = ("host", "console.example:8443");
        assert!(same_origin(&headers(&[host])));
        assert!(same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-origin")
        ])));
        // Under no-referrer a same-origin form post carries `Origin: null`; Sec-Fetch-Site decides.
        assert!(same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-origin"),
            ("origin", "null")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "https://console.example:8443")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "https://console.example:8443"
        )])));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; __Host-aegis_session=ses_abc.def; b=2")]);
        assert_eq!(session_token(&h, ""), Some("ses_abc.def"));
        // At the root only the __Host- cookie counts; under a base path the plain name.
        let plain = headers(&[("cookie", "aegis_session=ses_abc.def")]);
        assert_eq!(session_token(&plain, ""), None);
        assert_eq!(session_token(&plain, "/aegis"), Some("ses_abc.def"));
        let junk = headers(&[("cookie", "__Host-aegis_session=junk")]);
        assert_eq!(session_token(&junk, ""), None);
        assert_eq!(session_token(&HeaderMap::new(), ""), None);
        // Two cookies of the name: one was planted, neither counts.
        let two = headers(&[("cookie", "aegis_session=ses_a.b; aegis_session=ses_c.d")]);
        assert_eq!(session_token(&two, "/aegis"), None);
    }

    #[test]
    fn the_cookie_is_strict_and_scoped_to_the_base_path() {
        let c = cookie("/aegis", "ses_x", 60);
        let c = c.to_str().unwrap();
        for part in [
            "Path=/aegis",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(cookie("", "", 0)
            .to_str()
            .unwrap()
            .starts_with("__Host-aegis_session=; Path=/; Max-Age=0; HttpOnly"));
    }
}
