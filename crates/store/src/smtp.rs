//! Sending one plain-text mail over SMTP (RFC 5321) with STARTTLS (RFC 3207) and AUTH PLAIN (RFC 4954).
//!
//! STARTTLS is required unless the channel says `security = "none"` (a relay on the same host); a server
//! that does not offer it is an error, never a silent downgrade, and credentials are only ever sent inside TLS.
//! Lines are CRLF, the body is dot-stuffed, and every reply code is checked, so a refusal names the step.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An SMTP server and the mail's addresses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `host:port` (587 for submission with STARTTLS).
    pub server: String,
    /// The sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// `starttls` (default) or `none` (a relay on this host; no credentials then).
    #[serde(default = "starttls")]
    pub security: String,
    /// SMTP user (AUTH PLAIN, inside TLS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Extra CA certificates (PEM) for a server with a private certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

fn starttls() -> String {
    "starttls".into()
}

/// Send one message to every recipient of `config`.
pub(crate) async fn send(config: &EmailConfig, subject: &str, body: &str) -> Result<()> {
    let timeout = Duration::from_secs(30);
    tokio::time::timeout(timeout, send_inner(config, subject, body))
        .await
        .map_err(|_| Error::Delivery(format!("SMTP {}: no answer within 30 s", config.server)))?
}

async fn send_inner(config: &EmailConfig, subject: &str, body: &str) -> Result<()> {
    let server = &config.server;
    let tcp = TcpStream::connect(server.as_str())
        .await
        .map_err(|e| Error::Delivery(format!("SMTP {server}: connect: {e}")))?;
    let mut s = Session::new(tcp, server);
    s.expect(220, "greeting").await?;
    let caps = s.ehlo().await?;
    if config.security == "none" {
        if config.username.is_some() {
            return Err(Error::Invalid(format!(
                "SMTP {server}: credentials are only sent over TLS; set security = \"starttls\""
            )));
        }
        return s.deliver(config, subject, body).await;
    }
    if !caps.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")) {
        return Err(Error::Delivery(format!(
            "SMTP {server} does not offer STARTTLS; use a server that does (or security = \"none\" for a \
             relay on this host)"
        )));
    }
    s.command("STARTTLS", 220, "STARTTLS").await?;
    let host = server
        .rsplit_once(':')
        .map_or(server.as_str(), |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tls_config = crate::webhook::client_config(config.ca_file.as_deref())?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| Error::Invalid(format!("SMTP host {host:?}: {e}")))?;
    let tcp = s.into_inner();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls_config))
        .connect(name, tcp)
        .await
        .map_err(|e| Error::Delivery(format!("SMTP {server}: TLS: {e}")))?;
    let mut s = Session::new(stream, server);
    let caps = s.ehlo().await?;
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        if !caps.iter().any(|c| {
            c.to_ascii_uppercase().starts_with("AUTH") && c.to_ascii_uppercase().contains("PLAIN")
        }) {
            return Err(Error::Delivery(format!(
                "SMTP {server} does not offer AUTH PLAIN after STARTTLS"
            )));
        }
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        s.command(&format!("AUTH PLAIN {token}"), 235, "AUTH")
            .await?;
    }
    s.deliver(config, subject, body).await
}

struct Session<S> {
    stream: BufReader<S>,
    server: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(stream: S, server: &str) -> Self {
        Session {
            stream: BufReader::new(stream),
            server: server.to_string(),
        }
    }

    fn into_inner(self) -> S {
        self.stream.into_inner()
    }

    /// Read one (possibly multi-line) reply: its code and its lines' text.
    async fn reply(&mut self) -> Result<(u16, Vec<String>)> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = (&mut self.stream)
                .take(4096)
                .read_line(&mut line)
                .await
                .map_err(|e| Error::Delivery(format!("SMTP {}: {e}", self.server)))?;
            if n == 0 {
                return Err(Error::Delivery(format!(
                    "SMTP {}: the server closed the connection",
                    self.server
                )));
            }
            let line = line.trim_end().to_string();
            let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(|| {
                Error::Delivery(format!("SMTP {}: unreadable reply {line:?}", self.server))
            })?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if !more {
                return Ok((code, lines));
            }
        }
    }

    async fn expect(&mut self, code: u16, step: &str) -> Result<Vec<String>> {
        let (got, lines) = self.reply().await?;
        if got != code {
            return Err(Error::Delivery(format!(
                "SMTP {} refused {step}: {got} {}",
                self.server,
                lines.join(" ")
            )));
        }
        Ok(lines)
    }

    async fn write(&mut self, text: &str) -> Result<()> {
        self.stream
            .get_mut()
            .write_all(text.as_bytes())
            .await
            .map_err(|e| Error::Delivery(format!("SMTP {}: {e}", self.server)))?;
        self.stream
            .get_mut()
            .flush()
            .await
            .map_err(|e| Error::Delivery(format!("SMTP {}: {e}", self.server)))
    }

    async fn command(&mut self, line: &str, code: u16, step: &str) -> Result<Vec<String>> {
        self.write(&format!("{line}\r\n")).await?;
        self.expect(code, step).await
    }

    async fn ehlo(&mut self) -> Result<Vec<String>> {
        let lines = self.command("EHLO aegis", 250, "EHLO").await?;
        Ok(lines.into_iter().skip(1).collect())
    }

    async fn deliver(&mut self, config: &EmailConfig, subject: &str, body: &str) -> Result<()> {
        self.command(&format!("MAIL FROM:<{}>", config.from), 250, "MAIL FROM")
            .await?;
        for to in &config.to {
            self.write(&format!("RCPT TO:<{to}>\r\n")).await?;
            let (code, lines) = self.reply().await?;
            if code != 250 && code != 251 {
                return Err(Error::Delivery(format!(
                    "SMTP {} refused recipient {to}: {code} {}",
                    self.server,
                    lines.join(" ")
                )));
            }
        }
        self.command("DATA", 354, "DATA").await?;
        let message = message(config, subject, body);
        self.write(&message).await?;
        self.command(".", 250, "the message").await?;
        let _ = self.command("QUIT", 221, "QUIT").await;
        Ok(())
    }
}

/// Headers and a dot-stuffed CRLF body (without the final `.` line).
fn message(config: &EmailConfig, subject: &str, body: &str) -> String {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
    let mut out = format!(
        "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{}@aegis>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        config.from,
        config.to.join(", "),
        crate::ids::new_id("msg"),
    );
    // A bare CR could end the message early on some servers (SMTP smuggling): every CR or LF is a line break.
    let body = body.replace("\r\n", "\n");
    for line in body.trim_end_matches('\n').split(['\r', '\n']) {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_lines_starting_with_a_dot_are_stuffed() {
        let config = EmailConfig {
            server: "x:25".into(),
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            ..Default::default()
        };
        let m = message(
            &config,
            "s\r\nBcc: x",
            "one\n.two\n..three\r.\r\nMAIL FROM:<x>",
        );
        assert!(m.contains("\r\n..two\r\n...three\r\n"), "{m}");
        assert!(!m.contains("\r.\r\n"), "a bare CR ends no message: {m}");
        assert!(m.contains("Subject: sBcc: x\r\n"), "header injection: {m}");
    }
}
