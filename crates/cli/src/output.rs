//! Where reports go. The report goes to `--output FILE` or stdout; with a machine format on stdout, a
//! one-line human summary goes to stderr (unless `--quiet`) so pipes stay parseable. A closed pipe is not an
//! error worth a message.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use aegis_core::{Report, RuleDoc};
use aegis_report::{Format, HumanOptions};
use anyhow::Context;

use crate::args::{ColorChoice, GlobalArgs, OutputFormat};

/// Exit code when findings reach `--fail-on`.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code when the tool failed.
pub const EXIT_ERROR: u8 = 2;

/// Whether an error (anywhere in its chain) is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn format_of(format: OutputFormat) -> Format {
    match format {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
        OutputFormat::Jsonl => Format::Jsonl,
        OutputFormat::Sarif => Format::Sarif,
        OutputFormat::Html => Format::Html,
    }
}

fn color(choice: ColorChoice, terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// Render the report where the flags say, then compute the exit code from `--fail-on`.
pub fn emit(global: &GlobalArgs, report: &Report, rules: &[&RuleDoc]) -> anyhow::Result<ExitCode> {
    // Every report lists the most severe findings first, whichever command made it.
    let mut sorted;
    let report = if report
        .findings
        .windows(2)
        .all(|w| w[0].severity >= w[1].severity)
    {
        report
    } else {
        sorted = report.clone();
        sorted.sort_findings();
        &sorted
    };
    let code = if report.fails_at(global.fail_on) {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    };
    let format = format_of(global.format);
    let to_file = global.output.is_some();
    let human = HumanOptions {
        color: color(global.color, !to_file && io::stdout().is_terminal()),
        verbose: global.verbose,
        min_severity: global.quiet.then_some(global.fail_on),
    };
    let written = match &global.output {
        Some(path) => {
            let file = File::create(path)
                .with_context(|| format!("cannot create report file {}", path.display()))?;
            let mut out = BufWriter::new(file);
            aegis_report::render(report, format, rules, &human, &mut out)
                .and_then(|()| out.flush())
                .with_context(|| format!("writing report to {}", path.display()))
        }
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            aegis_report::render(report, format, rules, &human, &mut out)
                .and_then(|()| out.flush())
                .context("writing report to standard output")
        }
    };
    match written {
        Err(err) if is_broken_pipe(&err) => return Ok(code),
        other => other?,
    }
    if !global.quiet && (to_file || format != Format::Human) {
        summary_to_stderr(report, global)?;
    }
    Ok(code)
}

fn summary_to_stderr(report: &Report, global: &GlobalArgs) -> anyhow::Result<()> {
    let mut err = io::stderr().lock();
    let where_to = global
        .output
        .as_ref()
        .map(|p| format!("; report written to {}", p.display()))
        .unwrap_or_default();
    let line = if report.findings.is_empty() {
        format!("aegis {}: no findings{where_to}", report.command)
    } else {
        format!(
            "aegis {}: {} finding(s): {}{where_to}",
            report.command,
            report.findings.len(),
            report.severity_summary()
        )
    };
    match writeln!(err, "{line}") {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Write plain text (documentation, listings) to `--output` or stdout.
/// Check before any work that `path` can be written: not a directory, its directory exists, and a file can be
/// created there (or the existing regular file opened for writing; a FIFO or a device is left alone, opening it
/// would be a write). Nothing is created or truncated.
pub fn check_writable(path: &Path, what: &str) -> anyhow::Result<()> {
    let shown = path.display();
    if path.is_dir() {
        anyhow::bail!("cannot write {what} to {shown}: it is a directory; name a file");
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !parent.is_dir() {
        anyhow::bail!(
            "cannot write {what} to {shown}: the directory {} does not exist; create it first",
            parent.display()
        );
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Ok(());
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .with_context(|| format!("cannot write {what} to {shown}"))?;
        return Ok(());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let probe = parent.join(format!(".aegis-write-check-{}-{nanos}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| {
            format!(
                "cannot write {what} to {shown}: cannot create files in {}",
                parent.display()
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

pub fn write_text(global: &GlobalArgs, text: &str) -> anyhow::Result<()> {
    let result = match &global.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .context("writing to standard output")
        }
    };
    match result {
        Err(err) if is_broken_pipe(&err) => Ok(()),
        other => other,
    }
}
