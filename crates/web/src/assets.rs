//! The console's static files, embedded in the binary so the console works offline and cannot be served a
//! different script than the one reviewed. htmx is vendored as one pinned file; its SHA-256 is recorded here
//! and checked by a test, so an accidental edit or a swapped file fails the build's tests.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The bytes.
    pub body: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

/// The vendored htmx release.
pub const HTMX_VERSION: &str = "2.0.4";
/// SHA-256 of `assets/htmx-2.0.4.min.js` as published on the npm registry (`htmx.org@2.0.4`, `dist/htmx.min.js`).
pub const HTMX_SHA256: &str = "e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447";

const HTMX: &[u8] = include_bytes!("../assets/htmx-2.0.4.min.js");
const CSS: &[u8] = include_bytes!("../assets/console.css");
const JS: &[u8] = include_bytes!("../assets/console.js");

/// The file served at `static/NAME`, if there is one.
pub fn asset(name: &str) -> Option<Asset> {
    let (body, content_type) = match name {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        "report.css" => (
            aegis_report::REPORT_CSS.as_bytes(),
            "text/css; charset=utf-8",
        ),
        _ => return None,
    };
    Some(Asset { body, content_type })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_files_are_not_served() {
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("").is_none());
        assert!(asset("console.css").is_some());
    }

    #[test]
    fn htmx_is_the_pinned_release() {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(HTMX));
        assert_eq!(
            digest, HTMX_SHA256,
            "assets/htmx-{HTMX_VERSION}.min.js changed"
        );
    }
}
