//! Advice never points nowhere: every `aegis …` invocation named in a rule's text (what it means, how to fix it)
//! or in any command's `--help` names a command that exists, and every `--flag` in it is one that command takes.
//! The command tree is read from the binary's own `--help`, so a renamed command or a removed flag fails here.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(path)
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "aegis {path:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands listed under `Commands:` in a help text.
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            // Continuation lines of a description are indented further.
            if line.starts_with("   ") {
                continue;
            }
            if let Some(name) = line.split_whitespace().next() {
                if name != "help" {
                    names.push(name.to_owned());
                }
            }
        }
    }
    names
}

/// Every command path (`["vault", "keygen"]`) with its help text.
fn tree() -> BTreeMap<Vec<String>, String> {
    let mut all = BTreeMap::new();
    let mut todo = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let text = help(&path);
        for sub in subcommands(&text) {
            let mut child = path.clone();
            child.push(sub);
            todo.push(child);
        }
        all.insert(path, text);
    }
    all
}

/// `aegis …` invocations in `text`: in backticks, or at the start of a line (help examples), the words after
/// `aegis` up to the end of the line, a backtick or a closing bracket. Prose ("the aegis command-line tool") is
/// neither.
fn invocations(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("aegis ") {
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let lead = text[line_start..at].trim_start_matches([' ', '$']);
        let quoted = text[..at].ends_with('`');
        if !(quoted || lead.is_empty()) {
            continue;
        }
        let rest = &text[at + "aegis ".len()..];
        let end = rest
            .find(['\n', '`', ')', '|', ';', '"', '>', '#'])
            .unwrap_or(rest.len());
        let words: Vec<String> = rest[..end].split_whitespace().map(str::to_owned).collect();
        if words
            .first()
            .is_some_and(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        {
            found.push(words);
        }
    }
    found
}

#[test]
fn every_command_and_flag_named_in_advice_and_examples_exists() {
    let tree = tree();
    assert!(tree.len() > 20, "command tree not read: {:?}", tree.keys());
    let rules = common::aegis(&["rules", "--markdown"], std::path::Path::new("."));
    let mut texts = vec![(
        "aegis rules --markdown".to_owned(),
        String::from_utf8(rules.stdout).unwrap(),
    )];
    for (path, text) in &tree {
        texts.push((format!("aegis {} --help", path.join(" ")), text.clone()));
    }
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (source, text) in &texts {
        for words in invocations(text) {
            let mut path: Vec<String> = Vec::new();
            let mut rest = words.as_slice();
            while let Some((word, tail)) = rest.split_first() {
                let mut next = path.clone();
                next.push(word.clone());
                if !tree.contains_key(&next) {
                    break;
                }
                path = next;
                rest = tail;
            }
            if path.is_empty() {
                // Prose such as "aegis reads…" is not an invocation; a lower-case word that is not a command
                // right after "aegis" in a fix or an example is.
                if source == "aegis rules --markdown" || source.ends_with("--help") {
                    wrong.push(format!(
                        "{source}: `aegis {}` names no command",
                        words.join(" ")
                    ));
                }
                continue;
            }
            let command_help = &tree[&path];
            for flag in rest.iter().filter(|w| w.starts_with("--")) {
                let name = flag
                    .split('=')
                    .next()
                    .unwrap()
                    .trim_end_matches([',', '.', ':']);
                if !command_help.contains(&format!("{name} "))
                    && !command_help.contains(&format!("{name}\n"))
                {
                    wrong.push(format!(
                        "{source}: `aegis {}`: `aegis {}` has no {name}",
                        words.join(" "),
                        path.join(" ")
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} invocations found");
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
