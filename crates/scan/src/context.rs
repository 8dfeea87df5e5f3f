//! [`Ctx`]: what a format module sees while scanning one blob: where it is (file, archive members), how deep
//! in nesting, the policy and limits, and a sink for findings. Format modules recurse into members and
//! nested payloads through [`Ctx::scan_member`] so depth bounds and locations stay right.

use aegis_core::{Finding, Location, RuleDoc, Severity};
use aegis_formats::{Blob, Limits};
use serde_json::Value;

use crate::{engine, Policy, Scanner};

/// Scanning context of one blob.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub(crate) scanner: &'a Scanner,
    pub(crate) location: Location,
    pub(crate) depth: usize,
    pub(crate) findings: &'a mut Vec<Finding>,
    pub(crate) stats: &'a mut engine::Stats,
    /// File name (last path component or member name) used for extension checks.
    pub(crate) name: String,
}

impl<'a> Ctx<'a> {
    /// Bounds for parsers.
    pub fn limits(&self) -> &Limits {
        &self.scanner.limits
    }

    /// The allow-list policy.
    pub fn policy(&self) -> &Policy {
        &self.scanner.policy
    }

    /// Where the current blob is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The current blob's file or member name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A location inside the current blob.
    pub fn at(&self, offset: u64) -> Location {
        self.location.clone().at_offset(offset)
    }

    /// Nesting depth (0 for a file given on the command line).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Record a finding.
    pub fn emit(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// Record a finding of `rule` at `offset` (or the whole blob) with a message and structured evidence.
    pub fn report(
        &mut self,
        rule: &RuleDoc,
        offset: Option<u64>,
        message: impl Into<String>,
        evidence: Value,
    ) {
        let location = match offset {
            Some(at) => self.at(at),
            None => self.location.clone(),
        };
        self.emit(Finding::new(rule, location, message).with_evidence(evidence));
    }

    /// Like [`Ctx::report`] with a severity other than the rule's default.
    pub fn report_at(
        &mut self,
        rule: &RuleDoc,
        severity: Severity,
        offset: Option<u64>,
        message: impl Into<String>,
        evidence: Value,
    ) {
        let location = match offset {
            Some(at) => self.at(at),
            None => self.location.clone(),
        };
        self.emit(
            Finding::new(rule, location, message)
                .with_evidence(evidence)
                .with_severity(severity),
        );
    }

    /// Record a parser's failure on the current blob: a bound hit is [`crate::engine_rules::LIMIT_HIT`], anything
    /// else is `otherwise` (usually [`crate::engine_rules::UNREADABLE`]). `what` names the operation.
    pub fn report_parse_error(
        &mut self,
        err: &aegis_formats::Error,
        otherwise: &RuleDoc,
        offset: Option<u64>,
        what: &str,
    ) {
        let rule = if err.is_limit() {
            &crate::engine_rules::LIMIT_HIT
        } else {
            otherwise
        };
        self.report(
            rule,
            offset,
            format!("{what}: {err}"),
            serde_json::json!({ "error": err.to_string() }),
        );
    }

    /// Number of findings recorded so far (a mark for [`Ctx::cap_findings`]).
    pub fn findings_len(&self) -> usize {
        self.findings.len()
    }

    /// Keep at most `max` findings per rule among those recorded since `mark` whose rule id starts with
    /// `prefix`; the rest collapse into one finding per rule that counts them (a crafted archive with
    /// thousands of bad members must not drown the report).
    pub fn cap_findings(&mut self, mark: usize, prefix: &str, max: usize) {
        let mut kept: std::collections::BTreeMap<String, usize> = Default::default();
        let mut dropped: std::collections::BTreeMap<String, (usize, Finding)> = Default::default();
        let tail: Vec<Finding> = self
            .findings
            .drain(mark.min(self.findings.len())..)
            .collect();
        for finding in tail {
            let rule = finding.rule.as_str().to_owned();
            if !rule.starts_with(prefix) {
                self.findings.push(finding);
                continue;
            }
            let count = kept.entry(rule.clone()).or_insert(0);
            if *count < max {
                *count += 1;
                self.findings.push(finding);
            } else {
                dropped.entry(rule).or_insert((0, finding)).0 += 1;
            }
        }
        for (rule, (count, first)) in dropped {
            let mut summary = first;
            summary.message =
                format!("{count} more finding(s) of {rule} in this archive (first {max} listed)");
            summary.location = self.location.clone();
            summary.evidence = serde_json::json!({ "omitted": count, "listed": max });
            self.findings.push(summary);
        }
    }

    /// Count bytes read for the run's metrics.
    pub fn add_bytes(&mut self, n: u64) {
        self.stats.bytes += n;
    }

    /// Scan a member of the current blob (archive member, nested payload) as a blob of its own: format
    /// detection, extension check and the format's rules, one level deeper. Depth overflow is a finding.
    /// Returns the number of findings the member produced.
    pub fn scan_member(&mut self, name: &str, blob: &mut dyn Blob, len: u64) -> usize {
        self.scan_member_with(name, blob, len, engine::scan_blob)
    }

    /// Scan the current blob from its start with the engine's format dispatch (a module that tried a layout of
    /// its own and found the blob does not follow it).
    pub(crate) fn scan_as_any_blob(&mut self, blob: &mut dyn Blob, len: u64) {
        if blob.seek(std::io::SeekFrom::Start(0)).is_ok() {
            engine::scan_blob(self, blob, len);
        }
    }

    /// Like [`Ctx::scan_member`], with `scan` in place of the engine's format dispatch (members whose
    /// layout the container defines, such as a legacy PyTorch tar's `storages`).
    pub(crate) fn scan_member_with(
        &mut self,
        name: &str,
        blob: &mut dyn Blob,
        len: u64,
        scan: impl FnOnce(&mut Ctx<'_>, &mut dyn Blob, u64),
    ) -> usize {
        let before = self.findings.len();
        let location = self.location.clone().member(name);
        if self.depth + 1 > self.limits().max_depth {
            let limit = self.limits().max_depth;
            self.emit(
                Finding::new(
                    &crate::engine_rules::LIMIT_HIT,
                    location,
                    format!("nesting deeper than {limit} levels; `{name}` was not scanned"),
                )
                .with_evidence(serde_json::json!({ "limit": "max_depth", "value": limit })),
            );
            return self.findings.len() - before;
        }
        let mut child = Ctx {
            scanner: self.scanner,
            location,
            depth: self.depth + 1,
            findings: self.findings,
            stats: self.stats,
            name: name.rsplit('/').next().unwrap_or(name).to_owned(),
        };
        scan(&mut child, blob, len);
        self.findings.len() - before
    }

    /// Scan in-memory bytes as a member (nested payloads, decompressed streams).
    pub fn scan_member_bytes(&mut self, name: &str, bytes: &[u8]) -> usize {
        let mut cursor = std::io::Cursor::new(bytes);
        self.scan_member(name, &mut cursor, bytes.len() as u64)
    }
}
