//! `aegis llm screen` and `aegis assess llm`: wire flags to [`aegis_guard`] and [`aegis_assess::llm`].

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;

use aegis_assess::llm::{self, LlmTarget};
use aegis_core::Report;
use aegis_guard::learned::{self as guard_learned, Head, Learned};
use aegis_guard::{AllowList, Screener, Source};
use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::args::{GlobalArgs, OutputFormat};
use crate::args_llm::{AssessLlmArgs, ScreenArgs, TrainHeadArgs};
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
    let mut screener = Screener::new(args.threshold, AllowList::new(&args.allow_phrases, &[]));
    if let Some(dir) = &args.model_dir {
        let head = args.head.as_deref().map(Head::read).transpose()?;
        let learned = Learned::load(dir, head)
            .with_context(|| format!("loading the learned layer from {}", dir.display()))?;
        screener = screener.with_learned(std::sync::Arc::new(learned), args.learned_threshold);
    }
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
    let document = match global.format {
        OutputFormat::Json => true,
        OutputFormat::Human | OutputFormat::Jsonl => false,
        other => bail!(
            "aegis llm screen writes JSON Lines (the default, one object per prompt) or one JSON document \
             (--format json), not {}",
            format!("{other:?}").to_lowercase()
        ),
    };
    let mut out: Box<dyn Write> = match &global.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut records = Vec::new();
    let mut summary = Summary::default();
    // Compile the rules before the clock runs, so the first prompt's time is its own.
    let _ = screener.screen("warm up", source);
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
            "layer": v.layer.as_str(), "learned": v.learned.map(|p| (p * 1e4).round() / 1e4),
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
        if document {
            records.push(record);
        } else {
            writeln!(out, "{record}")?;
        }
    }
    if summary.total == 0 {
        bail!("{name} has no prompts (empty lines only): nothing was screened");
    }
    if document {
        let doc = json!({"results": records, "summary": summary.json_summary(args.threshold)});
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    }
    out.flush()?;
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

    fn json_summary(&mut self, threshold: f64) -> Value {
        self.micros.sort_by(f64::total_cmp);
        let q = |p: f64| self.micros[((self.micros.len() - 1) as f64 * p).round() as usize];
        let [tp, fp, fal, tn] = self.confusion;
        let mut v = json!({
            "screened": self.total, "flagged": self.flagged, "allowed": self.allowed, "threshold": threshold,
            "by_rule": self.by_rule, "median_us": q(0.5), "p99_us": q(0.99),
        });
        if tp + fp + fal + tn > 0 {
            v["confusion"] = json!({"tp": tp, "fp": fp, "fn": fal, "tn": tn});
        }
        v
    }

    fn render_confusion(&self) -> String {
        let [tp, fp, fal, tn] = self.confusion.map(|x| x as f64);
        let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
        let recall = if tp + fal > 0.0 { tp / (tp + fal) } else { 0.0 };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        let fpr = if fp + tn > 0.0 { fp / (fp + tn) } else { 0.0 };
        format!(
            "  precision {precision:.3}, recall {recall:.3}, F1 {f1:.3}, false-positive rate {fpr:.3} (tp {tp}, fp {fp}, fn {fal}, tn {tn})"
        )
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
            s.push('\n');
            s.push_str(&self.render_confusion());
        }
        s
    }
}

/// One labelled row for training.
struct Row {
    text: String,
    label: bool,
    fold: Option<String>,
}

pub fn train_head(global: &GlobalArgs, args: TrainHeadArgs) -> anyhow::Result<ExitCode> {
    use rayon::prelude::*;
    let name = args.file.display().to_string();
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {name}"))?;
    let mut rows = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{name}: line {} is not JSON", i + 1))?;
        let text = v
            .get(&args.field)
            .and_then(Value::as_str)
            .with_context(|| {
                format!("{name}: line {} has no text field {:?}", i + 1, args.field)
            })?;
        let label = match v.get(&args.label) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(x)) => x.as_f64().unwrap_or(0.0) != 0.0,
            Some(Value::String(s)) => {
                matches!(s.as_str(), "1" | "true" | "attack" | "injection" | "yes")
            }
            _ => bail!("{name}: line {} has no label field {:?}", i + 1, args.label),
        };
        let fold = match &args.fold_field {
            None => None,
            Some(f) => Some(
                v.get(f)
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
                    .with_context(|| format!("{name}: line {} has no fold field {f:?}", i + 1))?,
            ),
        };
        rows.push(Row {
            text: text.to_string(),
            label,
            fold,
        });
    }
    let positives = rows.iter().filter(|r| r.label).count();
    if positives == 0 || positives == rows.len() {
        bail!("{name} needs both attacks and benign prompts to train on ({positives} of {} are attacks)", rows.len());
    }
    let learned = Learned::load_for_training(&args.model_dir).with_context(|| {
        format!(
            "loading the sentence encoder from {}",
            args.model_dir.display()
        )
    })?;
    let sha = guard_learned::encoder_sha256(&args.model_dir)?;
    let key = cache_key(&sha, &rows);
    let cached = args
        .cache
        .as_deref()
        .and_then(|p| read_cache(p, &key, rows.len()));
    let embedded: Vec<Vec<Vec<f32>>> = match cached {
        Some(e) => e,
        None => {
            let bar = progress::StageProgress::new(global.quiet, "embedding");
            let done = std::sync::atomic::AtomicUsize::new(0);
            let embedded: Vec<Vec<Vec<f32>>> = rows
                .par_iter()
                .map(|r| {
                    let e = learned.embeddings(&r.text);
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if n.is_multiple_of(50) {
                        bar.set(n, rows.len(), "prompts".into());
                    }
                    e
                })
                .collect::<Result<_, _>>()?;
            bar.finish();
            if let Some(p) = &args.cache {
                write_cache(p, &key, &embedded)
                    .with_context(|| format!("cannot write the cache {}", p.display()))?;
            }
            embedded
        }
    };
    let rules = Screener::default();
    let train = |idx: &[usize]| {
        // Every window of a row carries its label (at most four windows a row, so long documents do not dominate).
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for &i in idx {
            for e in embedded[i].iter().take(4) {
                xs.push(e.clone());
                ys.push(rows[i].label);
            }
        }
        guard_learned::train_head(&xs, &ys, args.l2, 1500)
    };
    if let Some(field) = &args.fold_field {
        let mut folds: Vec<String> = rows.iter().filter_map(|r| r.fold.clone()).collect();
        folds.sort();
        folds.dedup();
        if folds.len() < 2 {
            bail!(
                "--fold-field {field:?} has {} value(s); held-out figures need at least two folds",
                folds.len()
            );
        }
        let mut out = match &args.scores {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot write {}", p.display()))?,
            )),
            None => None,
        };
        let mut held_out = vec![0.0f64; rows.len()];
        for fold in &folds {
            let (inside, outside): (Vec<usize>, Vec<usize>) =
                (0..rows.len()).partition(|&i| rows[i].fold.as_deref() == Some(fold.as_str()));
            let (w, b) = train(&outside);
            let head = Head {
                encoder_sha256: sha.clone(),
                weights: w,
                bias: b,
                trained_on: String::new(),
            };
            let mut summary = Summary::default();
            for &i in &inside {
                let p = embedded[i]
                    .iter()
                    .map(|e| head.probability(e))
                    .fold(0.0, f64::max);
                held_out[i] = p;
                let mut v = rules.screen(&rows[i].text, Source::Trusted);
                let rule_score = v.score;
                if p > v.score {
                    v.score = p;
                    v.flagged = p >= aegis_guard::DEFAULT_THRESHOLD;
                }
                summary.add(&v, Some(rows[i].label));
                summary.micros.push(0.0);
                if let Some(o) = out.as_mut() {
                    writeln!(
                        o,
                        "{}",
                        json!({"line": i + 1, "fold": fold, "label": rows[i].label, "learned": p, "rules": rule_score, "score": v.score})
                    )?;
                }
            }
            if !global.quiet {
                eprintln!(
                    "fold {fold} held out ({} rows, trained on the other {}):",
                    inside.len(),
                    outside.len()
                );
                eprintln!("{}", summary.render_confusion());
            }
        }
        if let Some(mut o) = out {
            o.flush()?;
        }
    }
    let all: Vec<usize> = (0..rows.len()).collect();
    let (weights, bias) = train(&all);
    let head = Head {
        encoder_sha256: sha,
        weights,
        bias,
        trained_on: format!(
            "{} ({} rows, {positives} attacks)",
            args.file
                .file_name()
                .map_or(name.clone(), |f| f.to_string_lossy().into_owned()),
            rows.len()
        ),
    };
    let json = serde_json::to_string(&head)?;
    match &global.output {
        Some(path) => {
            std::fs::write(path, json + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
            if !global.quiet {
                eprintln!(
                    "wrote the head to {} (use it with --head, or llm_guard.head in aegis.toml)",
                    path.display()
                );
            }
        }
        None => println!("{json}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// What a cache must match: the encoder and every prompt, in order.
fn cache_key(encoder_sha: &str, rows: &[Row]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(encoder_sha.as_bytes());
    for r in rows {
        h.update((r.text.len() as u64).to_le_bytes());
        h.update(r.text.as_bytes());
    }
    h.finalize().into()
}

/// The cache: the key, then per row a window count and the windows' f32 values (little-endian).
fn write_cache(
    path: &std::path::Path,
    key: &[u8; 32],
    embedded: &[Vec<Vec<f32>>],
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(key)?;
    for windows in embedded {
        out.write_all(&(windows.len() as u32).to_le_bytes())?;
        for w in windows {
            out.write_all(&(w.len() as u32).to_le_bytes())?;
            for x in w {
                out.write_all(&x.to_le_bytes())?;
            }
        }
    }
    out.flush()
}

fn read_cache(path: &std::path::Path, key: &[u8; 32], rows: usize) -> Option<Vec<Vec<Vec<f32>>>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.get(..32)? != key {
        return None;
    }
    let mut at = 32;
    let u32_at = |at: &mut usize| -> Option<usize> {
        let v = u32::from_le_bytes(bytes.get(*at..*at + 4)?.try_into().ok()?) as usize;
        *at += 4;
        Some(v)
    };
    let mut out = Vec::with_capacity(rows);
    for _ in 0..rows {
        let n = u32_at(&mut at)?;
        let mut windows = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let d = u32_at(&mut at)?;
            let raw = bytes.get(at..at + 4 * d)?;
            windows.push(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            );
            at += 4 * d;
        }
        out.push(windows);
    }
    (at == bytes.len()).then_some(out)
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
