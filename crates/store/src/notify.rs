//! Telling people: notification channels, routing, digests, and delivery with retries.
//!
//! A **channel** is a signed webhook or an email address list, with the lowest severity it wants and,
//! optionally, the asset tags it covers. What a run or a live signal changed (new and reopened findings, expired
//! risk acceptances) becomes one **message** per channel in the `outbox` table, never one per finding; a channel
//! with a digest window gathers everything of that window into one message, so a burst of 500 drift windows is
//! one mail. Dismissed and accepted findings are not notified, because they are not new.
//!
//! Delivery runs in the worker: a message is claimed (so one replica sends it), sent, and on failure retried
//! with exponential backoff; after [`MAX_ATTEMPTS`] it is marked failed, which `aegis notify list`, the API and
//! the console show. Webhook bodies are signed: `X-Aegis-Signature: sha256=HEX`, HMAC-SHA256 of the exact body
//! with the channel's secret; the body carries its own timestamp and delivery id so a receiver can refuse
//! replays.

use std::path::PathBuf;
use std::time::Duration;

use aegis_core::Severity;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::Row;

use crate::findings::{severity_rank, TrackedFinding};
use crate::{now_secs, Error, Result, Store};

/// Delivery attempts before a message is marked failed.
pub const MAX_ATTEMPTS: i64 = 5;

/// Where a webhook goes and how it is signed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://…` (or `http://` on a private network).
    pub url: String,
    /// The HMAC-SHA256 key shared with the receiver.
    pub secret: String,
    /// Extra CA certificates (PEM) for a receiver with a private certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

pub use crate::smtp::EmailConfig;

/// A channel's transport.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transport {
    /// Signed JSON POST.
    Webhook(WebhookConfig),
    /// Plain-text mail.
    Email(EmailConfig),
}

/// A notification channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Unique name.
    pub name: String,
    /// How messages travel.
    pub transport: Transport,
    /// The lowest severity sent (default high).
    #[serde(default = "high")]
    pub min_severity: Severity,
    /// Only assets with one of these tags (empty: every asset).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Gather events for this many seconds into one message (0: one message per run or signal).
    #[serde(default)]
    pub digest_secs: i64,
    /// Off channels receive nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn high() -> Severity {
    Severity::High
}

fn yes() -> bool {
    true
}

impl Channel {
    /// The channel with its secrets replaced by `***`, for lists and logs: the webhook secret, and the URL's
    /// credentials, path and query (Slack- and Teams-style URLs carry their token in the path).
    pub fn redacted(&self) -> Channel {
        let mut c = self.clone();
        match &mut c.transport {
            Transport::Webhook(w) => {
                w.secret = "***".into();
                w.url = redact_url(&w.url);
            }
            Transport::Email(e) => {
                if e.password.is_some() {
                    e.password = Some("***".into());
                }
            }
        }
        c
    }

    fn validate(&self) -> Result<()> {
        crate::assets::check_name(&self.name).map_err(|_| {
            Error::Invalid(format!(
                "channel name {:?} must be letters, digits, '-', '_' or '.'",
                self.name
            ))
        })?;
        match &self.transport {
            Transport::Webhook(w) => {
                if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                    return Err(Error::Invalid(format!(
                        "webhook URL {:?} must start with https:// (or http:// on a private network)",
                        w.url
                    )));
                }
                if w.secret.len() < 16 {
                    return Err(Error::Invalid(
                        "a webhook secret needs at least 16 characters; the receiver checks X-Aegis-Signature with it"
                            .into(),
                    ));
                }
            }
            Transport::Email(e) => {
                if !e.server.contains(':') {
                    return Err(Error::Invalid(format!(
                        "SMTP server {:?} needs a port: host:587 for STARTTLS submission",
                        e.server
                    )));
                }
                if !e.from.contains('@') || e.to.is_empty() || e.to.iter().any(|t| !t.contains('@'))
                {
                    return Err(Error::Invalid(
                        "an email channel needs a from address and at least one to address".into(),
                    ));
                }
                let bad = |s: &str| s.contains(['\r', '\n', '<', '>']);
                if bad(&e.from) || e.to.iter().any(|t| bad(t)) {
                    return Err(Error::Invalid(
                        "email addresses may not contain line breaks or <>".into(),
                    ));
                }
                if !matches!(e.security.as_str(), "starttls" | "none") {
                    return Err(Error::Invalid(format!(
                        "SMTP security {:?}: use starttls or none",
                        e.security
                    )));
                }
            }
        }
        if self.digest_secs < 0 || self.digest_secs > 7 * 86_400 {
            return Err(Error::Invalid(
                "digest_secs must be between 0 and 604800 (a week)".into(),
            ));
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        match self.transport {
            Transport::Webhook(_) => "webhook",
            Transport::Email(_) => "email",
        }
    }
}

/// Something that happened, as sent to people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// `finding_new`, `finding_reopened`, `acceptance_expired`, `test`.
    pub event: String,
    /// Unix seconds.
    pub ts: i64,
    /// The asset's name.
    pub asset: String,
    /// The asset's tags (for routing).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Severity.
    pub severity: Severity,
    /// Rule id.
    pub rule: String,
    /// Short title.
    pub title: String,
    /// The finding's message.
    pub message: String,
    /// Fingerprint, to open it in the console or API.
    pub fingerprint: String,
    /// Where it came from (check or signal).
    pub source: String,
}

impl Event {
    /// The event for a finding.
    pub fn for_finding(kind: &str, f: &TrackedFinding, tags: &[String]) -> Event {
        Event {
            event: kind.to_string(),
            ts: now_secs(),
            asset: f.asset.clone(),
            tags: tags.to_vec(),
            severity: f.finding.severity,
            rule: f.finding.rule.as_str().to_string(),
            title: f.finding.title.clone(),
            message: f.finding.message.clone(),
            fingerprint: f.fingerprint.clone(),
            source: f.source.clone(),
        }
    }
}

/// A message in the outbox, as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Message id.
    pub id: String,
    /// Channel name.
    pub channel: String,
    /// `gathering` (digest window open), `pending`, `sent`, `failed`.
    pub state: String,
    /// Unix seconds.
    pub created: i64,
    /// Next attempt (Unix seconds).
    pub due: i64,
    /// Attempts made.
    pub attempts: i64,
    /// How many events it carries.
    pub events: usize,
    /// The last failure.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    /// When it was sent (0: not yet).
    pub sent: i64,
}

/// How failed deliveries are retried: after `base`, 4×`base`, 16×`base`… seconds.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay, in seconds.
    pub base_secs: i64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base_secs: 15 }
    }
}

impl Store {
    /// Add or replace a channel.
    pub async fn put_channel(&self, channel: &Channel) -> Result<()> {
        channel.validate()?;
        let config = serde_json::to_string(&channel.transport).unwrap_or_default();
        let _guard = self.write_guard().await;
        sqlx::query(
            "INSERT INTO channels (name, kind, config, min_severity, tags, digest_secs, enabled, created)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, config = excluded.config,
               min_severity = excluded.min_severity, tags = excluded.tags, digest_secs = excluded.digest_secs,
               enabled = excluded.enabled",
        )
        .bind(&channel.name)
        .bind(channel.kind())
        .bind(config)
        .bind(severity_rank(channel.min_severity))
        .bind(serde_json::to_string(&channel.tags).unwrap_or_default())
        .bind(channel.digest_secs)
        .bind(i64::from(channel.enabled))
        .bind(now_secs())
        .execute(&self.pool)
        .await
        .map_err(Error::db("save a channel"))?;
        Ok(())
    }

    /// Remove a channel (its undelivered messages go with it).
    pub async fn remove_channel(&self, name: &str) -> Result<()> {
        let _guard = self.write_guard().await;
        let n = sqlx::query("DELETE FROM channels WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(Error::db("remove a channel"))?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("no channel named {name}")));
        }
        sqlx::query("DELETE FROM outbox WHERE channel = $1 AND state IN ('pending', 'gathering')")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(Error::db("remove a channel"))?;
        Ok(())
    }

    /// Every channel (with secrets).
    pub async fn channels(&self) -> Result<Vec<Channel>> {
        let rows = sqlx::query(
            "SELECT name, config, min_severity, tags, digest_secs, enabled FROM channels ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("list channels"))?;
        rows.iter()
            .map(|r| {
                let s = |n: &str| {
                    r.try_get::<String, _>(n)
                        .map_err(Error::db("read a channel"))
                };
                let i = |n: &str| r.try_get::<i64, _>(n).map_err(Error::db("read a channel"));
                Ok(Channel {
                    name: s("name")?,
                    transport: serde_json::from_str(&s("config")?)
                        .map_err(|e| Error::Corrupt(format!("channel config: {e}")))?,
                    min_severity: Severity::ALL
                        .get(i("min_severity")?.clamp(0, 4) as usize)
                        .copied()
                        .unwrap_or(Severity::High),
                    tags: serde_json::from_str(&s("tags")?).unwrap_or_default(),
                    digest_secs: i("digest_secs")?,
                    enabled: i("enabled")? != 0,
                })
            })
            .collect()
    }

    /// Route `events` to every channel that wants them: one outbox message per channel (joined to the open
    /// digest message of a digest channel). Returns how many messages were created or extended.
    pub async fn notify(&self, events: &[Event]) -> Result<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        let now = now_secs();
        let mut touched = 0;
        for channel in self.channels().await? {
            if !channel.enabled {
                continue;
            }
            let wanted: Vec<&Event> = events
                .iter()
                .filter(|e| {
                    e.severity >= channel.min_severity
                        && (channel.tags.is_empty()
                            || e.tags.iter().any(|t| channel.tags.contains(t)))
                })
                .collect();
            if wanted.is_empty() {
                continue;
            }
            self.enqueue_message(&channel, &wanted, now).await?;
            touched += 1;
        }
        Ok(touched)
    }

    async fn enqueue_message(&self, channel: &Channel, events: &[&Event], now: i64) -> Result<()> {
        let _guard = self.write_guard().await;
        if channel.digest_secs > 0 {
            let open = sqlx::query(
                "SELECT id, events FROM outbox WHERE channel = $1 AND state = 'gathering' ORDER BY created LIMIT 1",
            )
            .bind(&channel.name)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db("read the outbox"))?;
            if let Some(row) = open {
                let id: String = row.try_get("id").map_err(Error::db("read the outbox"))?;
                let text: String = row
                    .try_get("events")
                    .map_err(Error::db("read the outbox"))?;
                let mut all: Vec<Event> = serde_json::from_str(&text).unwrap_or_default();
                all.extend(events.iter().map(|e| (*e).clone()));
                let extended = sqlx::query(
                    "UPDATE outbox SET events = $1 WHERE id = $2 AND state = 'gathering'",
                )
                .bind(serde_json::to_string(&all).unwrap_or_default())
                .bind(&id)
                .execute(&self.pool)
                .await
                .map_err(Error::db("extend a digest"))?
                .rows_affected();
                // Claimed for delivery in the meantime (another replica): these events open a new digest.
                if extended == 1 {
                    return Ok(());
                }
            }
        }
        let (state, due) = if channel.digest_secs > 0 {
            ("gathering", now + channel.digest_secs)
        } else {
            ("pending", now)
        };
        let events: Vec<&Event> = events.to_vec();
        sqlx::query(
            "INSERT INTO outbox (id, channel, state, created, due, events) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(crate::ids::new_id("msg"))
        .bind(&channel.name)
        .bind(state)
        .bind(now)
        .bind(due)
        .bind(serde_json::to_string(&events).unwrap_or_default())
        .execute(&self.pool)
        .await
        .map_err(Error::db("queue a message"))?;
        Ok(())
    }

    /// Send every message that is due; failures are retried with `backoff`. Returns `(sent, failed)`.
    pub async fn deliver_due(&self, backoff: Backoff) -> Result<(usize, usize)> {
        self.deliver_due_at(now_secs(), backoff).await
    }

    /// [`Store::deliver_due`] as if the clock read `now` (digest windows and retry delays are measured by it).
    pub async fn deliver_due_at(&self, now: i64, backoff: Backoff) -> Result<(usize, usize)> {
        let channels = self.channels().await?;
        let rows = sqlx::query(
            "SELECT id FROM outbox
             WHERE state IN ('pending', 'gathering') AND due <= $1 AND claimed_until < $1 ORDER BY due LIMIT 50",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("read the outbox"))?;
        let (mut sent, mut failed) = (0, 0);
        for row in rows {
            let id: String = row.try_get("id").map_err(Error::db("read the outbox"))?;
            // Claim it for a minute so one replica sends it, and read what it carries in the same statement: a
            // digest closes here (`pending`), so nothing can be appended to it after it was read.
            let claimed = {
                let _guard = self.write_guard().await;
                sqlx::query(
                    "UPDATE outbox SET claimed_until = $1, state = 'pending'
                     WHERE id = $2 AND claimed_until < $3 AND due <= $3 AND state IN ('pending', 'gathering')
                     RETURNING channel, events, attempts",
                )
                .bind(now + 60)
                .bind(&id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(Error::db("claim a message"))?
            };
            let Some(claimed) = claimed else {
                continue;
            };
            let get = |n: &str| {
                claimed
                    .try_get::<String, _>(n)
                    .map_err(Error::db("claim a message"))
            };
            let (name, text) = (get("channel")?, get("events")?);
            let attempts: i64 = claimed
                .try_get("attempts")
                .map_err(Error::db("claim a message"))?;
            let events: Vec<Event> = serde_json::from_str(&text).unwrap_or_default();
            let result = match channels.iter().find(|c| c.name == name) {
                Some(channel) => send(channel, &id, &events).await,
                None => Err(Error::NotFound(format!("channel {name} was removed"))),
            };
            let _guard = self.write_guard().await;
            match result {
                Ok(()) => {
                    sqlx::query(
                        "UPDATE outbox SET state = 'sent', sent = $1, attempts = attempts + 1, last_error = '' WHERE id = $2",
                    )
                    .bind(now_secs())
                    .bind(&id)
                    .execute(&self.pool)
                    .await
                    .map_err(Error::db("record a delivery"))?;
                    sent += 1;
                }
                Err(e) => {
                    let tries = attempts + 1;
                    let give_up = tries >= MAX_ATTEMPTS;
                    let delay = backoff.base_secs.max(0) * 4i64.pow((tries - 1).clamp(0, 6) as u32);
                    sqlx::query(
                        "UPDATE outbox SET state = $1, attempts = attempts + 1, due = $3, last_error = $4,
                         claimed_until = 0 WHERE id = $5 AND $2 = $2",
                    )
                    .bind(if give_up { "failed" } else { "pending" })
                    .bind(tries)
                    .bind(now + delay)
                    .bind(e.to_string())
                    .bind(&id)
                    .execute(&self.pool)
                    .await
                    .map_err(Error::db("record a failed delivery"))?;
                    if give_up {
                        failed += 1;
                    }
                }
            }
        }
        Ok((sent, failed))
    }

    /// The outbox, newest first (`state`: one state or all).
    pub async fn deliveries(&self, state: Option<&str>, limit: i64) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT id, channel, state, created, due, attempts, events, last_error, sent FROM outbox
             WHERE ($1 = '' OR state = $1) ORDER BY created DESC, id LIMIT $2",
        )
        .bind(state.unwrap_or(""))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("read the outbox"))?;
        rows.iter()
            .map(|r| {
                let s = |n: &str| {
                    r.try_get::<String, _>(n)
                        .map_err(Error::db("read the outbox"))
                };
                let i = |n: &str| r.try_get::<i64, _>(n).map_err(Error::db("read the outbox"));
                Ok(Delivery {
                    id: s("id")?,
                    channel: s("channel")?,
                    state: s("state")?,
                    created: i("created")?,
                    due: i("due")?,
                    attempts: i("attempts")?,
                    events: serde_json::from_str::<Vec<serde_json::Value>>(&s("events")?)
                        .map(|v| v.len())
                        .unwrap_or(0),
                    last_error: s("last_error")?,
                    sent: i("sent")?,
                })
            })
            .collect()
    }

    /// Send a test message to one channel now, bypassing routing and the outbox.
    pub async fn test_channel(&self, name: &str) -> Result<()> {
        let channel = self
            .channels()
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no channel named {name}; `aegis notify list` shows them"
                ))
            })?;
        let event = Event {
            event: "test".into(),
            ts: now_secs(),
            asset: String::new(),
            tags: Vec::new(),
            severity: channel.min_severity,
            rule: String::new(),
            title: "Aegis test notification".into(),
            message: format!(
                "This is a test of channel {name}: if you can read it, alerts will reach you."
            ),
            fingerprint: String::new(),
            source: "test".into(),
        };
        send(&channel, &crate::ids::new_id("msg"), &[event]).await
    }
}

pub use crate::webhook::redact_url;

/// The signature header value of `body` under `secret`: `sha256=HEX`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn send(channel: &Channel, id: &str, events: &[Event]) -> Result<()> {
    match &channel.transport {
        Transport::Webhook(w) => {
            let body = serde_json::to_vec(&serde_json::json!({
                "delivery": id,
                "channel": channel.name,
                "sent": now_secs(),
                "events": events,
            }))
            .unwrap_or_default();
            let headers = [
                ("x-aegis-signature", sign(&w.secret, &body)),
                ("x-aegis-delivery", id.to_string()),
            ];
            let status = crate::webhook::post(
                &w.url,
                &headers,
                body,
                Duration::from_secs(10),
                w.ca_file.as_deref(),
            )
            .await?;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(Error::Delivery(format!(
                    "{} answered HTTP {status}",
                    redact_url(&w.url)
                )))
            }
        }
        Transport::Email(e) => {
            let (subject, body) = mail_text(events);
            crate::smtp::send(e, &subject, &body).await
        }
    }
}

/// Subject and plain-text body for a message: the most severe event first, in plain words.
fn mail_text(events: &[Event]) -> (String, String) {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.severity));
    let subject = match sorted.as_slice() {
        [] => "Aegis".to_string(),
        [one] if one.event == "test" => one.title.clone(),
        [one] => format!("[Aegis {}] {}: {}", one.severity, one.asset, one.title),
        [first, ..] => format!(
            "[Aegis {}] {} findings, the worst on {}: {}",
            first.severity,
            sorted.len(),
            first.asset,
            first.title
        ),
    };
    let mut body = String::new();
    for e in &sorted {
        let what = match e.event.as_str() {
            "finding_new" => "New finding",
            "finding_reopened" => "Finding came back",
            "acceptance_expired" => "Risk acceptance expired",
            _ => "Notice",
        };
        body.push_str(&format!(
            "{what} ({}) on {}: {}\n  {}\n  rule {} from {}; `aegis findings show {}`\n\n",
            e.severity, e.asset, e.title, e.message, e.rule, e.source, e.fingerprint
        ));
    }
    body.push_str("Triage them in the Aegis console or with `aegis findings list`.\n");
    (subject, body)
}
