//! Walking paths and scanning files in parallel. Directories are walked without following symbolic links
//! (a link loop or a link out of the tree is not followed); files named on the command line are scanned even
//! when they are links. One file's failure is that file's finding, never the run's.
//!
//! What a walk leaves out (gitignore syntax, `!` to re-include): the policy's exclude patterns (`--exclude`,
//! `[scan] exclude` in `aegis.toml`), matched relative to each directory named on the command line, and the
//! user's own ignore file (`./.aegisignore` of the working directory), relative to its directory. An
//! `.aegisignore` met inside the scanned tree is not obeyed, unlike ripgrep's ignore files: a downloaded model
//! repository must not be able to hide its own payload; it is reported instead (`AEG-SCAN-004`). Nothing else
//! is skipped: hidden files and `.gitignore`d files are scanned, since a payload can hide there. Files named on
//! the command line are always scanned. How many paths were left out is counted, so a run that excluded
//! everything can say so; a tree deeper than the walk goes and a directory entry that cannot be read are
//! findings, never silent.

use std::fs;
use std::path::{Path, PathBuf};

use aegis_core::{Finding, Location};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;
use rayon::prelude::*;

use crate::engine::Stats;
use crate::Scanner;

/// Receives progress events; implemented by the CLI's progress bar. Must be cheap and thread-safe.
pub trait Progress: Sync {
    /// The walk found `files` files totalling `bytes`.
    fn start(&self, files: u64, bytes: u64);
    /// One file of `bytes` bytes was scanned.
    fn advance(&self, bytes: u64);
    /// The run ended.
    fn finish(&self);
}

/// A no-op progress sink.
impl Progress for () {
    fn start(&self, _: u64, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// Result of scanning a set of paths.
#[derive(Debug, Clone, Default)]
pub struct ScanOutcome {
    /// All findings, in path order.
    pub findings: Vec<Finding>,
    /// Counters.
    pub stats: Stats,
    /// Files and directories left out by exclude patterns and `.aegisignore` files.
    pub excluded: u64,
}

/// The name of the per-directory ignore file.
pub const IGNORE_FILE: &str = ".aegisignore";

/// Bound on directory nesting during the walk.
const MAX_WALK_DEPTH: usize = 64;

impl Scanner {
    /// Scan files and directories (recursively), in parallel, reporting progress.
    pub fn scan_paths(&self, paths: &[PathBuf], progress: &dyn Progress) -> ScanOutcome {
        let mut walk = Walk::default();
        let own = self.policy.ignore_file_path().map(|file| {
            let dir = file.parent().unwrap_or(Path::new("."));
            let mut builder = GitignoreBuilder::new(dir);
            if let Some(err) = builder.add(file) {
                walk.unreadable(file, &format!("some patterns not used: {err}"));
            }
            (
                build(builder, file, &mut walk.findings),
                fs::canonicalize(file).ok(),
            )
        });
        let (own_rules, own_file) = match own {
            Some((rules, file)) => (Some(rules), file),
            None => (None, None),
        };
        walk.own_ignore_file = own_file;
        for path in paths {
            let mut rules: Vec<Gitignore> = own_rules.iter().cloned().collect();
            if path.is_dir() && !self.policy.excludes().is_empty() {
                rules.push(self.exclude_rules(path, &mut walk.findings));
            }
            walk.collect(path, 0, true, &rules);
        }
        let Walk {
            files,
            findings: walk_findings,
            excluded,
            ..
        } = walk;
        let total: u64 = files.iter().map(|(_, len)| len).sum();
        progress.start(files.len() as u64, total);
        let outcomes: Vec<_> = files
            .par_iter()
            .map(|(path, len)| {
                let display = path.display().to_string();
                let outcome = self.scan_file(path, &display);
                progress.advance(*len);
                outcome
            })
            .collect();
        progress.finish();
        let mut result = ScanOutcome {
            findings: walk_findings,
            stats: Stats::default(),
            excluded,
        };
        for outcome in outcomes {
            result.findings.extend(outcome.findings);
            result.stats.merge(&outcome.stats);
        }
        result
    }
}

impl Scanner {
    /// The policy's exclude patterns, relative to `root`.
    fn exclude_rules(&self, root: &Path, findings: &mut Vec<Finding>) -> Gitignore {
        let mut builder = GitignoreBuilder::new(root);
        for pattern in self.policy.excludes() {
            // Validated when added to the policy.
            let _ = builder.add_line(None, pattern);
        }
        build(builder, root, findings)
    }
}

fn build(builder: GitignoreBuilder, source: &Path, findings: &mut Vec<Finding>) -> Gitignore {
    builder.build().unwrap_or_else(|err| {
        findings.push(crate::engine_rules::unreadable(
            Location::file(source.display().to_string()),
            &format!("exclude patterns not used: {err}"),
        ));
        Gitignore::empty()
    })
}

/// What the walk found so far.
#[derive(Default)]
struct Walk {
    files: Vec<(PathBuf, u64)>,
    findings: Vec<Finding>,
    excluded: u64,
    /// The obeyed ignore file, canonical, so that meeting it in the tree is not reported.
    own_ignore_file: Option<PathBuf>,
}

impl Walk {
    fn collect(&mut self, path: &Path, depth: usize, explicit: bool, rules: &[Gitignore]) {
        let meta = if explicit {
            fs::metadata(path)
        } else {
            fs::symlink_metadata(path)
        };
        let meta = match meta {
            Ok(meta) => meta,
            Err(err) => {
                self.unreadable(path, &err.to_string());
                return;
            }
        };
        if !explicit && excluded(rules, path, meta.is_dir()) {
            self.excluded += 1;
            return;
        }
        if meta.is_file() {
            if path.file_name() == Some(std::ffi::OsStr::new(IGNORE_FILE))
                && fs::canonicalize(path).ok() != self.own_ignore_file
            {
                self.findings.push(Finding::new(
                    &crate::engine_rules::IGNORE_FILE_IN_TREE,
                    Location::file(path.display().to_string()),
                    "an .aegisignore inside the scanned tree was not obeyed; every file under it was scanned",
                ));
            }
            self.files.push((path.to_path_buf(), meta.len()));
        } else if meta.is_dir() {
            if depth >= MAX_WALK_DEPTH {
                self.findings.push(Finding::new(
                    &crate::engine_rules::LIMIT_HIT,
                    Location::file(path.display().to_string()),
                    format!(
                        "directories nested deeper than {MAX_WALK_DEPTH} levels were not walked; scan this \
                         directory on its own"
                    ),
                ));
                return;
            }
            let entries = match fs::read_dir(path) {
                Ok(entries) => entries,
                Err(err) => {
                    self.unreadable(path, &err.to_string());
                    return;
                }
            };
            let mut children = Vec::new();
            for entry in entries {
                match entry {
                    Ok(entry) => children.push(entry.path()),
                    Err(err) => self.unreadable(path, &format!("a directory entry: {err}")),
                }
            }
            children.sort();
            for child in children {
                self.collect(&child, depth + 1, false, rules);
            }
        }
    }

    fn unreadable(&mut self, path: &Path, detail: &str) {
        self.findings.push(crate::engine_rules::unreadable(
            Location::file(path.display().to_string()),
            detail,
        ));
    }
}

/// Whether the innermost rule set with an opinion on `path` leaves it out.
fn excluded(rules: &[Gitignore], path: &Path, is_dir: bool) -> bool {
    for rule in rules.iter().rev() {
        match rule.matched(path, is_dir) {
            Match::Ignore(_) => return true,
            Match::Whitelist(_) => return false,
            Match::None => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree deeper than the walk goes is a finding that fails the default gate, never a silent skip; a
    /// shallower one is walked to the bottom.
    #[test]
    fn a_tree_deeper_than_the_walk_is_a_finding() {
        let dir = tempfile::tempdir().unwrap();
        let mut deep = dir.path().to_path_buf();
        for i in 0..MAX_WALK_DEPTH + 2 {
            deep.push(format!("d{i}"));
        }
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("model.pkl"), b"\x80\x04K\x01.").unwrap();
        let out = Scanner::default().scan_paths(&[dir.path().to_path_buf()], &());
        assert_eq!(out.stats.files, 0);
        assert!(
            out.findings
                .iter()
                .any(|f| f.rule.as_str() == "AEG-SCAN-003"
                    && f.severity >= aegis_core::Severity::High)
        );

        let shallow = tempfile::tempdir().unwrap();
        let mut path = shallow.path().to_path_buf();
        for i in 0..10 {
            path.push(format!("d{i}"));
        }
        fs::create_dir_all(&path).unwrap();
        fs::write(path.join("model.pkl"), b"\x80\x04K\x01.").unwrap();
        let out = Scanner::default().scan_paths(&[shallow.path().to_path_buf()], &());
        assert_eq!(out.stats.files, 1);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
    }
}
