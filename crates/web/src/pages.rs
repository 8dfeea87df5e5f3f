//! One template per page, with the view it renders. Views hold display-ready values (words, dates, links);
//! the gateway fills them. Everything a template prints is escaped unless the field is documented as SVG
//! produced by the report crate's chart functions, which escape their own text.

use askama::Template;

/// What every signed-in page needs: where the console is mounted, who is signed in, the session's CSRF token,
/// and which section of the menu is current.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The base path (`""` or `/aegis`), prefixed to every link.
    pub base: String,
    /// The signed-in user.
    pub user: String,
    /// Their role (`admin`, `operator`, `auditor`).
    pub role: String,
    /// The per-session token every form sends back.
    pub csrf: String,
    /// The current section: `overview`, `findings`, `assets`, `monitor`, `gateway`, `audit`, `settings`.
    pub section: &'static str,
    /// May change findings, assets and checks (admins and operators).
    pub can_change: bool,
    /// May manage users, keys, channels (admins).
    pub is_admin: bool,
    /// May read the audit log (admins and auditors).
    pub can_audit: bool,
    /// A message about what the last action did.
    pub notice: String,
    /// A message about what went wrong, and what to do.
    pub problem: String,
}

impl Chrome {
    fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// Render a page; templates are checked at compile time, so the only failure left is a formatting error,
/// which becomes a plain message instead of a half page.
pub fn render<T: Template>(page: &T) -> String {
    page.render().unwrap_or_else(|e| {
        format!("<!DOCTYPE html><title>Aegis</title><p>The page could not be drawn: {e}</p>")
    })
}

// ----------------------------------------------------------------------------------------------- signed out

/// The sign-in page.
#[derive(Debug, Template)]
#[template(path = "sign_in.html")]
pub struct SignIn {
    /// Base path.
    pub base: String,
    /// The user name typed before (kept after a failed attempt).
    pub username: String,
    /// What went wrong.
    pub problem: String,
    /// No user exists yet: point at the bootstrap link instead.
    pub needs_setup: bool,
}

/// The first-admin page, reached by the one-time link `aegis serve` prints.
#[derive(Debug, Template)]
#[template(path = "setup.html")]
pub struct Setup {
    /// Base path.
    pub base: String,
    /// The one-time code from the link.
    pub code: String,
    /// The user name typed before.
    pub username: String,
    /// What went wrong.
    pub problem: String,
    /// After creation: the authenticator secret to enrol.
    pub enrolment: Option<Enrolment>,
}

/// An authenticator enrolment, shown once.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Enrolment {
    /// Who.
    pub username: String,
    /// The base32 secret in groups of four, to type into an authenticator app.
    pub secret: String,
    /// The `otpauth://` URI (what a QR code would hold).
    pub uri: String,
    /// The QR code of the URI as inline SVG, if drawn.
    pub qr_svg: String,
    /// Single-use codes that stand in for the app's code (a lost phone).
    pub recovery: Vec<String>,
}

/// A page that only says something (not found, not allowed, done).
#[derive(Debug, Template)]
#[template(path = "message.html")]
pub struct Message {
    /// Menu and session (its `user` is empty when signed out).
    pub chrome: Chrome,
    /// Heading.
    pub title: String,
    /// What happened, in plain words.
    pub text: String,
    /// Where to go next: (label, href).
    pub next: Option<(String, String)>,
}

// ----------------------------------------------------------------------------------------------- overview

/// The overview page.
#[derive(Debug, Template)]
#[template(path = "overview.html")]
pub struct Overview {
    /// Menu and session.
    pub chrome: Chrome,
    /// The setup checklist, shown while any step is left.
    pub checklist: Vec<Step>,
    /// Posture tiles.
    pub tiles: Vec<Tile>,
    /// The open findings to look at first.
    pub first: Vec<FindingRow>,
    /// The last 24 hours of alerts, as a chart.
    pub timeline: Chart,
}

impl Overview {
    fn setup_left(&self) -> bool {
        self.checklist.iter().any(|s| !s.done)
    }
}

/// One step of the setup checklist.
#[derive(Debug, Clone)]
pub struct Step {
    /// Done already.
    pub done: bool,
    /// What to do.
    pub title: String,
    /// Why, or how.
    pub text: String,
    /// Where it is done.
    pub href: String,
}

/// One posture tile.
#[derive(Debug, Clone)]
pub struct Tile {
    /// What is counted.
    pub label: String,
    /// The figure.
    pub value: String,
    /// `good`, `bad`, `warn` or `neutral`.
    pub tone: &'static str,
    /// What to do about it, in a few words.
    pub note: String,
    /// Where the detail is.
    pub href: String,
}

/// An SVG chart with its one-sentence takeaway and its data as a table for screen readers.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// The takeaway.
    pub caption: String,
    /// The drawing (inline SVG from the report crate; printed unescaped).
    pub svg: String,
    /// Column headings of the data table.
    pub columns: Vec<String>,
    /// The data.
    pub rows: Vec<Vec<String>>,
}

// ----------------------------------------------------------------------------------------------- findings

/// One finding in a list.
#[derive(Debug, Clone)]
pub struct FindingRow {
    /// Fingerprint (its id in links).
    pub fingerprint: String,
    /// `critical` … `info`.
    pub severity: String,
    /// The rule id.
    pub rule: String,
    /// One line.
    pub title: String,
    /// Asset name.
    pub asset: String,
    /// Check or signal.
    pub source: String,
    /// Triage state in plain words.
    pub state: String,
    /// Accepted until (a date), or empty.
    pub accepted: String,
    /// Owner or empty.
    pub owner: String,
    /// First seen, as an age.
    pub age: String,
}

/// The findings list.
#[derive(Debug, Template)]
#[template(path = "findings.html")]
pub struct Findings {
    /// Menu and session.
    pub chrome: Chrome,
    /// The filter as given.
    pub filter: FindingFilterView,
    /// Choices for the asset filter.
    pub assets: Vec<String>,
    /// Choices for the pillar filter.
    pub sources: Vec<String>,
    /// This page of findings.
    pub rows: Vec<FindingRow>,
    /// Link to the next page.
    pub next: String,
    /// The filter as a query string (no cursor), for bulk actions and the first page.
    pub query: String,
}

/// The filters of the findings list, as typed.
#[derive(Debug, Clone, Default)]
pub struct FindingFilterView {
    /// Asset.
    pub asset: String,
    /// Pillar.
    pub source: String,
    /// Minimum severity.
    pub severity: String,
    /// State filter.
    pub state: String,
    /// Owner.
    pub owner: String,
}

/// One finding with everything known about it.
#[derive(Debug, Template)]
#[template(path = "finding.html")]
pub struct FindingDetail {
    /// Menu and session.
    pub chrome: Chrome,
    /// The row fields.
    pub row: FindingRow,
    /// The message.
    pub message: String,
    /// Where exactly.
    pub location: String,
    /// The evidence, flattened to name/value pairs.
    pub evidence: Vec<(String, String)>,
    /// What it means, in plain words.
    pub why: String,
    /// The fix.
    pub fix: String,
    /// ATLAS and CWE references: (label, url).
    pub refs: Vec<(String, String)>,
    /// How often runs reported it, first and last seen.
    pub occurrences: String,
    /// History, newest first.
    pub history: Vec<EventRow>,
    /// The raw state (for the form's default).
    pub state_value: String,
    /// The VEX justification.
    pub justification: String,
    /// The run that last reported it.
    pub run_href: String,
}

/// One history entry.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// When.
    pub when: String,
    /// Who.
    pub actor: String,
    /// What happened, in words.
    pub what: String,
    /// The comment.
    pub comment: String,
}

/// The VEX states a person may set, with their plain words.
pub const TRIAGE_STATES: &[(&str, &str)] = &[
    ("in_triage", "new, not yet looked at"),
    ("exploitable", "confirmed: needs fixing"),
    ("false_positive", "not a real problem"),
    ("not_affected", "does not affect us"),
    ("resolved", "fixed"),
];

/// The CycloneDX VEX justifications for "does not affect us".
pub const JUSTIFICATIONS: &[(&str, &str)] = &[
    ("code_not_present", "the affected part is not in this model"),
    ("code_not_reachable", "the affected part is never used"),
    ("requires_configuration", "needs a setting we do not use"),
    ("requires_dependency", "needs a component we do not have"),
    ("requires_environment", "needs an environment we do not run"),
    ("protected_by_compiler", "prevented by how it is built"),
    ("protected_at_runtime", "prevented while it runs"),
    ("protected_at_perimeter", "prevented at the network edge"),
    (
        "protected_by_mitigating_control",
        "prevented by another control",
    ),
];

// ----------------------------------------------------------------------------------------------- assets

/// One asset in the inventory.
#[derive(Debug, Clone)]
pub struct AssetRow {
    /// Name.
    pub name: String,
    /// `model`, `dataset` or `endpoint` (with a dataset's role).
    pub kind: String,
    /// Owner or `nobody`.
    pub owner: String,
    /// `v3`, or `no file yet`.
    pub version: String,
    /// Scan result in words.
    pub scan: String,
    /// `good`, `bad`, `warn`, `neutral`.
    pub scan_tone: &'static str,
    /// Signature state.
    pub signature: String,
    /// Served by this gateway?
    pub serving: String,
    /// Last assessment (robustness, privacy, extraction) in words.
    pub assessment: String,
    /// Last data audit in words.
    pub audit: String,
    /// Open findings, e.g. `2 high`.
    pub open: String,
    /// `ok`, `attention`, `unchecked`.
    pub verdict: String,
}

/// The inventory page.
#[derive(Debug, Template)]
#[template(path = "assets.html")]
pub struct Assets {
    /// Menu and session.
    pub chrome: Chrome,
    /// Every asset.
    pub rows: Vec<AssetRow>,
    /// Largest upload, in MiB.
    pub max_upload_mib: u64,
}

/// One asset's page.
#[derive(Debug, Template)]
#[template(path = "asset.html")]
pub struct AssetDetail {
    /// Menu and session.
    pub chrome: Chrome,
    /// The inventory row.
    pub row: AssetRow,
    /// Tags.
    pub tags: String,
    /// Linked datasets or models: (relation in words, name).
    pub links: Vec<(String, String)>,
    /// Versions, newest first.
    pub versions: Vec<VersionRow>,
    /// The latest result of each check.
    pub checks: Vec<CheckRow>,
    /// Recent runs: the rendered [`Runs`] fragment (refreshed while any is active).
    pub runs: String,
    /// Largest upload, in MiB.
    pub max_upload_mib: u64,
    /// Label column, for the upload form's hint.
    pub label: String,
    /// For a model: the datasets it can be linked to.
    pub datasets: Vec<String>,
}

/// One version.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// `v2`.
    pub number: String,
    /// File name.
    pub filename: String,
    /// Size in words.
    pub size: String,
    /// SHA-256 (shortened for display; full in the title).
    pub sha256: String,
    /// When added.
    pub added: String,
}

/// The latest result of one check.
#[derive(Debug, Clone)]
pub struct CheckRow {
    /// Check name.
    pub check: String,
    /// What it looks for, in words.
    pub what: String,
    /// Status in words.
    pub status: String,
    /// `good`, `bad`, `warn`, `neutral`.
    pub tone: &'static str,
    /// When.
    pub when: String,
    /// One line.
    pub summary: String,
    /// Link to the run's report, or empty.
    pub report: String,
}

/// Recent runs of an asset: a fragment htmx refreshes every two seconds while one is active.
#[derive(Debug, Clone, Template)]
#[template(path = "runs.html")]
pub struct Runs {
    /// Base path.
    pub base: String,
    /// The asset.
    pub asset: String,
    /// The runs.
    pub rows: Vec<RunRow>,
    /// Checks queued without a run yet.
    pub pending: i64,
    /// Keep refreshing (a run is running or checks are queued, and the visitor did not stop it).
    pub active: bool,
    /// The visitor stopped the refreshing (`?live=0`).
    pub stopped: bool,
}

/// One run.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Check.
    pub check: String,
    /// Status in words.
    pub status: String,
    /// `good`, `bad`, `warn`, `neutral`.
    pub tone: &'static str,
    /// 0 to 100.
    pub percent: u32,
    /// What it is doing.
    pub stage: String,
    /// When it started.
    pub started: String,
    /// One line.
    pub summary: String,
    /// Why it ran.
    pub cause: String,
}

// ----------------------------------------------------------------------------------------------- monitor

/// The monitor page: what each served model sees in production.
#[derive(Debug, Template)]
#[template(path = "monitor.html")]
pub struct Monitor {
    /// Menu and session.
    pub chrome: Chrome,
    /// Each served model.
    pub models: Vec<MonitorModel>,
    /// Extraction suspicion per key.
    pub extraction: Vec<Vec<String>>,
    /// The visitor may see extraction suspicion (admins and auditors, as on the API).
    pub extraction_visible: bool,
}

/// One served model's monitoring.
#[derive(Debug, Clone)]
pub struct MonitorModel {
    /// Name.
    pub name: String,
    /// In words: "no drift", "drift in 2 of 8 inputs" …
    pub verdict: String,
    /// `good`, `bad`, `warn`, `neutral`.
    pub tone: &'static str,
    /// How many requests the last window held and when it closed.
    pub window: String,
    /// Per input: name, measure, value, test, p-value, verdict.
    pub features: Vec<Vec<String>>,
    /// Prediction drift in words.
    pub prediction: String,
    /// The drift measure of each input over time.
    pub history: Chart,
    /// Requests over time.
    pub traffic: Chart,
    /// The reference and live distributions of each changed input.
    pub distributions: Vec<Chart>,
    /// Headings of the PSI trend table: `record`, then each input.
    pub trend_columns: Vec<String>,
    /// Each input's PSI per hourly record, newest first.
    pub trend_rows: Vec<Vec<String>>,
}

// ----------------------------------------------------------------------------------------------- gateway

/// The gateway page (admins).
#[derive(Debug, Template)]
#[template(path = "gateway.html")]
pub struct Gateway {
    /// Menu and session.
    pub chrome: Chrome,
    /// Users: name, role, MFA, state, last sign-in.
    pub users: Vec<UserRow>,
    /// API keys.
    pub keys: Vec<KeyRow>,
    /// A secret just created, shown this once: (key id, secret).
    pub secret: Option<(String, String)>,
    /// A new user's authenticator enrolment, shown this once.
    pub enrolment: Option<Enrolment>,
    /// Days until a new key expires when the form leaves it empty (0: never).
    pub default_expiry_days: i64,
    /// Served models: name, kind, policy in words.
    pub models: Vec<Vec<String>>,
    /// Roles a new user may get.
    pub roles: Vec<String>,
}

/// One user.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// `enrolled` or `not enrolled`.
    pub mfa: String,
    /// `active` or `disabled`.
    pub state: String,
    /// Disabled?
    pub disabled: bool,
}

/// One API key.
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// Key id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Scopes in words.
    pub scopes: String,
    /// Budget and usage in words.
    pub usage: String,
    /// `active`, `revoked`, `expired`.
    pub state: String,
    /// Still usable.
    pub active: bool,
}

// ----------------------------------------------------------------------------------------------- audit

/// The audit log page.
#[derive(Debug, Template)]
#[template(path = "audit.html")]
pub struct Audit {
    /// Menu and session.
    pub chrome: Chrome,
    /// Chain intact?
    pub verified: bool,
    /// "chain verified: OK (n records)" or "broken at record n: why".
    pub verification: String,
    /// Filters as typed: actor, kind, decision.
    pub actor: String,
    /// Kind filter.
    pub kind: String,
    /// Decision filter.
    pub decision: String,
    /// Records: seq, when, actor, kind, route, decision, status, detail.
    pub rows: Vec<Vec<String>>,
    /// Link to older records.
    pub older: String,
    /// The filter as a query string, for the export link.
    pub query: String,
}

// ----------------------------------------------------------------------------------------------- settings

/// The settings page.
#[derive(Debug, Template)]
#[template(path = "settings.html")]
pub struct Settings {
    /// Menu and session.
    pub chrome: Chrome,
    /// Channels: name, kind, target (redacted), minimum severity, tags.
    pub channels: Vec<Vec<String>>,
    /// Channel names (for the test buttons).
    pub channel_names: Vec<String>,
    /// Schedules: asset, check, when, next run.
    pub schedules: Vec<Vec<String>>,
    /// Retention and limits: (what, value).
    pub retention: Vec<(String, String)>,
    /// Recent deliveries: when, channel, event, state, error.
    pub deliveries: Vec<Vec<String>>,
}

#[cfg(test)]
mod tests;
