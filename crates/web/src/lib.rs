//! The Aegis console's pages: server-rendered HTML from templates the compiler checks (askama), the static
//! files they need embedded in the binary, and the plain-words vocabulary every page shares.
//!
//! This crate renders; it does not route, authenticate or query. The gateway mounts the console, checks the
//! session and the role, gathers what a page shows from the store and its own tables, and hands this crate a
//! view. Keeping the HTML here and the decisions there means every page can be rendered in a unit test from
//! a hand-made view, and the gateway's route tests need not parse markup.
//!
//! Pages carry no inline script or style, so the console runs under
//! `script-src 'self'; style-src 'self'` ([`CONTENT_SECURITY_POLICY`]). Charts are the report crate's inline
//! SVG (presentation attributes only), so a chart in the console and in `--format html` is the same drawing.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod assets;
mod pages;
mod qr;
mod words;

pub use assets::{asset, Asset, HTMX_SHA256, HTMX_VERSION};
pub use pages::*;
pub use qr::qr_svg;
pub use words::{ago, plain_state, plain_status, severity_word};

/// The Content-Security-Policy every console page is served with.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
