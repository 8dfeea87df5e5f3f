//! `aegis vault`: wire age-style flags to [`aegis_vault`] (encryption, key files, signatures) and report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use aegis_core::Report;
use aegis_vault::crypt::{self, DecryptWith, EncryptTo, FileOptions};
use aegis_vault::keys::{self, Identities};
use aegis_vault::manifest::HashOptions;
use aegis_vault::trust::{self, TrustPolicy};
use aegis_vault::{signature, signing_key};
use anyhow::{bail, Context};
use serde_json::json;

use crate::args::{
    GlobalArgs, IdentityArgs, RecipientArgs, VaultCommand, VaultDecryptArgs, VaultEncryptArgs,
    VaultKeygenArgs, VaultRotateArgs, VaultSignArgs, VaultVerifyArgs,
};
use crate::{output, prompt};

/// Dispatch `aegis vault …`.
pub fn run(global: &GlobalArgs, command: VaultCommand) -> anyhow::Result<ExitCode> {
    match command {
        VaultCommand::Keygen(args) => keygen(global, &args),
        VaultCommand::Encrypt(args) => encrypt(global, args),
        VaultCommand::Decrypt(args) => decrypt(global, args),
        VaultCommand::Rotate(args) => rotate(global, args),
        VaultCommand::Sign(args) => sign(global, &args),
        VaultCommand::Verify(args) => verify(global, &args),
    }
}

fn say(global: &GlobalArgs, line: &str) {
    if !global.quiet {
        eprintln!("{line}");
    }
}

fn keygen(global: &GlobalArgs, args: &VaultKeygenArgs) -> anyhow::Result<ExitCode> {
    if args.sign {
        let Some(out) = &global.output else {
            bail!("--sign needs -o FILE: the private key goes to FILE, the public key to FILE.pub");
        };
        let public = signing_key::write_keypair(out)?;
        say(
            global,
            &format!(
                "signing key written to {} (owner-only); public key: {}",
                out.display(),
                public.display()
            ),
        );
        return Ok(ExitCode::SUCCESS);
    }
    match &global.output {
        Some(out) => {
            let recipient = keys::write_identity_file(out)?;
            say(global, &format!("Public key: {recipient}"));
            if global.format == crate::args::OutputFormat::Json {
                println!(
                    "{}",
                    json!({ "identity_file": out, "recipient": recipient })
                );
            }
        }
        None => {
            // Like age-keygen without -o: the new identity goes to standard output (for a pipe or a
            // redirection); `-o FILE` writes it owner-only instead.
            let (secret, recipient) = keys::generate_identity();
            say(global, &format!("Public key: {recipient}"));
            println!("# public key: {recipient}\n{}", secret.as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Recipients or passphrase from the flags.
fn encrypt_to(args: &RecipientArgs) -> anyhow::Result<EncryptTo> {
    if let Some(file) = &args.passphrase_file {
        return Ok(EncryptTo::Passphrase(prompt::secret_from_file(file)?));
    }
    if args.passphrase {
        return Ok(EncryptTo::Passphrase(prompt::secret_from_terminal(
            "passphrase: ",
            true,
        )?));
    }
    let mut recipients = args.recipients.clone();
    for file in &args.recipients_files {
        recipients.extend(keys::read_recipients_file(file)?);
    }
    if recipients.is_empty() {
        bail!("no recipients: give -r age1..., -R FILE, -p or --passphrase-file FILE");
    }
    for r in &recipients {
        keys::parse_recipient(r)?;
    }
    Ok(EncryptTo::Recipients(recipients))
}

/// Identities or passphrase from the flags (a terminal prompt when neither is given).
fn decrypt_with(args: &IdentityArgs) -> anyhow::Result<DecryptWith> {
    if let Some(file) = &args.decrypt_passphrase_file {
        return Ok(DecryptWith::Passphrase(prompt::secret_from_file(file)?));
    }
    if args.identities.is_empty() {
        return Ok(DecryptWith::Passphrase(prompt::secret_from_terminal(
            "passphrase: ",
            false,
        )?));
    }
    let mut all: Option<Identities> = None;
    for file in &args.identities {
        let ids = Identities::read_file(file)?;
        all = Some(match all {
            None => ids,
            Some(mut acc) => {
                acc.extend(ids);
                acc
            }
        });
    }
    all.map(DecryptWith::Identities)
        .context("no identities given")
}

fn options(armor: bool, overwrite: bool) -> FileOptions {
    FileOptions { armor, overwrite }
}

fn is_stdio(p: &Option<PathBuf>) -> bool {
    p.as_deref().is_none_or(|p| p == Path::new("-"))
}

fn encrypt(global: &GlobalArgs, args: VaultEncryptArgs) -> anyhow::Result<ExitCode> {
    let to = encrypt_to(&args.to)?;
    let armor = args.to.armor;
    let started = Instant::now();
    let out = global.output.clone();
    if is_stdio(&args.input) {
        if is_stdio(&out) && !armor && std::io::stdout().is_terminal() {
            bail!("refusing to write binary ciphertext to a terminal: use -o FILE or -a");
        }
        let n = match &out {
            Some(path) if path != Path::new("-") => crypt::encrypt_reader_to_file(
                &to,
                &options(armor, args.force),
                std::io::stdin().lock(),
                Path::new("<stdin>"),
                path,
            )?,
            _ => crypt::encrypt_stream(
                &to,
                armor,
                std::io::stdin().lock(),
                std::io::stdout().lock(),
            )?,
        };
        say(global, &format!("encrypted {n} bytes from standard input"));
        return Ok(ExitCode::SUCCESS);
    }
    let input = args.input.unwrap_or_default();
    if input.is_dir() {
        let Some(out) = out.filter(|p| p != Path::new("-")) else {
            bail!("encrypting a directory needs -o DIR for the encrypted tree");
        };
        let summary = crypt::encrypt_tree(&to, armor, &input, &out)?;
        say(
            global,
            &format!(
                "encrypted {} files ({} bytes) from {} into {} in {:.1} s",
                summary.files,
                summary.bytes,
                input.display(),
                out.display(),
                started.elapsed().as_secs_f64()
            ),
        );
        return Ok(ExitCode::SUCCESS);
    }
    match out.filter(|p| p != Path::new("-")) {
        Some(out) => {
            let n = crypt::encrypt_file_with(&to, &options(armor, args.force), &input, &out)?;
            say(
                global,
                &format!(
                    "encrypted {} ({n} bytes) to {} in {:.1} s",
                    input.display(),
                    out.display(),
                    started.elapsed().as_secs_f64()
                ),
            );
        }
        None => {
            if !armor && std::io::stdout().is_terminal() {
                bail!("refusing to write binary ciphertext to a terminal: use -o FILE or -a");
            }
            let file = std::fs::File::open(&input)
                .with_context(|| format!("cannot open {}", input.display()))?;
            crypt::encrypt_stream(&to, armor, file, std::io::stdout().lock())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn decrypt(global: &GlobalArgs, args: VaultDecryptArgs) -> anyhow::Result<ExitCode> {
    let with = decrypt_with(&args.with)?;
    let started = Instant::now();
    let out = global.output.clone().filter(|p| p != Path::new("-"));
    if is_stdio(&args.input) {
        let n = match &out {
            Some(path) => crypt::decrypt_reader_to_file(
                &with,
                &options(false, args.force),
                std::io::stdin().lock(),
                Path::new("<stdin>"),
                path,
            )?,
            None => {
                crypt::decrypt_stream(&with, std::io::stdin().lock(), std::io::stdout().lock())?
            }
        };
        say(global, &format!("decrypted {n} bytes from standard input"));
        return Ok(ExitCode::SUCCESS);
    }
    let input = args.input.unwrap_or_default();
    if input.is_dir() {
        let Some(out) = out else {
            bail!("decrypting a directory needs -o DIR for the plaintext tree");
        };
        let summary = crypt::decrypt_tree(&with, &input, &out)?;
        say(
            global,
            &format!(
                "decrypted {} files ({} bytes) into {} in {:.1} s",
                summary.files,
                summary.bytes,
                out.display(),
                started.elapsed().as_secs_f64()
            ),
        );
        return Ok(ExitCode::SUCCESS);
    }
    match out {
        Some(out) => {
            let n = crypt::decrypt_file_with(&with, &options(false, args.force), &input, &out)?;
            say(
                global,
                &format!(
                    "decrypted {} ({n} bytes) to {} in {:.1} s",
                    input.display(),
                    out.display(),
                    started.elapsed().as_secs_f64()
                ),
            );
        }
        None => {
            let file = std::fs::File::open(&input)
                .with_context(|| format!("cannot open {}", input.display()))?;
            crypt::decrypt_stream(&with, file, std::io::stdout().lock())
                .with_context(|| format!("decrypting {}", input.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rotate(global: &GlobalArgs, args: VaultRotateArgs) -> anyhow::Result<ExitCode> {
    let with = decrypt_with(&args.with)?;
    let to = encrypt_to(&args.to)?;
    for file in &args.files {
        let n = crypt::rotate_file(&with, &to, args.to.armor, file)?;
        say(
            global,
            &format!(
                "re-encrypted {} ({n} bytes) to the new recipients",
                file.display()
            ),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn sign(global: &GlobalArgs, args: &VaultSignArgs) -> anyhow::Result<ExitCode> {
    let sig = args
        .signature
        .clone()
        .unwrap_or_else(|| signature::default_signature_path(&args.path));
    let opts = HashOptions {
        ignore: args.ignore.clone(),
        allow_symlinks: args.allow_symlinks,
        signature_file: Some(sig.clone()),
    };
    let started = Instant::now();
    let manifest = signature::sign_path(&args.path, &args.key, &sig, &opts)?;
    let bytes: u64 = manifest.resources.iter().map(|r| r.size).sum();
    say(
        global,
        &format!(
            "signed {} files ({bytes} bytes) of {}; signature: {} ({:.1} s)",
            manifest.resources.len(),
            args.path.display(),
            sig.display(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(global: &GlobalArgs, args: &VaultVerifyArgs) -> anyhow::Result<ExitCode> {
    let mut policy = match &args.trust_policy {
        Some(p) => TrustPolicy::load(p)?,
        None => TrustPolicy::default(),
    };
    policy.trusted_keys.extend(args.key.iter().cloned());
    let started = Instant::now();
    let mut report = Report::new("vault verify", vec![args.path.display().to_string()]);
    report.findings = policy
        .check(&args.path, args.signature.as_deref())
        .with_context(|| format!("verifying {}", args.path.display()))?;
    report.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    report.sort_findings();
    report
        .metrics
        .insert("verified".into(), report.findings.is_empty().into());
    let code = output::emit(global, &report, &trust::RULES.iter().collect::<Vec<_>>())?;
    // Any failure to verify is a failure, whatever --fail-on says.
    Ok(if report.findings.is_empty() {
        code
    } else {
        ExitCode::from(output::EXIT_FINDINGS)
    })
}
