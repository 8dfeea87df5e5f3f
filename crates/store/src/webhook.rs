//! A minimal HTTP/1.1 POST client for webhooks: plain TCP or TLS (rustls, the webpki roots plus an optional
//! CA file), a hard timeout, and the status code back. Hyper does the protocol; this module only connects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{Error, Result};

/// POST `body` to `url` with `headers`; the response status.
pub(crate) async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
    ca_file: Option<&std::path::Path>,
) -> Result<u16> {
    let shown = redact_url(url);
    tokio::time::timeout(timeout, post_inner(url, &shown, headers, body, ca_file))
        .await
        .map_err(|_| {
            Error::Delivery(format!("{shown}: no answer within {} s", timeout.as_secs()))
        })?
}

async fn post_inner(
    url: &str,
    shown: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    ca_file: Option<&std::path::Path>,
) -> Result<u16> {
    let uri: Uri = url
        .parse()
        .map_err(|e| Error::Invalid(format!("webhook URL {shown}: {e}")))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(Error::Invalid(format!(
                "webhook URL {shown} must start with http:// or https://"
            )))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| Error::Invalid(format!("webhook URL {shown} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| Error::Delivery(format!("{shown}: connect: {e}")))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    // Host and port only: credentials in the URL are never sent in the clear as a Host header.
    let authority = match uri.port_u16() {
        Some(p) => format!("{}:{p}", uri.host().unwrap_or_default()),
        None => uri.host().unwrap_or_default().to_string(),
    };
    let mut request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("aegis/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Error::Invalid(format!("webhook request: {e}")))?;
    if tls {
        let config = client_config(ca_file)?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| Error::Invalid(format!("webhook host {host:?}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Delivery(format!("{shown}: TLS: {e}")))?;
        send(TokioIo::new(stream), request, shown).await
    } else {
        send(TokioIo::new(tcp), request, shown).await
    }
}

async fn send<T>(io: T, request: hyper::Request<Full<Bytes>>, url: &str) -> Result<u16>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| Error::Delivery(format!("{url}: {e}")))?;
    let driver = tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Error::Delivery(format!("{url}: {e}")))?;
    let status = response.status().as_u16();
    // Read (and bound) the body so the connection closes cleanly; its content is not used.
    let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await;
    driver.abort();
    Ok(status)
}

/// A rustls client configuration trusting the webpki roots and, when given, the certificates in `ca_file`.
pub(crate) fn client_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(Error::io("read", path))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(Error::io("read", path))?;
            roots
                .add(cert)
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::Invalid(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `scheme://host[:port]/***`: what of a webhook URL may be shown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    format!("{scheme}://{host}/***")
}
