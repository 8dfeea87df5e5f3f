//! `aegis llm screen` and `aegis assess llm`: wire flags to [`aegis_guard`] and [`aegis_assess::llm`].

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;

use aegis_assess::llm::{self, LlmTarget};
use aegis_core::Report;
use aegis_guard::{AllowList, Screener, Source};
use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::args::GlobalArgs;
use crate::args_llm::{AssessLlmArgs, ScreenArgs};
use crate::{output, progress};

/// Longest input line read, in bytes.
const MAX_LINE_BYTES: usize = 4 << 20;

pub fn screen(global: &GlobalArgs, args: ScreenArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.threshold) {
        bail!(
            "--threshold must be between 0 and 1, got {}",
            args.threshold
        );
    }
    let screener = Screener::new(args.threshold, AllowList::new(&args.allow_phrases, &[]));
    let source = if args.untrusted {
        Source::Untrusted
    } else {
        Source::Trusted
    };
    let name = args.file.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(&args.file).with_context(|| format!("cannot open {name}"))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut summary = Summary::default();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{name}: line {} is not UTF-8 text", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE_BYTES {
            bail!(
                "{name}: line {} is longer than {MAX_LINE_BYTES} bytes",
                i + 1
            );
        }
        let (text, label) = prompt_of(&line, &args, &name, i + 1)?;
        let started = Instant::now();
        let v = screener.screen(&text, source);
        summary.micros.push(started.elapsed().as_secs_f64() * 1e6);
        summary.add(&v, label);
        let mut record = json!({
            "line": i + 1, "score": (v.score * 1e4).round() / 1e4, "flagged": v.flagged,
            "layer": v.layer.as_str(),
            "rules": v.hits.iter().map(|h| json!({
                "rule": h.rule, "family": h.family.as_str(), "view": h.channel.as_str(), "match": h.excerpt,
            })).collect::<Vec<_>>(),
        });
        if args.pii {
            let spans = aegis_guard::pii::find(&text, &aegis_guard::pii::Kind::ALL);
            record["pii"] = json!(spans
                .iter()
                .map(|s| json!({"kind": s.kind.as_str(), "start": s.start, "end": s.end}))
                .collect::<Vec<_>>());
        }
        if let Some(l) = label {
            record["label"] = json!(l);
        }
        if global.format != crate::args::OutputFormat::Human || !global.quiet {
            writeln!(out, "{record}")?;
        }
    }
    out.flush()?;
    if summary.total == 0 {
        bail!("{name} has no prompts (empty lines only): nothing was screened");
    }
    if !global.quiet {
        eprintln!("{}", summary.render(args.threshold, args.label.is_some()));
    }
    Ok(if summary.flagged > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The prompt (and label) of one input line.
fn prompt_of(
    line: &str,
    args: &ScreenArgs,
    name: &str,
    n: usize,
) -> anyhow::Result<(String, Option<bool>)> {
    let trimmed = line.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('"')) {
        if args.label.is_some() {
            bail!("{name}: line {n} is plain text, but --label needs JSON Lines");
        }
        return Ok((line.to_string(), None));
    }
    let value: Value = serde_json::from_str(trimmed)
        .with_context(|| format!("{name}: line {n} starts like JSON but does not parse"))?;
    let text = match &value {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get(&args.field) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => bail!("{name}: line {n}: field {:?} is {other}, not text", args.field),
            None => bail!(
                "{name}: line {n} has no field {:?}; name the prompt's field with --field (fields here: {})",
                args.field,
                o.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        },
        _ => bail!("{name}: line {n} is neither a JSON object nor a string"),
    };
    let label = match &args.label {
        None => None,
        Some(field) => Some(match value.get(field) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(x)) => x.as_f64().unwrap_or(0.0) != 0.0,
            Some(Value::String(s)) => {
                matches!(s.as_str(), "1" | "true" | "attack" | "injection" | "yes")
            }
            _ => bail!("{name}: line {n} has no label field {field:?}"),
        }),
    };
    Ok((text, label))
}

#[derive(Default)]
struct Summary {
    total: usize,
    flagged: usize,
    allowed: usize,
    by_rule: std::collections::BTreeMap<&'static str, usize>,
    confusion: [usize; 4], // tp, fp, fn, tn
    micros: Vec<f64>,
}

impl Summary {
    fn add(&mut self, v: &aegis_guard::Verdict, label: Option<bool>) {
        self.total += 1;
        self.flagged += usize::from(v.flagged);
        self.allowed += usize::from(v.layer == aegis_guard::Layer::AllowList);
        for h in &v.hits {
            *self.by_rule.entry(h.rule).or_default() += 1;
        }
        if let Some(l) = label {
            let i = match (v.flagged, l) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => 3,
            };
            self.confusion[i] += 1;
        }
    }

    fn render(&mut self, threshold: f64, labelled: bool) -> String {
        self.micros.sort_by(f64::total_cmp);
        let q = |p: f64| self.micros[((self.micros.len() - 1) as f64 * p).round() as usize];
        let mut s = format!(
            "screened {} prompts: {} flagged at threshold {threshold}, {} allowed by the allow-list; {:.1} µs median, {:.1} µs p99 per prompt",
            self.total, self.flagged, self.allowed, q(0.5), q(0.99)
        );
        for (rule, n) in &self.by_rule {
            s.push_str(&format!("\n  {rule}: {n}"));
        }
        if labelled {
            let [tp, fp, fal, tn] = self.confusion.map(|x| x as f64);
            let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
            let recall = if tp + fal > 0.0 { tp / (tp + fal) } else { 0.0 };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            let fpr = if fp + tn > 0.0 { fp / (fp + tn) } else { 0.0 };
            s.push_str(&format!(
                "\n  precision {precision:.3}, recall {recall:.3}, F1 {f1:.3}, false-positive rate {fpr:.3} (tp {tp}, fp {fp}, fn {fal}, tn {tn})"
            ));
        }
        s
    }
}

pub fn assess(global: &GlobalArgs, args: AssessLlmArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if args.concurrency == 0 || args.max_requests == 0 {
        bail!("--concurrency and --max-requests must be at least 1");
    }
    let system_prompt = match &args.system_prompt {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the system prompt {}", p.display()))?,
        None => String::new(),
    };
    let headers = args
        .header
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .with_context(|| format!("--header {h:?} must look like 'Name: value'"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let target = LlmTarget {
        url: args.url.clone(),
        model: args.model.clone(),
        system_prompt,
        headers,
        max_requests: args.max_requests,
        concurrency: args.concurrency,
        timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        seed: args.seed,
    };
    let bar = progress::StageProgress::new(global.quiet, "probing");
    let result = llm::assess(&target, &|done, total| {
        bar.set(done, total, "probes".into())
    })
    .with_context(|| format!("red-teaming {}", args.url))?;
    bar.finish();
    let mut report = Report::new(
        "assess llm",
        vec![result.target.clone(), args.model.clone()],
    );
    report.findings = result.findings();
    report.sort_findings();
    report.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    report
        .metrics
        .insert("llm".into(), serde_json::to_value(&result)?);
    if global.format == crate::args::OutputFormat::Human && global.output.is_none() && !global.quiet
    {
        output::write_text(global, &result.render_human())?;
    }
    output::emit(global, &report, &llm::rules())
}
