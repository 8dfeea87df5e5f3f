//! Which of the shared flags (`--format`, `-o`, `--fail-on`, `-q`, `-v`, `--color`) each command honours.
//!
//! The shared flags are declared once (`GlobalArgs`, clap `global = true`) so that every report command spells
//! them the same way, but not every command has a report: `aegis vault keygen -o FILE` writes a secret key to
//! FILE, and `--format html` there must be refused rather than silently write the key into a file the user
//! named for a report. A flag a command does not honour is a usage error (exit 2) that says so, and each flag's
//! help says which commands take it.

use clap::parser::ValueSource;
use clap::ArgMatches;

/// Every shared flag, by clap id, with how it is spelled.
const SHARED: &[(&str, &str)] = &[
    ("format", "--format"),
    ("output", "-o/--output"),
    ("fail_on", "--fail-on"),
    ("quiet", "-q/--quiet"),
    ("verbose", "-v/--verbose"),
    ("color", "--color"),
];

/// What a command does with the shared flags.
struct Honours {
    flags: &'static [&'static str],
    /// The `--format` values it writes (when it honours `--format`).
    formats: &'static [&'static str],
}

const ALL_FORMATS: &[&str] = &["human", "json", "jsonl", "sarif", "html"];

/// Commands that produce a report (findings, a verdict, an exit code from `--fail-on`).
const REPORT: Honours = Honours {
    flags: &["format", "output", "fail_on", "quiet", "verbose", "color"],
    formats: ALL_FORMATS,
};
/// Commands that print a table for people or JSON for scripts.
const LISTING: Honours = Honours {
    flags: &["format", "output"],
    formats: &["human", "json"],
};

/// What the command at `path` (`["vault", "keygen"]`) honours.
fn honours(path: &[&str]) -> Honours {
    match path {
        ["scan"]
        | ["assess", _]
        | ["harden"]
        | ["audit"]
        | ["schema", "check"]
        | ["drift"]
        | ["vault", "verify"] => REPORT,
        // They register or run checks and exit 1 when open findings reach --fail-on, as report commands do.
        ["model", "add"] | ["asset", "add"] | ["dataset", _] | ["check", "run"] | ["report", _] => {
            Honours {
                flags: &["format", "output", "fail_on", "quiet"],
                formats: &["human", "json"],
            }
        }
        ["rules"]
        | ["user", "add" | "list"]
        | ["key", "create" | "list" | "rotate"]
        | ["model", _]
        | ["audit-log", _]
        | ["asset", "list" | "show" | "update"]
        | ["check", _]
        | ["findings", _]
        | ["notify", "list" | "deliveries" | "test"] => LISTING,
        ["asset", _] | ["notify", _] => Honours {
            flags: &[],
            formats: &[],
        },
        // `--format html -o posture.html` is the self-contained page.
        ["posture"] => Honours {
            flags: &["format", "output", "fail_on"],
            formats: &["human", "json", "html"],
        },
        // They say what they did on stderr and print nothing else.
        ["user", _] | ["key", _] => Honours {
            flags: &[],
            formats: &[],
        },
        ["schema", "infer"] => Honours {
            flags: &["output", "quiet"],
            formats: &[],
        },
        // `-o` is where `--openapi` writes the document.
        ["serve"] => Honours {
            flags: &["output"],
            formats: &[],
        },
        // `-o` is the key file; `--format json` prints where it went and the public key.
        ["vault", "keygen"] => Honours {
            flags: &["format", "output", "quiet"],
            formats: &["human", "json"],
        },
        ["vault", "encrypt" | "decrypt"] => Honours {
            flags: &["output", "quiet"],
            formats: &[],
        },
        ["vault", _] => Honours {
            flags: &["quiet"],
            formats: &[],
        },
        _ => REPORT,
    }
}

/// The command line parser, with the shared flags hidden from the help of every command that does not honour
/// them.
///
/// clap copies a `global` flag into each subcommand when the parser is built, unless the subcommand already
/// has an argument with that id. So before that happens every subcommand gets its own copy of each shared
/// flag: visible where the command honours it, hidden elsewhere (and on commands that only group others). The
/// copies stay `global`, so a value still reaches the top-level matches wherever it is written, and [`check`]
/// still refuses a hidden flag that is given.
pub fn command() -> clap::Command {
    let root = <crate::args::Cli as clap::CommandFactory>::command();
    let shared: Vec<clap::Arg> = root
        .get_arguments()
        .filter(|a| SHARED.iter().any(|(id, _)| a.get_id() == *id))
        .cloned()
        .collect();
    let names: Vec<String> = root
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    names.into_iter().fold(root, |root, name| {
        root.mut_subcommand(&name, |sub| scoped(sub, &[name.as_str()], &shared))
    })
}

/// `cmd` (at `path`) and its subcommands with their own copies of the shared flags.
fn scoped(cmd: clap::Command, path: &[&str], shared: &[clap::Arg]) -> clap::Command {
    let groups_others = cmd.get_subcommands().next().is_some();
    let honoured = honours(path);
    let mut cmd = shared.iter().fold(cmd, |cmd, arg| {
        let shown = !groups_others && honoured.flags.contains(&arg.get_id().as_str());
        let arg = match (path, arg.get_id().as_str()) {
            (["serve"], "output") => arg
                .clone()
                .help("Where --openapi writes the OpenAPI document (default: standard output)"),
            _ => arg.clone(),
        };
        cmd.arg(arg.hide(!shown))
    });
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        let mut sub_path = path.to_vec();
        sub_path.push(&name);
        cmd = cmd.mut_subcommand(&name, |sub| scoped(sub, &sub_path, shared));
    }
    cmd
}

/// Refuse a shared flag the chosen command does not honour, or a `--format` it does not write.
pub fn check(matches: &ArgMatches) -> Result<(), String> {
    let mut path = Vec::new();
    let mut leaf = matches;
    while let Some((name, sub)) = leaf.subcommand() {
        path.push(name);
        leaf = sub;
    }
    let honoured = honours(&path);
    let command = format!("aegis {}", path.join(" "));
    // clap checks `conflicts_with` within one level only: `aegis -q scan x -v` gives one flag to the top level
    // and the other to the subcommand.
    if leaf.get_flag("quiet") && leaf.get_flag("verbose") {
        return Err("-q/--quiet and -v/--verbose cannot be used together".to_owned());
    }
    for (id, spelled) in SHARED {
        let given = leaf.value_source(id) == Some(ValueSource::CommandLine);
        if given && !honoured.flags.contains(id) {
            return Err(format!(
                "{spelled} does nothing for `{command}`; see `{command} --help` for what it takes"
            ));
        }
    }
    if leaf.value_source("format") == Some(ValueSource::CommandLine) {
        let format = leaf
            .get_one::<crate::args::OutputFormat>("format")
            .map(|f| format!("{f:?}").to_ascii_lowercase())
            .unwrap_or_default();
        if !honoured.formats.contains(&format.as_str()) {
            return Err(format!(
                "`{command}` writes {}, not --format {format}",
                honoured.formats.join(" or ")
            ));
        }
    }
    Ok(())
}
