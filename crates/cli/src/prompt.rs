//! Secrets typed by a person: read from the terminal with echo off (through `/dev/tty`, so standard input stays
//! free for data, as `age -p` does), or from an owner-only file for automation. Held in zeroizing memory.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

/// Ask for a secret on the terminal; with `confirm`, ask twice and insist the answers match.
pub fn secret_from_terminal(prompt: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    let first = read_tty(prompt)?;
    if first.is_empty() {
        bail!("no passphrase given");
    }
    if confirm && *read_tty("confirm: ")? != *first {
        bail!("the passphrases do not match");
    }
    Ok(first)
}

/// The first line of an owner-only file (a file others can read is refused).
pub fn secret_from_file(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let bytes = aegis_vault::secret_file::read(path)?;
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("{}: the passphrase is not UTF-8", path.display()))?;
    let line = Zeroizing::new(text.lines().next().unwrap_or("").to_string());
    if line.is_empty() {
        bail!(
            "{}: the first line (the passphrase) is empty",
            path.display()
        );
    }
    Ok(line)
}

fn read_tty(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    let tty = File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()
        .filter(|t| t.is_terminal());
    let Some(mut tty) = tty else {
        bail!("no terminal to ask for a passphrase: use --passphrase-file FILE (owner-only permissions)");
    };
    if !set_echo(false) {
        bail!(
            "cannot turn off the terminal's echo (stty failed), so the passphrase would be shown: use \
             --passphrase-file FILE (owner-only permissions)"
        );
    }
    write!(tty, "{prompt}").and_then(|()| tty.flush())?;
    let mut line = Zeroizing::new(String::with_capacity(1024));
    let read = BufReader::new(&tty).read_line(&mut line);
    set_echo(true);
    let _ = writeln!(tty);
    read.context("reading the passphrase from the terminal")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    Ok(trimmed)
}

/// Turn the terminal's echo on or off with `stty` (no unsafe code); false when it could not.
pub fn set_echo(on: bool) -> bool {
    let Ok(tty) = File::open("/dev/tty") else {
        return false;
    };
    std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(tty)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
