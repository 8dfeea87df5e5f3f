//! The HTML views of the reports that are not robustness or hardening: scan, audit, drift, privacy and
//! extraction. Each opens with what was measured, on what, and what to do, in plain words; then a chart with a
//! one-sentence takeaway and the data as a table; then the detail. Technical terms link to the "Terms used"
//! section at the end of the page, so the report explains itself offline. Every value is read leniently from
//! the report's JSON (a missing field is `–`), and no JSON is ever printed as such.

use std::fmt::Write as _;

use aegis_core::{Report, Severity};
use serde_json::Value;

use super::{
    arr, bar_chart, esc, line_chart, num, pct, short, text, ChartExtras, RefLine, Series, BLUE,
    GREEN,
};

/// Which view a report gets, from its command and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Scan,
    Audit,
    Drift,
    LiveDrift,
    Privacy,
    Extraction,
    Llm,
}

/// The view of `report`, if it has one here.
pub(super) fn kind(report: &Report) -> Option<Kind> {
    let m = &report.metrics;
    if m.get("drift").is_some_and(Value::is_object) {
        Some(Kind::Drift)
    } else if m
        .get("window")
        .is_some_and(|w| w.get("features").is_some_and(Value::is_array))
    {
        Some(Kind::LiveDrift)
    } else if m.get("privacy").is_some_and(Value::is_object) {
        Some(Kind::Privacy)
    } else if m.get("extraction").is_some_and(Value::is_object) {
        Some(Kind::Extraction)
    } else if m
        .get("llm")
        .is_some_and(|l| l.get("families").is_some_and(Value::is_array))
    {
        Some(Kind::Llm)
    } else if report.command == "scan" || report.command.starts_with("scan ") {
        Some(Kind::Scan)
    } else if report.command == "audit" || report.command.starts_with("audit ") {
        Some(Kind::Audit)
    } else {
        None
    }
}

/// Metric keys a view shows itself (left out of the generic table).
pub(super) fn consumed(kind: Kind, key: &str) -> bool {
    match kind {
        Kind::Scan => matches!(key, "checked" | "files" | "bytes" | "formats" | "excluded"),
        Kind::Audit => matches!(
            key,
            "rows" | "flagged_rows" | "flagged_by_kind" | "balance" | "backdoor" | "timings_ms"
        ),
        Kind::Drift => key == "drift",
        Kind::LiveDrift => matches!(key, "window" | "rows"),
        Kind::Privacy => key == "privacy",
        Kind::Extraction => key == "extraction",
        Kind::Llm => key == "llm",
    }
}

/// A link to a term's explanation in the "Terms used" section.
fn term(id: &str, shown: &str) -> String {
    format!("<a href=\"#term-{id}\">{}</a>", esc(shown))
}

/// The terms each view may use, with their explanations.
const TERMS: &[(&str, &str, &str)] = &[
    ("pickle", "pickle", "Python's object format. Loading a pickle runs whatever functions it names, so a pickle from an untrusted source can run any command on the machine that loads it."),
    ("gadget", "gadget", "A function a malicious file calls to do harm when loaded, such as os.system (run a shell command)."),
    ("psi", "PSI (population stability index)", "How much a column's distribution moved between two datasets: below 0.1 little, 0.1–0.25 some, above 0.25 a large change."),
    ("ks", "KS test", "The Kolmogorov–Smirnov test: the largest gap between two cumulative distributions, and how likely a gap that large is by chance."),
    ("chi-square", "chi-square test", "Tests whether category counts in two datasets could come from the same distribution."),
    ("p-value", "p-value", "The probability of a difference at least this large if nothing had changed. Small (below the chosen α) means the change is unlikely to be chance."),
    ("auc", "AUC", "Area under the ROC curve: 0.5 means the attack guesses no better than a coin, 1.0 means it always tells members from non-members."),
    ("roc", "ROC curve", "For every threshold, the share of training records an attack flags (true-positive rate) against the share of other records it flags by mistake (false-positive rate)."),
    ("tpr-at-fpr", "TPR at low FPR", "How many training records the attack identifies while almost never accusing a record that was not in training: the measure that matters for privacy."),
    ("membership", "membership inference", "An attack that tells whether a given person's record was in the training data, from the model's answers alone."),
    ("fidelity", "fidelity", "The share of inputs on which a copied (surrogate) model gives the same answer as the original."),
    ("prada", "PRADA", "A detector that watches one client's queries and raises an alarm when their spacing looks like systematic probing rather than normal use."),
    ("outlier", "outlier", "A row unlike the rest of the data: a typo, a sensor fault, or a planted record."),
    ("label-issue", "label issue", "A row whose label disagrees with what a model trained on the other rows predicts with confidence: a likely mislabelled or flipped row."),
    ("trigger", "backdoor trigger", "A small pattern (a value or combination of values) that makes rows take one label regardless of the rest: what data poisoning plants so a model obeys the attacker."),
    ("support", "support", "How many rows match a rule."),
    ("purity", "purity", "The share of rows matching a rule that carry its label."),
    ("canary", "canary", "A random marker placed in the system prompt of each request: an answer that repeats it, in any spelling or encoding, has leaked the prompt."),
    ("oracle", "exact oracle", "A check that tells for certain whether an attack worked (the canary came back, the model said the string it was told to say), instead of guessing from the answer's tone."),
];

/// Every term as Markdown (docs/glossary.md is this; a test keeps them equal).
pub(crate) fn glossary_markdown() -> String {
    let mut md = String::from(
        "# Terms used in Aegis reports\n\nEvery HTML report and the console explain the terms they use in a \"Terms used\" \
         section; this page lists them all. Generated from `crates/report/src/html/views.rs`.\n\n",
    );
    for (id, name, text) in TERMS {
        let _ = write!(md, "<a id=\"term-{id}\"></a>\n**{name}**: {text}\n\n");
    }
    md
}

/// The "Terms used" section for the terms a page linked to.
pub(super) fn glossary(h: &mut String) {
    let used: Vec<&(&str, &str, &str)> = TERMS
        .iter()
        .filter(|(id, _, _)| h.contains(&format!("href=\"#term-{id}\"")))
        .collect();
    if used.is_empty() {
        return;
    }
    h.push_str("<h2>Terms used</h2>\n<dl class=\"terms\">\n");
    for (id, name, text) in used {
        let _ = writeln!(
            h,
            "<dt id=\"term-{id}\">{}</dt><dd>{}</dd>",
            esc(name),
            esc(text)
        );
    }
    h.push_str(
        "</dl>\n<p class=\"muted\">Every term Aegis reports use: <code>docs/glossary.md</code>.</p>\n",
    );
}

/// A `<figure>`: the chart, a one-sentence takeaway, and the data as a table for screen readers.
fn figure(h: &mut String, svg: &str, caption: &str, head: &[&str], rows: &[Vec<String>]) {
    h.push_str("<figure>");
    h.push_str(svg);
    let _ = write!(h, "<figcaption>{}</figcaption>", esc(caption));
    if !rows.is_empty() {
        h.push_str("<details><summary>The data as a table</summary><table><thead><tr>");
        for c in head {
            let _ = write!(h, "<th>{}</th>", esc(c));
        }
        h.push_str("</tr></thead><tbody>");
        for r in rows {
            h.push_str("<tr>");
            for v in r {
                let _ = write!(h, "<td>{}</td>", esc(v));
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table></details>");
    }
    h.push_str("</figure>\n");
}

fn worst(report: &Report) -> Option<Severity> {
    report.findings.iter().map(|f| f.severity).max()
}

/// The opening paragraph: what was measured, on what, and what to do.
pub(super) fn lede(h: &mut String, report: &Report, kind: Kind) {
    let target = esc(&report.target.join(", "));
    let serious = worst(report).is_some_and(|s| s >= Severity::High);
    let n = report.findings.len();
    let (what, verdict) = match kind {
        Kind::Scan => {
            let files = report
                .metrics
                .get("files")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            (
                format!(
                    "Aegis read {files} file(s) in <code>{target}</code> as data, without loading them, looking for code \
                     that would run when a model is loaded (for example in a {}).",
                    term("pickle", "pickle")
                ),
                if n == 0 {
                    "<p class=\"verdict good\">Nothing dangerous was found: these files can be loaded as far as hidden code is concerned.</p>".to_string()
                } else if serious {
                    "<p class=\"verdict bad\">Do not load the files listed below until each finding is resolved: loading them could run an attacker's commands.</p>".to_string()
                } else {
                    "<p class=\"verdict warn\">Nothing would run an attacker's code, but some findings below deserve a look.</p>".to_string()
                },
            )
        }
        Kind::Audit => {
            let rows = report
                .metrics
                .get("rows")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let flagged = report
                .metrics
                .get("flagged_rows")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            (
                format!(
                    "Aegis checked the {rows} rows of <code>{target}</code> for signs of poisoning before a model learns from them: \
                     flipped labels ({}), {}s, duplicates, and {}s.",
                    term("label-issue", "label issues"),
                    term("outlier", "outlier"),
                    term("trigger", "backdoor trigger")
                ),
                if flagged == 0 && n == 0 {
                    "<p class=\"verdict good\">No row looks poisoned or mislabelled.</p>".to_string()
                } else {
                    format!(
                        "<p class=\"verdict {}\">{flagged} row(s) are flagged ({}). Review them below before training; remove or fix the ones that are wrong.</p>",
                        if serious { "bad" } else { "warn" },
                        pct(flagged as f64 / rows.max(1) as f64)
                    )
                },
            )
        }
        Kind::Drift => {
            let d = &report.metrics["drift"];
            let drifted = d["drifted"].as_u64().unwrap_or(0);
            let tested = d["tested"].as_u64().unwrap_or(0);
            (
                format!(
                    "Aegis compared each column of the current data (<code>{}</code>, {} rows) with the reference data the model \
                     was built for (<code>{}</code>, {} rows), with a statistical test per column and the {}.",
                    esc(&text(d, "current")),
                    d["current_rows"].as_u64().unwrap_or(0),
                    esc(&text(d, "reference")),
                    d["reference_rows"].as_u64().unwrap_or(0),
                    term("psi", "PSI")
                ),
                if drifted == 0 {
                    format!("<p class=\"verdict good\">None of the {tested} columns changed: the model sees the data it was built for.</p>")
                } else {
                    format!(
                        "<p class=\"verdict bad\">{drifted} of {tested} columns changed. The model's accuracy on today's data is unknown: \
                         evaluate it on recent labelled data and retrain if it dropped. The changed columns come first below.</p>"
                    )
                },
            )
        }
        Kind::LiveDrift => {
            let w = &report.metrics["window"];
            let inputs: Vec<&Value> = arr(w, "features")
                .iter()
                .filter(|f| f["name"] != "prediction")
                .collect();
            let changed = inputs.iter().filter(|f| f["drifted"] == true).count();
            (
                format!(
                    "Aegis compared the last {} rows of live traffic to <code>{target}</code> with the model's reference \
                     data, input by input, with a statistical test and the {}.",
                    w["rows"].as_u64().unwrap_or(0),
                    term("psi", "PSI")
                ),
                if changed == 0 {
                    "<p class=\"verdict good\">Live inputs look like the reference data.</p>".to_string()
                } else {
                    format!(
                        "<p class=\"verdict bad\">{changed} of {} inputs changed. The model may be wrong more often on today's \
                         traffic: find out why the inputs moved, evaluate it on recent labelled data, and retrain if needed.</p>",
                        inputs.len()
                    )
                },
            )
        }
        Kind::Privacy => {
            let p = &report.metrics["privacy"];
            let full = arr(p, "policies").first().cloned().unwrap_or(Value::Null);
            let auc = max_auc(&full);
            (
                format!(
                    "Aegis played an attacker who has the model's answers and wants to know whether a given person's record was in \
                     the training data ({}). It attacked {} training and {} other records of <code>{target}</code>.",
                    term("membership", "membership inference"),
                    p["members_given"].as_u64().unwrap_or(0),
                    p["non_members_given"].as_u64().unwrap_or(0)
                ),
                if !auc.is_finite() {
                    "<p class=\"verdict warn\">No attack could be measured: the report holds no AUC. Run the assessment again and read its errors.</p>".to_string()
                } else if auc < 0.6 {
                    format!("<p class=\"verdict good\">The attack does little better than guessing (best {} {:.2}).</p>", term("auc", "AUC"), auc)
                } else {
                    format!(
                        "<p class=\"verdict bad\">The attack tells training records apart (best {} {:.2}). Return fewer details \
                         (only the label, or rounded scores: see the policy table) or retrain with differential privacy.</p>",
                        term("auc", "AUC"),
                        auc
                    )
                },
            )
        }
        Kind::Extraction => {
            let e = &report.metrics["extraction"];
            let best = arr(e, "curves")
                .iter()
                .flat_map(|c| arr(c, "points"))
                .map(|p| num(p, "fidelity"))
                .filter(|f| f.is_finite())
                .fold(f64::NAN, f64::max);
            (
                format!(
                    "Aegis played a thief who queries <code>{}</code> and trains a copy from its answers, and measured how close \
                     the copy gets ({}) for each number of queries, and whether the {} detector notices.",
                    esc(&text(e, "model")),
                    term("fidelity", "fidelity"),
                    term("prada", "PRADA")
                ),
                if !best.is_finite() {
                    "<p class=\"verdict warn\">No copy was measured: the report holds no fidelity curve. Run the assessment again and read its errors.</p>".to_string()
                } else if best >= 0.9 {
                    format!(
                        "<p class=\"verdict bad\">A copy agreeing on {} of answers was built. Limit each key's queries, return fewer \
                         details, and turn on the gateway's extraction detector.</p>",
                        pct(best)
                    )
                } else {
                    format!("<p class=\"verdict good\">No copy came close: the best agreed on {} of answers.</p>", pct(best))
                },
            )
        }
        Kind::Llm => {
            let l = &report.metrics["llm"];
            let families = arr(l, "families");
            let hit: Vec<String> = families
                .iter()
                .filter(|f| num(f, "successes") > 0.0)
                .map(|f| esc(&text(f, "family")))
                .collect();
            let untested = arr(l, "untested").len();
            let undetermined: f64 = families.iter().map(|f| num(f, "undetermined")).sum();
            (
                format!(
                    "Aegis played an attacker against the LLM endpoint <code>{}</code> (model <code>{}</code>): {} requests                      in {} families of prompt injection, jailbreaks and data leaks, each answer judged by an {} (a {} in                      the system prompt, a string the model was told to say, planted personal data, an exfiltration link).",
                    esc(&text(l, "target")),
                    esc(&text(l, "model")),
                    text(l, "requests"),
                    families.len(),
                    term("oracle", "exact oracle"),
                    term("canary", "canary")
                ),
                {
                    let mut v = if hit.is_empty() {
                        format!(
                            "<p class=\"verdict good\">No attack that Aegis could judge worked ({undetermined} answer(s) could \
                             not be judged and are not counted).</p>"
                        )
                    } else {
                        format!(
                            "<p class=\"verdict bad\">The model did what an attacker asked in {} of {} families: {}. Put \
                             <code>aegis serve</code>'s LLM guard in front of it (block mode, canary cut, answers redacted) and \
                             keep secrets out of its system prompt.</p>",
                            hit.len(),
                            families.len(),
                            hit.join(", ")
                        )
                    };
                    if untested > 0 {
                        let _ = write!(
                            v,
                            "<p class=\"verdict warn\">{untested} family(ies) were not tested: the request budget ran out. \
                             Run again with a larger --max-requests.</p>"
                        );
                    }
                    v
                },
            )
        }
    };
    let _ = writeln!(h, "<p class=\"lede\">{what}</p>\n{verdict}");
}

// ----------------------------------------------------------------------------------------------- llm

pub(super) fn llm(h: &mut String, report: &Report) {
    let l = &report.metrics["llm"];
    let families = arr(l, "families");
    let labels: Vec<String> = families.iter().map(|f| text(f, "family")).collect();
    let rates: Vec<f64> = families
        .iter()
        .map(|f| 100.0 * num(f, "success_rate").clamp(0.0, 1.0))
        .collect();
    h.push_str("<h2>Attacks that worked, by family</h2>\n");
    let rows: Vec<Vec<String>> = families
        .iter()
        .map(|f| {
            vec![
                text(f, "family"),
                text(f, "sent"),
                text(f, "successes"),
                text(f, "resisted"),
                text(f, "undetermined"),
                text(f, "errors"),
                pct(num(f, "success_rate")),
                format!("{} {}", text(f, "atlas"), text(f, "owasp")),
            ]
        })
        .collect();
    figure(
        h,
        &crate::charts::columns(
            "Share of judged probes that succeeded, per family",
            &labels,
            &[("succeeded", "#b91c1c", rates)],
            "% of judged probes",
        ),
        "Each column is one kind of attack; its height is the share of probes the model fell for, among those an \
         oracle could judge.",
        &[
            "family",
            "sent",
            "succeeded",
            "resisted",
            "undetermined",
            "errors",
            "success rate",
            "references",
        ],
        &rows,
    );
    let successes: Vec<&Value> = arr(l, "probes")
        .iter()
        .filter(|p| p["outcome"] == "success")
        .take(20)
        .collect();
    if !successes.is_empty() {
        h.push_str("<h2>What the model answered</h2>\n<table><thead><tr><th>family</th><th>probe</th><th>streamed</th><th>oracle</th><th>answer (start)</th></tr></thead><tbody>\n");
        for p in successes {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&text(p, "family")),
                esc(&text(p, "probe")),
                if p["streamed"] == true { "yes" } else { "no" },
                esc(&text(p, "oracle")),
                esc(&text(p, "answer").chars().take(200).collect::<String>())
            );
        }
        h.push_str("</tbody></table>\n");
    }
}

// ----------------------------------------------------------------------------------------------- scan

pub(super) fn scan(h: &mut String, report: &Report) {
    let checked: &[Value] = report
        .metrics
        .get("checked")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    h.push_str("<h2>Files checked</h2>\n");
    if checked.is_empty() {
        let files = report
            .metrics
            .get("files")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let _ = writeln!(h, "<p>{files} file(s) were checked.</p>");
    } else {
        h.push_str("<table><thead><tr><th>File</th><th class=\"num\">Size</th><th>Verdict</th></tr></thead><tbody>\n");
        for f in checked {
            let n = f["findings"].as_u64().unwrap_or(0);
            let verdict = match f["worst"].as_str() {
                None => "<span class=\"ok\">clean</span>".to_string(),
                Some(sev) => format!(
                    "<span class=\"badge sev-{0}\">{0}</span> {n} finding(s)",
                    esc(sev)
                ),
            };
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td>{verdict}</td></tr>",
                esc(&text(f, "path")),
                bytes(f["bytes"].as_u64().unwrap_or(0))
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if let Some(formats) = report.metrics.get("formats").and_then(Value::as_object) {
        let list: Vec<String> = formats
            .iter()
            .map(|(k, v)| format!("{} × {}", v.as_u64().unwrap_or(0), esc(k)))
            .collect();
        if !list.is_empty() {
            let _ = writeln!(
                h,
                "<p class=\"muted\">Formats read (archive members included): {}.</p>",
                list.join(", ")
            );
        }
    }
    if report.findings.is_empty() {
        return;
    }
    // Findings grouped by file, with the call a loader would make.
    h.push_str("<h2>What would run, file by file</h2>\n");
    let mut files: Vec<String> = report
        .findings
        .iter()
        .map(|f| f.location.root().to_string())
        .collect();
    files.dedup();
    files.sort();
    files.dedup();
    for file in files {
        let _ = writeln!(h, "<h3><code>{}</code></h3>\n<ul>", esc(&file));
        for f in report.findings.iter().filter(|f| f.location.root() == file) {
            let call = f.evidence.get("callable").and_then(Value::as_str);
            let args = f
                .evidence
                .get("call")
                .and_then(|c| c.get("args"))
                .and_then(Value::as_str);
            let what = match (call, args) {
                (Some(c), Some(a)) => format!(
                    " — calls <code>{}</code> with <code>{}</code>",
                    esc(c),
                    esc(a)
                ),
                (Some(c), None) => format!(" — imports <code>{}</code>", esc(c)),
                _ => String::new(),
            };
            let _ = writeln!(
                h,
                "<li><span class=\"badge sev-{0}\">{0}</span> {1}{what} <span class=\"muted\">({2}, {3})</span></li>",
                f.severity.as_str(),
                esc(&f.title),
                esc(f.rule.as_str()),
                esc(&f.location.to_string())
            );
        }
        h.push_str("</ul>\n");
    }
    let _ = writeln!(
        h,
        "<p class=\"muted\">A {} is a function such a file calls to do harm.</p>",
        term("gadget", "gadget")
    );
}

/// Four significant digits, for statistics people compare by eye.
fn sig(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 8) as usize;
    format!("{v:.digits$}")
}

/// A p-value: three decimals, or `< 0.001`.
fn p_text(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

fn bytes(b: u64) -> String {
    match b {
        0..=1023 => format!("{b} B"),
        1024..=1_048_575 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    }
}

// ----------------------------------------------------------------------------------------------- audit

pub(super) fn audit(h: &mut String, report: &Report) {
    let m = &report.metrics;
    let rows = m.get("rows").and_then(Value::as_u64).unwrap_or(0).max(1) as f64;
    if let Some(kinds) = m.get("flagged_by_kind").and_then(Value::as_object) {
        let mut bars: Vec<(String, f64)> = kinds
            .iter()
            .map(|(k, v)| (k.replace('-', " "), v.as_f64().unwrap_or(0.0) / rows))
            .collect();
        bars.sort_by(|a, b| b.1.total_cmp(&a.1));
        if !bars.is_empty() {
            h.push_str("<h2>Flagged rows by kind of problem</h2>\n");
            let top = bars.first().cloned().unwrap_or_default();
            let table: Vec<Vec<String>> = bars
                .iter()
                .map(|(k, v)| vec![k.clone(), format!("{:.0}", v * rows), pct(*v)])
                .collect();
            figure(
                h,
                &bar_chart("Share of rows flagged, by kind", &bars),
                &format!(
                    "Most flagged rows are {} ({} of all rows).",
                    top.0,
                    pct(top.1)
                ),
                &["kind", "rows", "share"],
                &table,
            );
        }
    }
    flagged_rows(h, report);
    let backdoor = m.get("backdoor");
    let candidates = backdoor
        .map(|b| arr(b, "backdoor_candidates"))
        .unwrap_or(&[]);
    if !candidates.is_empty() {
        let _ = writeln!(
            h,
            "<h2>Possible {} rules</h2>\n<p>Each rule is a pattern of values and the label that rows with it carry; a planted \
             trigger has high {} on a label that the rest of the data does not predict.</p>",
            term("trigger", "backdoor trigger"),
            term("purity", "purity")
        );
        let _ = writeln!(
            h,
            "<table><thead><tr><th>Rule</th><th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">Confidence</th></tr></thead><tbody>",
            term("support", "Support"),
            term("purity", "Purity")
        );
        for c in candidates.iter().take(10) {
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&text(c, "rule")),
                short(num(c, "support")),
                pct(num(c, "purity")),
                pct(num(c, "confidence"))
            );
        }
        h.push_str("</tbody></table>\n");
    }
    let counts = m
        .get("balance")
        .and_then(|b| b.get("balance.class_counts"))
        .and_then(Value::as_object);
    if let Some(counts) = counts {
        let total: f64 = counts
            .values()
            .filter_map(Value::as_f64)
            .sum::<f64>()
            .max(1.0);
        let bars: Vec<(String, f64)> = counts
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0) / total))
            .collect();
        let smallest = bars
            .iter()
            .cloned()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or_default();
        h.push_str("<h2>Class balance</h2>\n");
        let table: Vec<Vec<String>> = bars
            .iter()
            .map(|(k, v)| vec![k.clone(), format!("{:.0}", v * total), pct(*v)])
            .collect();
        figure(
            h,
            &bar_chart("Share of rows per label", &bars),
            &format!(
                "The rarest label, {}, has {} of the rows.",
                smallest.0,
                pct(smallest.1)
            ),
            &["label", "rows", "share"],
            &table,
        );
    }
}

/// The rows findings flag, with why: one table per finding that lists rows.
fn flagged_rows(h: &mut String, report: &Report) {
    let mut any = false;
    for f in &report.findings {
        let e = &f.evidence;
        let mut lines: Vec<(String, String)> = Vec::new();
        for r in arr(e, "rows").iter().take(20) {
            if let (Some(row), Some(g), Some(sug)) =
                (r.get("row"), r.get("given"), r.get("suggested"))
            {
                let why = format!(
                    "labelled {} but looks like {} ({} confident)",
                    super::plain(g),
                    super::plain(sug),
                    pct(num(r, "confidence"))
                );
                lines.push((super::plain(row), why));
            }
        }
        for r in arr(e, "top").iter().take(20) {
            let columns: Vec<String> = arr(r, "extreme_columns")
                .iter()
                .map(|c| format!("{} = {}", text(c, "column"), text(c, "value")))
                .collect();
            let why = if columns.is_empty() {
                format!("unusual (score {})", short(num(r, "score")))
            } else {
                format!("unusual values: {}", columns.join(", "))
            };
            lines.push((text(r, "row"), why));
        }
        for ex in arr(e, "examples").iter().take(10) {
            let rows: Vec<String> = arr(ex, "rows").iter().map(super::plain).collect();
            if !rows.is_empty() {
                lines.push((
                    rows.join(", "),
                    format!("identical or near-identical rows{}", {
                        let labels: Vec<String> =
                            arr(ex, "labels").iter().map(super::plain).collect();
                        if labels.is_empty() {
                            String::new()
                        } else {
                            format!(" with labels {}", labels.join(", "))
                        }
                    }),
                ));
            }
        }
        if lines.is_empty() {
            // Only row numbers: list them with the finding's own words.
            let rows: Vec<String> = arr(e, "rows")
                .iter()
                .take(40)
                .filter_map(|r| r.as_u64())
                .map(|r| r.to_string())
                .collect();
            if !rows.is_empty() {
                lines.push((rows.join(", "), f.message.clone()));
            }
        }
        if lines.is_empty() {
            continue;
        }
        if !any {
            h.push_str("<h2>Flagged rows, and why</h2>\n<p class=\"muted\">Row numbers count data rows from 0, the header excluded, as in <code>aegis audit --flags</code>.</p>\n");
            any = true;
        }
        let _ = writeln!(
            h,
            "<h3><span class=\"badge sev-{0}\">{0}</span> {1}</h3>\n<table><thead><tr><th>Row(s)</th><th>Why</th></tr></thead><tbody>",
            f.severity.as_str(),
            esc(&f.title)
        );
        for (row, why) in lines {
            let _ = writeln!(
                h,
                "<tr><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&row),
                esc(&why)
            );
        }
        h.push_str("</tbody></table>\n");
    }
}

// ----------------------------------------------------------------------------------------------- drift

pub(super) fn drift(h: &mut String, report: &Report) {
    let d = &report.metrics["drift"];
    let mut columns: Vec<&Value> = arr(d, "columns").iter().collect();
    columns.sort_by(|a, b| {
        (b["drifted"] == true)
            .cmp(&(a["drifted"] == true))
            .then(num(b, "psi").total_cmp(&num(a, "psi")))
    });
    let _ = writeln!(
        h,
        "<h2>Every column</h2>\n<table><thead><tr><th>Column</th><th>Kind</th><th>Test</th><th class=\"num\">Statistic</th>\
         <th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">Missing (ref → now)</th><th>Verdict</th></tr></thead><tbody>",
        term("p-value", "p-value"),
        term("psi", "PSI")
    );
    for c in &columns {
        let test = match c["test"].as_str() {
            Some("ks") => term("ks", "KS"),
            Some("chi_square") => term("chi-square", "chi-square"),
            Some(other) => esc(other),
            None => "–".into(),
        };
        let p = c
            .get("pvalue_corrected")
            .filter(|v| !v.is_null())
            .or_else(|| c.get("pvalue"));
        let verdict = if c["drifted"] == true {
            "<span class=\"bad\">changed</span>".to_string()
        } else if c.get("note").is_some_and(|n| !n.is_null()) {
            esc(&text(c, "note"))
        } else {
            "<span class=\"ok\">as before</span>".to_string()
        };
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{test}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{} → {}</td><td>{verdict}</td></tr>",
            esc(&text(c, "name")),
            esc(&text(c, "kind")),
            sig(num(c, "statistic")),
            p.and_then(Value::as_f64).map_or("–".into(), p_text),
            sig(num(c, "psi")),
            pct(num(c, "reference_missing_share")),
            pct(num(c, "current_missing_share")),
        );
    }
    h.push_str("</tbody></table>\n");
    let drifted: Vec<&&Value> = columns.iter().filter(|c| c["drifted"] == true).collect();
    for c in drifted.iter().take(20) {
        distribution_figure(h, c);
    }
    if let Some(p) = d.get("prediction").filter(|p| p.is_object()) {
        let r: Vec<f64> = arr(p, "reference_counts")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let c: Vec<f64> = arr(p, "current_counts")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let share = |v: &[f64]| {
            let t: f64 = v.iter().sum::<f64>().max(1.0);
            v.iter().map(|x| 100.0 * x / t).collect::<Vec<f64>>()
        };
        let labels: Vec<String> = (0..r.len()).map(|i| format!("class {i}")).collect();
        h.push_str("<h2>The model's answers</h2>\n");
        figure(
            h,
            &crate::charts::columns(
                "Predicted classes: reference and current",
                &labels,
                &[
                    ("reference", "#8c959f", share(&r)),
                    ("current", "#b91c1c", share(&c)),
                ],
                "% of rows",
            ),
            &if p["drifted"] == true {
                format!(
                    "The mix of the model's answers changed (PSI {}).",
                    short(num(p, "psi"))
                )
            } else {
                "The mix of the model's answers is as on the reference data.".to_string()
            },
            &["class", "reference", "current"],
            &labels
                .iter()
                .zip(share(&r).iter().zip(share(&c).iter()))
                .map(|(l, (a, b))| vec![l.clone(), format!("{a:.1}%"), format!("{b:.1}%")])
                .collect::<Vec<_>>(),
        );
    }
}

/// One changed column's reference and current distributions, with the bin that moved most as the takeaway.
fn distribution_figure(h: &mut String, c: &Value) {
    let Some(hist) = c.get("histogram").filter(|v| v.is_object()) else {
        return;
    };
    let labels: Vec<String> = arr(hist, "labels").iter().map(super::plain).collect();
    let counts = |key: &str| -> Vec<f64> {
        arr(hist, key)
            .iter()
            .map(|v| v.as_f64().unwrap_or(0.0))
            .collect()
    };
    let (r, cur) = (counts("reference"), counts("current"));
    let share = |v: &[f64]| {
        let t: f64 = v.iter().sum::<f64>().max(1.0);
        v.iter().map(|x| 100.0 * x / t).collect::<Vec<f64>>()
    };
    let (rs, cs) = (share(&r), share(&cur));
    // The bin that moved most, for the takeaway.
    let moved = rs
        .iter()
        .zip(&cs)
        .enumerate()
        .max_by(|a, b| (a.1 .1 - a.1 .0).abs().total_cmp(&(b.1 .1 - b.1 .0).abs()))
        .map(|(i, (a, b))| (labels.get(i).cloned().unwrap_or_default(), *a, *b));
    let name = text(c, "name");
    let _ = writeln!(h, "<h3>Column <code>{}</code></h3>", esc(&name));
    let svg = crate::charts::columns(
        &format!("{name}: reference and current distributions"),
        &labels,
        &[
            ("reference", "#8c959f", rs.clone()),
            ("current", "#b91c1c", cs.clone()),
        ],
        "% of rows",
    );
    let caption =
        match moved {
            Some((bin, a, b)) => format!(
            "The biggest move is in {bin}: {a:.1}% of reference rows, {b:.1}% now (PSI {}, p {}).",
            sig(num(c, "psi")),
            c.get("pvalue_corrected")
                .filter(|v| !v.is_null())
                .or_else(|| c.get("pvalue"))
                .and_then(Value::as_f64).map_or("–".into(), |p| {
                let t = p_text(p);
                if t.starts_with('<') { t } else { format!("= {t}") }
            })
        ),
            None => "The two distributions.".into(),
        };
    let table: Vec<Vec<String>> = labels
        .iter()
        .zip(rs.iter().zip(&cs))
        .map(|(l, (a, b))| vec![l.clone(), format!("{a:.1}%"), format!("{b:.1}%")])
        .collect();
    figure(h, &svg, &caption, &["bin", "reference", "current"], &table);
}

/// A closed window of live traffic (the gateway's drift record): each input and the model's answers against the
/// reference, and the distributions of the ones that changed.
pub(super) fn live_drift(h: &mut String, report: &Report) {
    let w = &report.metrics["window"];
    let features = arr(w, "features");
    let _ = writeln!(
        h,
        "<h2>Every input</h2>\n<table><thead><tr><th>Input</th><th class=\"num\">Statistic</th><th class=\"num\">{}</th>\
         <th class=\"num\">{}</th><th>Verdict</th></tr></thead><tbody>",
        term("p-value", "p-value"),
        term("psi", "PSI")
    );
    let mut sorted: Vec<&Value> = features.iter().collect();
    sorted.sort_by(|a, b| {
        (b["drifted"] == true)
            .cmp(&(a["drifted"] == true))
            .then(num(b, "psi").total_cmp(&num(a, "psi")))
    });
    for f in &sorted {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&text(f, "name")),
            sig(num(f, "statistic")),
            f.get("pvalue").and_then(Value::as_f64).map_or("–".into(), p_text),
            sig(num(f, "psi")),
            if f["drifted"] == true { "<span class=\"bad\">changed</span>" } else { "<span class=\"ok\">as expected</span>" }
        );
    }
    h.push_str("</tbody></table>\n");
    for f in sorted.iter().filter(|f| f["drifted"] == true).take(20) {
        distribution_figure(h, f);
    }
}

// ----------------------------------------------------------------------------------------------- privacy

fn max_auc(policy: &Value) -> f64 {
    ["loss", "confidence"]
        .iter()
        .map(|k| num(&policy[*k], "auc"))
        .chain(std::iter::once(num(
            &policy["population"]["metrics"],
            "auc",
        )))
        .filter(|v| v.is_finite())
        .fold(f64::NAN, f64::max)
}

pub(super) fn privacy(h: &mut String, report: &Report) {
    let p = &report.metrics["privacy"];
    let policies = arr(p, "policies");
    let Some(full) = policies.first() else {
        return;
    };
    // The strongest attack on the full answers, drawn with a log-scale false-positive axis.
    let attacks = [
        ("loss", "loss attack", BLUE),
        ("confidence", "confidence attack", GREEN),
    ];
    let mut series = Vec::new();
    let mut rows = Vec::new();
    for (key, name, colour) in attacks {
        let roc = arr(&full[key], "roc");
        let points: Vec<(f64, f64)> = roc
            .iter()
            .filter_map(|pt| Some((pt.get(0)?.as_f64()?, pt.get(1)?.as_f64()?)))
            .map(|(fpr, tpr)| (fpr.max(1e-4).log10(), tpr))
            .collect();
        if points.is_empty() {
            continue;
        }
        // 0.1% and 1% are the attack's own rates (from the full curve); 10% is read off the drawn curve, which
        // keeps the last point of every 1% step above 1% false positives.
        let at_10 = roc
            .iter()
            .filter_map(|pt| Some((pt.get(0)?.as_f64()?, pt.get(1)?.as_f64()?)))
            .filter(|(f, _)| *f <= 0.1)
            .map(|(_, tp)| tp)
            .fold(0.0, f64::max);
        rows.push(vec![
            name.to_string(),
            pct(0.001),
            pct(num(&full[key], "tpr_at_01pct_fpr")),
        ]);
        rows.push(vec![
            name.to_string(),
            pct(0.01),
            pct(num(&full[key], "tpr_at_1pct_fpr")),
        ]);
        rows.push(vec![name.to_string(), pct(0.1), pct(at_10)]);
        series.push(Series {
            name: format!("{name} (AUC {:.2})", num(&full[key], "auc")),
            colour,
            points,
            labels: false,
        });
    }
    series.push(Series {
        name: "guessing".into(),
        colour: "#8c959f",
        points: (-40..=0)
            .map(|i| i as f64 / 10.0)
            .map(|x| (x, 10f64.powf(x)))
            .collect(),
        labels: false,
    });
    let _ = writeln!(
        h,
        "<h2>How well the attack tells training records apart</h2>\n<p>The {} shows, for each threshold, the share of training \
         records the attacker identifies against the share of other records accused by mistake. The left side matters \
         most: a curve above the dotted \"guessing\" line at 0.1% or 1% false positives means individuals can be \
         singled out ({}).</p>",
        term("roc", "ROC curve"),
        term("tpr-at-fpr", "TPR at low FPR")
    );
    let svg = line_chart(
        &series,
        "false-positive rate, log scale (−3 = 0.1%, −2 = 1%, −1 = 10%, 0 = 100%)",
        "training records identified",
        &ChartExtras {
            title: "ROC curve of the membership attacks (log-scale false-positive rate)".into(),
            ..ChartExtras::default()
        },
    );
    let best_low =
        num(&full["loss"], "tpr_at_1pct_fpr").max(num(&full["confidence"], "tpr_at_1pct_fpr"));
    figure(
        h,
        &svg,
        &format!(
            "At 1% false positives the best attack identifies {} of training records.",
            pct(best_low)
        ),
        &[
            "attack",
            "false-positive rate",
            "training records identified",
        ],
        &rows,
    );
    // What each output policy leaves an attacker.
    h.push_str("<h2>What each way of answering leaves an attacker</h2>\n<table><thead><tr><th>The model returns</th>\
                <th class=\"num\">Best AUC</th><th class=\"num\">Identified at 1% FPR</th><th>Verdict</th></tr></thead><tbody>\n");
    for pol in policies {
        let auc = max_auc(pol);
        let low =
            num(&pol["loss"], "tpr_at_1pct_fpr").max(num(&pol["confidence"], "tpr_at_1pct_fpr"));
        let name = text(pol, "policy");
        let plain_name = match name.as_str() {
            "full" => "all probabilities (full)".to_string(),
            "label" => "only the label".to_string(),
            other => other.to_string(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&plain_name),
            if auc.is_finite() {
                format!("{auc:.3}")
            } else {
                "–".into()
            },
            pct(low),
            if !auc.is_finite() {
                "not measured"
            } else if auc < 0.6 {
                "<span class=\"ok\">little leaks</span>"
            } else {
                "<span class=\"bad\">leaks membership</span>"
            }
        );
    }
    h.push_str("</tbody></table>\n");
}

// ----------------------------------------------------------------------------------------------- extraction

pub(super) fn extraction(h: &mut String, report: &Report) {
    let e = &report.metrics["extraction"];
    let colours = [BLUE, GREEN, "#8a4b00", "#6e1111", "#0b5e73", "#57606a"];
    let mut series = Vec::new();
    let mut rows = Vec::new();
    for (i, c) in arr(e, "curves").iter().enumerate() {
        let name = format!("{} ({})", text(c, "strategy"), text(c, "policy"));
        let points: Vec<(f64, f64)> = arr(c, "points")
            .iter()
            .map(|p| (num(p, "queries"), num(p, "fidelity")))
            .collect();
        for p in arr(c, "points") {
            rows.push(vec![
                name.clone(),
                text(p, "queries"),
                pct(num(p, "fidelity")),
            ]);
        }
        series.push(Series {
            name,
            colour: colours[i % colours.len()],
            points,
            labels: false,
        });
    }
    let alarm = arr(e, "prada")
        .iter()
        .filter_map(|p| {
            p.get("queries_to_alarm")
                .and_then(Value::as_f64)
                .map(|q| (q, text(p, "strategy")))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let _ = writeln!(
        h,
        "<h2>How close a copy gets, by number of queries</h2>\n<p>Each line is one way of stealing; its height is the copy's {} \
         with the original. Above the dashed line (90%), the copy is good enough to replace the original.</p>",
        term("fidelity", "fidelity")
    );
    let svg = line_chart(
        &series,
        "queries sent to the model",
        "copy agrees with the original",
        &ChartExtras {
            title: "Fidelity of the stolen copy against the number of queries".into(),
            references: vec![RefLine {
                y: 0.9,
                label: "good enough to replace it (90%)".into(),
                colour: "#b91c1c",
            }],
            marker: alarm
                .as_ref()
                .map(|(q, s)| (*q, format!("PRADA alarm ({s})"))),
            x_from_zero: true,
            x_integer: true,
        },
    );
    let caption = match &alarm {
        Some((q, s)) => format!("The PRADA detector raised its alarm after {q:.0} queries of the {s} attack (dashed vertical line)."),
        None => "The PRADA detector did not raise an alarm on these attacks.".into(),
    };
    figure(h, &svg, &caption, &["attack", "queries", "fidelity"], &rows);
    let prada = arr(e, "prada");
    if !prada.is_empty() {
        let _ = writeln!(
            h,
            "<h2>Would the gateway notice?</h2>\n<table><thead><tr><th>Attack</th><th class=\"num\">Queries sent</th>\
             <th class=\"num\">Alarm after</th></tr></thead><tbody>"
        );
        for p in prada {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&text(p, "strategy")),
                esc(&text(p, "queries")),
                p.get("queries_to_alarm")
                    .and_then(Value::as_u64)
                    .map_or("no alarm".into(), |q| format!("{q} queries"))
            );
        }
        h.push_str("</tbody></table>\n");
        let benign = &e["benign"];
        if benign.is_object() {
            let _ = writeln!(
                h,
                "<p class=\"muted\">On normal traffic the detector raised {} false alarm(s) in {} streams ({}).</p>",
                esc(&text(benign, "alarms")),
                esc(&text(benign, "streams")),
                pct(num(benign, "false_alarm_rate"))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use aegis_core::{Finding, Location, Report, RuleDoc, Severity};
    use serde_json::json;

    const RULE: RuleDoc = RuleDoc {
        id: "AEG-TEST-001",
        name: "test",
        severity: Severity::High,
        summary: "s",
        why: "w",
        fix: "f",
        atlas: &[],
        cwe: &[],
    };

    fn html(report: &Report) -> String {
        crate::html::page_linked(report, &[], "r.css")
    }

    /// No JSON object or array is printed as such anywhere on the page.
    fn no_json(text: &str) {
        for needle in ["{\"", "[{", "&quot;:", "<pre>"] {
            assert!(!text.contains(needle), "raw JSON ({needle}) in the page");
        }
    }

    #[test]
    fn a_clean_scan_says_so_and_lists_what_was_checked() {
        let mut r = Report::new("scan", vec!["models".into()]);
        r.metrics.insert("files".into(), 2.into());
        r.metrics.insert(
            "checked".into(),
            json!([{"path": "models/a.onnx", "bytes": 2048, "findings": 0},
                   {"path": "models/b.safetensors", "bytes": 10, "findings": 0}]),
        );
        r.metrics
            .insert("formats".into(), json!({"onnx": 1, "safetensors": 1}));
        let text = html(&r);
        assert!(text.contains("verdict good"));
        assert!(text.contains("<code>models/b.safetensors</code>"));
        assert_eq!(text.matches("<span class=\"ok\">clean</span>").count(), 2);
        assert!(!text.contains("What would run"));
        no_json(&text);
        // The same files with a finding: the verdict turns and the file is named with it.
        r.findings.push(
            Finding::new(&RULE, Location::file("models/a.onnx"), "bad")
                .with_evidence(json!({"callable": "os.system", "call": {"args": "(\"id\")"}})),
        );
        let text = html(&r);
        assert!(text.contains("verdict bad"));
        assert!(text.contains("calls <code>os.system</code> with <code>(&quot;id&quot;)</code>"));
    }

    #[test]
    fn drift_shows_every_column_drifted_first_with_both_distributions() {
        let mut r = Report::new("drift", vec!["cur.csv".into()]);
        let hist = json!({"labels": ["< 1", "1 – 2", "≥ 2"], "reference": [10, 10, 10], "current": [2, 3, 25]});
        r.metrics.insert(
            "drift".into(),
            json!({
                "reference": "ref.csv", "current": "cur.csv", "reference_rows": 30, "current_rows": 30,
                "tested": 2, "drifted": 1,
                "columns": [
                    {"name": "steady", "kind": "numeric", "test": "ks", "statistic": 0.1, "pvalue": 0.9,
                     "pvalue_corrected": 0.9, "psi": 0.01, "drifted": false,
                     "reference_missing_share": 0.0, "current_missing_share": 0.0},
                    {"name": "amount", "kind": "numeric", "test": "ks", "statistic": 0.7, "pvalue": 0.0001,
                     "pvalue_corrected": 0.0002, "psi": 1.2, "drifted": true, "histogram": hist,
                     "reference_missing_share": 0.0, "current_missing_share": 0.1}
                ]
            }),
        );
        let text = html(&r);
        assert!(text.contains("1 of 2 columns changed"));
        let amount = text.find("<code>amount</code>").unwrap();
        let steady = text.find("<code>steady</code>").unwrap();
        assert!(amount < steady, "drifted columns first");
        assert!(text.contains("The biggest move is in ≥ 2: 33.3% of reference rows, 83.3% now (PSI 1.200, p &lt; 0.001)"));
        assert!(text.contains("href=\"#term-psi\"") && text.contains("id=\"term-psi\""));
        no_json(&text);
    }

    #[test]
    fn privacy_draws_the_roc_and_compares_policies() {
        let mut r = Report::new("assess privacy", vec!["m.onnx".into()]);
        let attack = |auc: f64| json!({"auc": auc, "tpr_at_1pct_fpr": 0.2, "roc": [[0.0, 0.0], [0.001, 0.1], [0.01, 0.2], [1.0, 1.0]]});
        r.metrics.insert(
            "privacy".into(),
            json!({"members_given": 100, "non_members_given": 100, "policies": [
                {"policy": "full", "loss": attack(0.8), "confidence": attack(0.7), "population": {"metrics": {"auc": 0.6}}},
                {"policy": "label", "loss": attack(0.55), "confidence": attack(0.5), "population": {"metrics": {"auc": 0.5}}}
            ]}),
        );
        let text = html(&r);
        assert!(text.contains("ROC curve of the membership attacks"));
        assert!(text.contains("verdict bad"));
        assert!(text.contains("only the label") && text.contains("little leaks"));
        no_json(&text);
    }

    #[test]
    fn extraction_plots_fidelity_per_query_with_the_alarm() {
        let mut r = Report::new("assess extraction", vec!["m.onnx".into()]);
        r.metrics.insert(
            "extraction".into(),
            json!({"model": "m.onnx", "curves": [
                {"strategy": "random", "policy": "full", "points": [{"queries": 100, "fidelity": 0.6}, {"queries": 1000, "fidelity": 0.95}]}
            ], "prada": [{"strategy": "random", "queries": 1000, "queries_to_alarm": 240}]}),
        );
        let text = html(&r);
        assert!(text.contains("PRADA detector raised its alarm after 240 queries"));
        assert!(text.contains("verdict bad"));
        no_json(&text);
        r.metrics.insert(
            "extraction".into(),
            json!({"model": "m.onnx", "curves": [
                {"strategy": "random", "policy": "label", "points": [{"queries": 100, "fidelity": 0.5}]}
            ], "prada": [{"strategy": "random", "queries": 100, "queries_to_alarm": null}]}),
        );
        let text = html(&r);
        assert!(text.contains("verdict good") && text.contains("did not raise an alarm"));
    }

    #[test]
    fn audit_lists_flagged_rows_with_why_and_the_class_balance() {
        let mut r = Report::new("audit", vec!["train.csv".into()]);
        r.metrics.insert("rows".into(), 100.into());
        r.metrics.insert("flagged_rows".into(), 3.into());
        r.metrics
            .insert("flagged_by_kind".into(), json!({"label": 2, "outlier": 1}));
        r.metrics.insert(
            "balance".into(),
            json!({"balance.class_counts": {"fraud": 10, "ok": 90}}),
        );
        r.metrics.insert(
            "backdoor".into(),
            json!({"backdoor_candidates": [{"rule": "merchant == 7 -> label fraud", "support": 12, "purity": 1.0, "confidence": 0.9}]}),
        );
        r.findings.push(
            Finding::new(&RULE, Location::file("train.csv"), "labels")
                .with_evidence(json!({"rows": [{"row": 5, "given": "ok", "suggested": "fraud", "confidence": 0.97}]})),
        );
        let text = html(&r);
        assert!(text.contains("labelled ok but looks like fraud (97.0% confident)"));
        assert!(text.contains("The rarest label, fraud, has 10.0% of the rows."));
        assert!(text.contains("merchant == 7 -&gt; label fraud"));
        no_json(&text);
    }

    #[test]
    fn a_live_window_shows_its_inputs_and_the_changed_distributions() {
        let mut r = Report::new("drift", vec!["live traffic to fraud".into()]);
        r.metrics.insert(
            "window".into(),
            json!({"rows": 500, "alert": true, "features": [
                {"name": "hour", "statistic": 0.6, "pvalue": 0.0, "psi": 5.8, "drifted": true,
                 "histogram": {"labels": ["< 2", "≥ 2"], "reference": [50, 50], "current": [90, 10]}},
                {"name": "foreign", "statistic": 0.01, "pvalue": 0.9, "psi": 0.0, "drifted": false}
            ]}),
        );
        let text = html(&r);
        assert!(text.contains("1 of 2 inputs changed"));
        assert!(text.contains("hour: reference and current distributions"));
        no_json(&text);
        r.metrics.insert(
            "window".into(),
            json!({"rows": 500, "alert": false, "features": [{"name": "foreign", "psi": 0.0, "drifted": false}]}),
        );
        let text = html(&r);
        assert!(text.contains("Live inputs look like the reference data"));
        assert!(!text.contains("reference and current distributions"));
    }

    /// Text from reports (file names, column names, strategies, counts) is attacker-controlled: no view may
    /// print it unescaped.
    #[test]
    fn hostile_strings_are_escaped_in_every_view() {
        let evil = "<img src=x onerror=alert(1)>";
        let reports = [
            (
                "scan",
                "checked",
                json!([{"path": evil, "bytes": 1, "findings": 1, "worst": "high"}]),
            ),
            ("audit", "flagged_by_kind", json!({evil: 1})),
            (
                "drift",
                "drift",
                json!({"reference": evil, "current": evil, "tested": 1, "drifted": 1,
                "columns": [{"name": evil, "kind": evil, "test": evil, "drifted": true, "note": evil,
                             "histogram": {"labels": [evil], "reference": [1], "current": [2]}}]}),
            ),
            (
                "assess privacy",
                "privacy",
                json!({"policies": [{"policy": evil, "loss": {"auc": 0.9, "roc": [[0.0, 0.0], [1.0, 1.0]]}}]}),
            ),
            (
                "assess extraction",
                "extraction",
                json!({"model": evil,
                "curves": [{"strategy": evil, "policy": evil, "points": [{"queries": evil, "fidelity": 0.95}]}],
                "prada": [{"strategy": evil, "queries": evil, "queries_to_alarm": 5}],
                "benign": {"alarms": evil, "streams": evil, "false_alarm_rate": 0.1}}),
            ),
            (
                "assess llm",
                "llm",
                json!({"target": evil, "model": evil, "requests": 1, "untested": [evil],
                "families": [{"family": evil, "sent": 1, "successes": 1, "resisted": 0, "undetermined": 0,
                              "errors": 0, "success_rate": 1.0, "atlas": evil, "owasp": evil}],
                "probes": [{"family": evil, "probe": evil, "streamed": true, "outcome": "success",
                            "oracle": evil, "answer": evil}]}),
            ),
            (
                "drift",
                "window",
                json!({"rows": 1, "features": [{"name": evil, "drifted": true,
                "histogram": {"labels": [evil], "reference": [1], "current": [1]}}]}),
            ),
        ];
        for (command, key, metric) in reports {
            let mut r = Report::new(command, vec![evil.into()]);
            r.metrics.insert(key.into(), metric);
            r.metrics
                .insert("balance".into(), json!({"balance.class_counts": {evil: 3}}));
            let text = html(&r);
            assert!(!text.contains("<img"), "{command}: {key} printed unescaped");
        }
    }
}
