//! `aegis serve`, `aegis user`, `aegis key`, `aegis model` and `aegis audit-log`: flags to `aegis-gateway`
//! calls. Secrets (passwords, key secrets, TOTP secrets) are read from a prompt or stdin and printed only
//! when the library creates them, once.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use aegis_gateway::config::Config;
use aegis_gateway::identity::{self, Enrollment, Role};
use aegis_gateway::keys::{self, NewKey};
use aegis_gateway::offline::Offline;
use aegis_gateway::serve::{ServeOptions, StartupInfo};
use aegis_gateway::{audit_log, util};
use anyhow::{bail, Context};

use crate::args::{
    AuditLogCommand, GatewayArgs, GlobalArgs, KeyCommand, KeyCreateArgs, ModelCommand,
    OutputFormat, ServeArgs, UserAddArgs, UserCommand,
};
use crate::output;

fn options(args: &GatewayArgs) -> ServeOptions {
    ServeOptions {
        config: args.config.clone(),
        data_dir: args.data_dir.clone(),
        database: args.database.clone(),
        ..ServeOptions::default()
    }
}

pub(crate) fn open(args: &GatewayArgs) -> anyhow::Result<(Config, Offline)> {
    let config = options(args).resolve()?;
    let database = aegis_gateway::db::redact_url(&config.database_url());
    let offline =
        Offline::open(&config).with_context(|| format!("open the gateway database {database}"))?;
    // Which database a command changed, so a key created in one file is never mistaken for the server's.
    eprintln!("aegis: database {database}");
    Ok((config, offline))
}

/// Open an existing gateway database for a command that only reads or changes what is there: a mistyped
/// `--data-dir` must not create an empty database and report that nothing was found.
pub(crate) fn open_existing(args: &GatewayArgs) -> anyhow::Result<(Config, Offline)> {
    let config = options(args).resolve()?;
    if config.server.database.is_none() {
        let db = config.server.data_dir.join("aegis.db");
        if !db.is_file() {
            anyhow::bail!(
                "no Aegis data in {}: start `aegis serve` or register a model (`aegis model add NAME FILE`) \
                 there first, or point --data-dir (or --config) at the server's data directory",
                config.server.data_dir.display()
            );
        }
    }
    open(args)
}

pub(crate) fn json(global: &GlobalArgs, value: &impl serde::Serialize) -> anyhow::Result<()> {
    output::write_text(
        global,
        &format!("{}\n", serde_json::to_string_pretty(value)?),
    )
}

/// `2026-12-07 06:30:12Z` for a Unix time in milliseconds.
fn utc_time(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// `aegis serve`.
pub fn serve(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.openapi {
        json(global, &aegis_gateway::openapi_document())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut opts = options(&args.gateway);
    opts.listen = args.listen;
    opts.plaintext = args.plaintext;
    let mut config = opts.resolve()?;
    if args.access_log {
        config.server.access_log = true;
    }
    if args.allow_partial {
        config.server.allow_partial = true;
    }
    if config.server.plaintext && !config.server.listen.ip().is_loopback() {
        eprintln!(
            "warning: serving plain HTTP on {} — API keys and passwords cross the network in clear; \
             put a TLS-terminating proxy in front or drop --plaintext",
            config.server.listen
        );
    }
    aegis_gateway::serve::run(config, banner).context("aegis serve")?;
    Ok(ExitCode::SUCCESS)
}

/// What the operator sees once the gateway listens (stderr; stdout stays free).
fn banner(info: &StartupInfo) {
    let mut e = std::io::stderr().lock();
    let url = format!("{}://{}", info.scheme, info.addr);
    let _ = writeln!(
        e,
        "aegis serve: listening on {url}  (database {})",
        info.database
    );
    let console = format!("{url}{}/", info.console_path);
    let _ = writeln!(e, "  console: {console}  (open it in a browser)");
    if let Some((fingerprint, generated)) = &info.tls_fingerprint {
        let what = if *generated {
            "self-signed certificate generated"
        } else {
            "certificate"
        };
        let _ = writeln!(e, "  TLS: {what}, SHA-256 fingerprint {fingerprint}");
        if let Some(cert) = &info.tls_cert {
            let _ = writeln!(
                e,
                "       clients can trust it with: curl --cacert {}",
                cert.display()
            );
        }
    } else {
        let _ = writeln!(e, "  TLS: off (--plaintext)");
    }
    let _ = writeln!(
        e,
        "  secrets: {} (sessions and TOTP need it; back it up apart from the database)",
        info.secrets_file.display()
    );
    for event in &info.model_events {
        let _ = writeln!(
            e,
            "  model {}: {} {}",
            event.model, event.decision, event.detail
        );
    }
    let refused = info
        .model_events
        .iter()
        .filter(|e| e.decision == "refused")
        .count();
    let _ = writeln!(
        e,
        "  {} of {} models serving{}",
        info.models.len(),
        info.models.len() + refused,
        if refused > 0 {
            " (started with --allow-partial; the refused ones are listed above)"
        } else {
            ""
        }
    );
    for problem in &info.inventory_problems {
        let _ = writeln!(
            e,
            "  inventory: {problem} (served anyway; its checks do not run)"
        );
    }
    let _ = writeln!(
        e,
        "  checks: served models are assets; `aegis posture` shows their checks, `aegis findings list` what they found"
    );
    if let Some(code) = &info.bootstrap_code {
        let _ = writeln!(
            e,
            "\n  No users yet. Within one hour, open this one-time link to create the first administrator:\n    \
             {console}setup?code={code}\n  \
             (from a script: curl{} -X POST {url}/admin/bootstrap -H 'content-type: application/json' \\\n     \
             -d '{{\"code\":\"{code}\",\"username\":\"admin\",\"password\":\"<12+ characters>\"}}';\n  \
             on this host: aegis user add admin --role admin)",
            info.tls_cert
                .as_ref()
                .map(|c| format!(" --cacert {}", c.display()))
                .unwrap_or_default()
        );
    }
    if let Some(key) = &info.demo_key {
        let cacert = info
            .tls_cert
            .as_ref()
            .map(|c| format!("--cacert {} ", c.display()))
            .unwrap_or_default();
        let _ = writeln!(
            e,
            "\n  Demo client key (shown once, scoped to demo-fraud): {key}\n  Try:\n    curl {cacert}-H 'Authorization: Bearer {key}' \\\n      \
             -d '{{\"rows\":[{{\"amount\":2400,\"hour\":3,\"merchant_risk\":0.9,\"card_age_days\":12,\"foreign\":1,\"n_tx_24h\":14}}]}}' \\\n      \
             {url}/v1/models/demo-fraud/predict"
        );
    }
    let _ = writeln!(
        e,
        "\n  Ctrl-C stops the gateway (requests in flight finish, the audit log is flushed)."
    );
}

/// `aegis user …`.
pub fn user(global: &GlobalArgs, command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add(args) => user_add(global, args),
        UserCommand::List(args) => {
            let (_, off) = open(&args)?;
            let users = off.block_on(identity::list_users(off.db()))?;
            if global.format == OutputFormat::Human {
                let mut text = format!(
                    "{:<24} {:<9} {:<5} {:<8}\n",
                    "USER", "ROLE", "TOTP", "STATE"
                );
                for u in &users {
                    let state = if u.disabled {
                        "disabled"
                    } else if u.locked_until > util::now_secs() {
                        "locked"
                    } else {
                        "active"
                    };
                    let totp = if u.totp_enabled { "yes" } else { "no" };
                    text.push_str(&format!(
                        "{:<24} {:<9} {:<5} {state}\n",
                        u.username,
                        u.role.as_str(),
                        totp
                    ));
                }
                output::write_text(global, &text)?;
            } else {
                json(global, &users)?;
            }
            off.close();
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Disable(args) => set_disabled(args, true),
        UserCommand::Enable(args) => set_disabled(args, false),
        UserCommand::Unlock(args) => {
            let (_, off) = open(&args.gateway)?;
            off.block_on(identity::unlock(off.db(), &args.username))?;
            off.audit("user.unlock", &args.username, "")?;
            off.close();
            eprintln!(
                "user {} unlocked: failed sign-ins cleared, they can sign in now",
                args.username
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn set_disabled(args: crate::args::UserNameArgs, disabled: bool) -> anyhow::Result<ExitCode> {
    let (_, off) = open(&args.gateway)?;
    off.block_on(identity::set_disabled(off.db(), &args.username, disabled))?;
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    off.audit(action, &args.username, "")?;
    off.close();
    eprintln!(
        "user {} {}",
        args.username,
        if disabled {
            "disabled; their sessions are revoked"
        } else {
            "enabled"
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn user_add(global: &GlobalArgs, args: UserAddArgs) -> anyhow::Result<ExitCode> {
    let role: Role = args.role.parse()?;
    let password = read_password(args.password_stdin)?;
    identity::check_password_policy(&password, &args.username)?;
    let (_, off) = open(&args.gateway)?;
    off.block_on(identity::create_user(
        off.db(),
        &args.username,
        &password,
        role,
    ))?;
    let enrollment = if role.requires_totp() {
        Some(off.block_on(identity::enroll_totp(off.db(), &args.username, "Aegis"))?)
    } else {
        None
    };
    off.audit("user.create", &format!("{} as {role}", args.username), "")?;
    off.close();
    if global.format == OutputFormat::Human {
        let mut text = format!("user {} created with role {role}\n", args.username);
        if let Some(e) = &enrollment {
            text.push_str(&enrollment_text(e));
        }
        output::write_text(global, &text)?;
    } else {
        json(
            global,
            &serde_json::json!({"username": args.username, "role": role, "totp": enrollment}),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn enrollment_text(e: &Enrollment) -> String {
    let mut text = format!(
        "\nTOTP is required for this user. Add it to an authenticator app (shown once):\n  secret: {}\n  uri:    {}\nRecovery codes (each works once; store them offline):\n",
        e.secret_base32, e.otpauth_uri
    );
    for code in &e.recovery_codes {
        text.push_str(&format!("  {code}\n"));
    }
    text
}

/// A password from the first line of stdin, or from a prompt with echo off.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !from_stdin && !stdin.is_terminal() {
        bail!("standard input is not a terminal: pass the password with --password-stdin");
    }
    if !from_stdin && !crate::prompt::set_echo(false) {
        bail!(
            "cannot turn off the terminal's echo (stty failed), so the password would be shown: use \
             --password-stdin"
        );
    }
    let echo_off = !from_stdin;
    if !from_stdin {
        eprint!("password (12+ characters): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if echo_off {
        crate::prompt::set_echo(true);
        eprintln!();
    }
    read.context("read the password")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password given");
    }
    Ok(password)
}

/// `aegis key …`.
pub fn key(global: &GlobalArgs, command: KeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::Create(args) => key_create(global, args),
        KeyCommand::List(args) => {
            let (_, off) = open(&args)?;
            let list = off.block_on(keys::list_keys(off.db()))?;
            let now = util::now_secs();
            if global.format == OutputFormat::Human {
                let mut text = format!(
                    "{:<12} {:<16} {:<12} {:<8} {:<24} {:>8} {:>10} {}\n",
                    "ID", "NAME", "OWNER", "STATE", "MODELS", "RATE/S", "TODAY", "EXPIRES"
                );
                for k in &list {
                    let state = if k.revoked {
                        "revoked"
                    } else if k.is_expired(now) {
                        "expired"
                    } else {
                        "active"
                    };
                    let used = off
                        .block_on(aegis_gateway::usage(off.db(), &k.id, util::now_f64()))
                        .map(|u| u.day_used)
                        .unwrap_or(0);
                    let today = if k.daily_budget > 0 {
                        format!("{used}/{}", k.daily_budget)
                    } else {
                        used.to_string()
                    };
                    let expires = if k.expires == 0 {
                        "never".to_string()
                    } else {
                        format!("in {} d", (k.expires - now).max(0) / 86_400)
                    };
                    text.push_str(&format!(
                        "{:<12} {:<16} {:<12} {:<8} {:<24} {:>8} {:>10} {expires}\n",
                        k.id,
                        k.name,
                        k.owner,
                        state,
                        k.models.join(","),
                        k.rate_per_sec,
                        today
                    ));
                }
                output::write_text(global, &text)?;
            } else {
                json(global, &list)?;
            }
            off.close();
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Revoke(args) => {
            let (_, off) = open(&args.gateway)?;
            off.block_on(keys::revoke_key(off.db(), &args.id, util::now_secs()))?;
            off.audit("key.revoke", &args.id, &args.id)?;
            off.close();
            eprintln!(
                "key {} revoked; gateways refuse it from the next request",
                args.id
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Rotate(args) => {
            let (_, off) = open(&args.gateway)?;
            let (key, secret) =
                off.block_on(keys::rotate_key(off.db(), &args.id, util::now_secs()))?;
            off.audit(
                "key.rotate",
                &format!("{} replaced by {}", args.id, key.id),
                &key.id,
            )?;
            off.close();
            print_secret(global, &key, secret.expose())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn key_create(global: &GlobalArgs, args: KeyCreateArgs) -> anyhow::Result<ExitCode> {
    let (config, off) = open(&args.gateway)?;
    let mut new = NewKey::from_defaults(
        &args.name,
        &args.owner,
        args.models.clone(),
        &config.defaults,
    );
    if !args.routes.is_empty() {
        new.routes = args.routes.clone();
    }
    if let Some(v) = args.expires_days {
        new.expires_days = v;
    }
    if let Some(v) = args.rate {
        new.rate_per_sec = v;
    }
    if let Some(v) = args.burst {
        new.burst = v;
    }
    if let Some(v) = args.daily_budget {
        new.daily_budget = v;
    }
    if let Some(v) = args.monthly_budget {
        new.monthly_budget = v;
    }
    let beyond = new.beyond(&config.key_ceilings);
    if !beyond.is_empty() && !args.unbounded {
        off.close();
        anyhow::bail!(
            "this key is beyond the ceilings: {}; stay within them ([key_ceilings] in aegis.toml) or add \
             --unbounded to create it anyway (audited)",
            beyond.join("; ")
        );
    }
    let (key, secret) = off.block_on(keys::create_key(off.db(), &new, util::now_secs()))?;
    let mut detail = format!("{} for {} on {}", key.id, key.owner, key.models.join(","));
    if !beyond.is_empty() {
        detail.push_str(&format!("; UNBOUNDED: {}", beyond.join("; ")));
    }
    off.audit("key.create", &detail, &key.id)?;
    off.close();
    print_secret(global, &key, secret.expose())?;
    Ok(ExitCode::SUCCESS)
}

fn print_secret(global: &GlobalArgs, key: &keys::ApiKey, secret: &str) -> anyhow::Result<()> {
    if global.format == OutputFormat::Human {
        output::write_text(global, &format!("{secret}\n"))?;
        eprintln!(
            "key {} for {} (models: {}); the secret above is shown once and stored only as a hash",
            key.id,
            key.owner,
            key.models.join(",")
        );
        Ok(())
    } else {
        json(global, &serde_json::json!({"key": key, "secret": secret}))
    }
}

/// `aegis model list`.
pub fn model(global: &GlobalArgs, command: ModelCommand) -> anyhow::Result<ExitCode> {
    let args = match command {
        ModelCommand::Add(args) => return super::inventory::model_add(global, *args),
        ModelCommand::List(args) => args,
    };
    let config = options(&args).resolve()?;
    let (models, events) = if config.models.is_empty() && config.server.demo_model {
        aegis_gateway::models::LocalModels::with_demo(&config.server.data_dir)?
    } else {
        aegis_gateway::models::LocalModels::load(&config.models)
    };
    let list = models.list();
    if global.format == OutputFormat::Human {
        let mut text = String::new();
        for m in &list {
            let origin = m.provenance.describe();
            text.push_str(&format!(
                "{:<20} v{:<6} {} features → {} classes  scan: {} finding(s){}{}\n",
                m.name,
                m.version,
                m.n_features,
                m.n_classes,
                m.scan.findings,
                if m.scan.overridden {
                    " (served by override)"
                } else {
                    ""
                },
                if origin.is_empty() {
                    String::new()
                } else {
                    format!("  {origin}")
                }
            ));
        }
        for e in &events {
            if e.decision == "refused" {
                text.push_str(&format!("{:<20} REFUSED: {}\n", e.model, e.detail));
            }
        }
        for u in &config.upstreams {
            text.push_str(&format!(
                "{:<20} upstream {:?} {} models [{}]\n",
                u.name,
                u.protocol,
                u.url,
                u.models.join(",")
            ));
        }
        output::write_text(global, &text)?;
    } else {
        json(
            global,
            &serde_json::json!({"models": list, "events": events, "upstreams": config.upstreams}),
        )?;
    }
    let refused = events.iter().any(|e| e.decision == "refused");
    Ok(if refused {
        ExitCode::from(output::EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

/// `aegis audit-log …`.
pub fn audit_log(global: &GlobalArgs, command: AuditLogCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditLogCommand::Verify(args) => {
            let (config, off) = open(&args)?;
            let v = off.block_on(audit_log::verify(off.db()))?;
            off.block_on(aegis_gateway::signals::audit_chain(off.store(), &v));
            off.close();
            if global.format == OutputFormat::Human {
                let db = aegis_gateway::db::redact_url(&config.database_url());
                let mut text = match &v.problem {
                    None => format!(
                        "audit log {db}: {} records, chain intact (head {}); {} gateway run{}, none missing records\n\
                         head hash {} (copy it where the database's writers cannot reach; later, \
                         `aegis audit-log show --after {} --before {} --format json` must still show it as record \
                         {}'s hash, or the log was rewritten)\n",
                        v.records,
                        v.head_seq,
                        v.runs,
                        if v.runs == 1 { "" } else { "s" },
                        v.head_hash,
                        v.head_seq - 1,
                        v.head_seq + 1,
                        v.head_seq
                    ),
                    Some(p) => format!(
                        "audit log {db}: CHAIN BROKEN at record {}: {}\n({} records read, head {})\n",
                        p.seq, p.reason, v.records, v.head_seq
                    ),
                };
                if !v.unstopped.is_empty() {
                    text.push_str(&format!(
                        "runs without a clean stop (killed, or still running; nothing answered is missing): {}\n",
                        v.unstopped.join(", ")
                    ));
                }
                output::write_text(global, &text)?;
            } else {
                json(global, &v)?;
            }
            Ok(if v.problem.is_some() {
                ExitCode::from(output::EXIT_FINDINGS)
            } else {
                ExitCode::SUCCESS
            })
        }
        AuditLogCommand::Show(args) => {
            let (_, off) = open(&args.gateway)?;
            let records = off.block_on(audit_log::list_newest(
                off.db(),
                args.after,
                args.before.unwrap_or(i64::MAX),
                args.limit.clamp(1, 100_000),
            ))?;
            off.close();
            if global.format == OutputFormat::Human {
                let mut text = format!(
                    "{:>6} {:<20} {:<9} {:<16} {:<12} {:<14} {:<30} {} {}\n",
                    "SEQ",
                    "TIME (UTC)",
                    "KIND",
                    "ACTOR",
                    "KEY",
                    "MODEL",
                    "ROUTE",
                    "STATUS",
                    "DECISION"
                );
                for r in &records {
                    text.push_str(&format!(
                        "{:>6} {:<20} {:<9} {:<16} {:<12} {:<14} {:<30} {} {}\n",
                        r.seq,
                        utc_time(r.ts_ms),
                        r.kind,
                        r.actor,
                        r.key_id,
                        r.model,
                        r.route,
                        r.status,
                        r.decision
                    ));
                }
                output::write_text(global, &text)?;
            } else {
                json(global, &records)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
