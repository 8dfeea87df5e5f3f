//! Walking paths and scanning files in parallel. Directories are walked without following symbolic links
//! (a link loop or a link out of the tree is not followed); files named on the command line are scanned even
//! when they are links. One file's failure is that file's finding, never the run's.

use std::fs;
use std::path::{Path, PathBuf};

use aegis_core::{Finding, Location};
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
}

/// Bound on directory nesting during the walk.
const MAX_WALK_DEPTH: usize = 64;

impl Scanner {
    /// Scan files and directories (recursively), in parallel, reporting progress.
    pub fn scan_paths(&self, paths: &[PathBuf], progress: &dyn Progress) -> ScanOutcome {
        let mut walk_findings = Vec::new();
        let mut files = Vec::new();
        for path in paths {
            collect(path, 0, true, &mut files, &mut walk_findings);
        }
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
        };
        for outcome in outcomes {
            result.findings.extend(outcome.findings);
            result.stats.merge(&outcome.stats);
        }
        result
    }
}

fn collect(
    path: &Path,
    depth: usize,
    explicit: bool,
    files: &mut Vec<(PathBuf, u64)>,
    findings: &mut Vec<Finding>,
) {
    let meta = if explicit {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    let meta = match meta {
        Ok(meta) => meta,
        Err(err) => {
            findings.push(crate::engine_rules::unreadable(
                Location::file(path.display().to_string()),
                &err.to_string(),
            ));
            return;
        }
    };
    if meta.is_file() {
        files.push((path.to_path_buf(), meta.len()));
    } else if meta.is_dir() {
        if depth >= MAX_WALK_DEPTH {
            return;
        }
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(err) => {
                findings.push(crate::engine_rules::unreadable(
                    Location::file(path.display().to_string()),
                    &err.to_string(),
                ));
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            collect(&child, depth + 1, false, files, findings);
        }
    }
}
