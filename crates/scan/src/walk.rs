//! Walking paths and scanning files in parallel. Symbolic links are followed, as loaders follow them (a
//! Hugging Face cache snapshot is nothing but links into `blobs/`; an ONNX external-data sidecar may be a
//! link): the target is scanned under the link's name. A link whose target leaves the scanned tree is a
//! finding (see [`link_target_kind`]) and a directory there is not walked (a link to `/` must not scan the
//! host); a directory reached twice (a loop) is walked once, a file behind many links is scanned once; a
//! dangling link is a finding. One file's failure is that file's
//! finding, never the run's.
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
    /// Every file scanned, in path order, with its result (a clean file is listed too, so a report can show
    /// what was checked).
    pub files: Vec<FileResult>,
}

/// One scanned file's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileResult {
    /// The path as the user gave it.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// How many findings it has (archive members included).
    pub findings: usize,
    /// The most severe of them, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst: Option<aegis_core::Severity>,
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
            walk.root = fs::canonicalize(path).ok();
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
            files: Vec::with_capacity(files.len()),
        };
        for ((path, len), outcome) in files.iter().zip(outcomes) {
            result.files.push(FileResult {
                path: path.display().to_string(),
                bytes: *len,
                findings: outcome.findings.len(),
                worst: outcome.findings.iter().map(|f| f.severity).max(),
            });
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
    /// The canonical form of the path named on the command line being walked.
    root: Option<PathBuf>,
    /// Canonical directories already walked (loop protection for followed links).
    visited: std::collections::HashSet<PathBuf>,
    /// Canonical files reached through links (ten thousand links to one file are one scan).
    linked_files: std::collections::HashSet<PathBuf>,
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
        let meta = if meta.file_type().is_symlink() {
            match self.follow(path) {
                Some(meta) => meta,
                None => return,
            }
        } else {
            meta
        };
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
            if let Ok(canonical) = fs::canonicalize(path) {
                if !self.visited.insert(canonical) {
                    return; // reached before, through a link: walked once
                }
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

    /// Resolve a link met in the walk: report a target outside the scanned tree, and return the target's
    /// metadata (`None` for a dangling link, which is reported).
    fn follow(&mut self, path: &Path) -> Option<fs::Metadata> {
        let target = match fs::canonicalize(path).and_then(|t| fs::metadata(&t).map(|m| (t, m))) {
            Ok(found) => found,
            Err(err) => {
                let to = fs::read_link(path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                self.unreadable(
                    path,
                    &format!("symbolic link to `{to}` cannot be followed: {err}"),
                );
                return None;
            }
        };
        let (target, meta) = target;
        let inside = self
            .root
            .as_ref()
            .is_some_and(|root| target.starts_with(root));
        if meta.is_file() && !self.linked_files.insert(target.clone()) {
            return None; // the same file through another link: scanned once
        }
        if !inside {
            let (severity, kind) = link_target_kind(&target);
            let what = if meta.is_dir() {
                "a directory, not walked"
            } else {
                "scanned under this name"
            };
            self.findings.push(
                Finding::new(
                    &crate::engine_rules::LINK_LEAVES_TREE,
                    Location::file(path.display().to_string()),
                    format!("symbolic link to `{}` ({kind}), {what}", target.display()),
                )
                .with_severity(severity)
                .with_evidence(serde_json::json!({
                    "target": target.display().to_string(),
                    "kind": kind,
                })),
            );
            if meta.is_dir() {
                // A link to `/` must not scan the host.
                return None;
            }
        }
        Some(meta)
    }

    fn unreadable(&mut self, path: &Path, detail: &str) {
        self.findings.push(crate::engine_rules::unreadable(
            Location::file(path.display().to_string()),
            detail,
        ));
    }
}

/// How serious a link out of the scanned tree is, by where it points: a content-addressed cache (Hugging Face
/// `blobs/`, DVC, git-annex) is the normal layout (low); a system or credential location is what a malicious
/// model links to (high); anything else is reported at medium.
fn link_target_kind(target: &Path) -> (aegis_core::Severity, &'static str) {
    use aegis_core::Severity;
    let text = target.to_string_lossy();
    let cache = target
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "blobs")
        || text.contains("/.dvc/cache/")
        || text.contains("/.git/annex/objects/");
    if cache {
        return (Severity::Low, "content-addressed cache");
    }
    const SENSITIVE_ROOTS: &[&str] = &[
        "/etc/", "/root/", "/proc/", "/sys/", "/dev/", "/var/", "/boot/",
    ];
    const SENSITIVE_DIRS: &[&str] = &[
        "/.ssh/",
        "/.aws/",
        "/.gnupg/",
        "/.kube/",
        "/.docker/",
        "/.config/",
        "/.netrc",
        "/.git-credentials",
    ];
    let sensitive = SENSITIVE_ROOTS.iter().any(|r| text.starts_with(r))
        || SENSITIVE_DIRS.iter().any(|d| text.contains(d))
        || text == "/";
    if sensitive {
        (Severity::High, "system or credential location")
    } else {
        (Severity::Medium, "outside the scanned tree")
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

    fn rules_of(out: &ScanOutcome) -> Vec<(String, aegis_core::Severity)> {
        out.findings
            .iter()
            .map(|f| (f.rule.as_str().to_owned(), f.severity))
            .collect()
    }

    /// A Hugging Face cache snapshot (every file a relative link into `blobs/`) is scanned through its
    /// links, and the links are low findings; a link to a host file is high; a loop is walked once.
    #[cfg(unix)]
    #[test]
    fn links_are_followed_with_loop_protection() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("models--acme--m");
        let blobs = repo.join("blobs");
        let snapshot = repo.join("snapshots").join("abc123");
        fs::create_dir_all(&blobs).unwrap();
        fs::create_dir_all(&snapshot).unwrap();
        fs::write(blobs.join("0f1e"), aegis_test_support::zip::PAYLOAD_PICKLE).unwrap();
        symlink("../../blobs/0f1e", snapshot.join("pytorch_model.bin")).unwrap();
        symlink("..", snapshot.join("loop")).unwrap();
        let out = Scanner::default().scan_paths(std::slice::from_ref(&snapshot), &());
        let rules = rules_of(&out);
        assert_eq!(out.stats.files, 1, "{rules:?}");
        assert!(rules.contains(&("AEG-SCAN-101".to_owned(), aegis_core::Severity::Critical)));
        assert!(rules.contains(&("AEG-SCAN-005".to_owned(), aegis_core::Severity::Low)));

        let host = dir.path().join("host_secret");
        fs::write(&host, b"root:x:0:0\n").unwrap();
        let model = dir.path().join("model");
        fs::create_dir(&model).unwrap();
        symlink(&host, model.join("weights.data")).unwrap();
        symlink("/etc/passwd", model.join("tokenizer.json")).unwrap();
        symlink("/", model.join("root")).unwrap();
        symlink(model.join("missing"), model.join("dangling")).unwrap();
        for i in 0..50 {
            symlink(&host, model.join(format!("copy{i}"))).unwrap();
        }
        let out = Scanner::default().scan_paths(std::slice::from_ref(&model), &());
        let rules = rules_of(&out);
        assert!(rules.contains(&("AEG-SCAN-005".to_owned(), aegis_core::Severity::Medium)));
        assert!(rules.contains(&("AEG-SCAN-005".to_owned(), aegis_core::Severity::High)));
        assert!(rules.iter().any(|(r, _)| r == "AEG-SCAN-001"), "{rules:?}");
        assert!(
            out.stats.files <= 2,
            "`/` is not walked and one file behind 51 links is scanned once: {}",
            out.stats.files
        );

        // Links that stay inside the tree are quiet.
        let inside = tempfile::tempdir().unwrap();
        fs::write(inside.path().join("a.pkl"), b"\x80\x04K\x01.").unwrap();
        symlink("a.pkl", inside.path().join("b.pkl")).unwrap();
        let out = Scanner::default().scan_paths(&[inside.path().to_path_buf()], &());
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert_eq!(out.stats.files, 2);
    }

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
