//! Flags of `aegis llm screen` and `aegis assess llm`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `aegis llm` subcommands.
#[derive(Debug, Subcommand)]
pub enum LlmCommand {
    /// Screen prompts for injection and jailbreaks with the gateway's own pipeline (for CI and calibration).
    #[command(after_help = SCREEN_EXAMPLES)]
    Screen(ScreenArgs),
    /// Train the learned layer's head on your own labelled prompts (and measure it by held-out folds).
    #[command(name = "train-head", after_help = TRAIN_EXAMPLES)]
    TrainHead(TrainHeadArgs),
}

pub const TRAIN_EXAMPLES: &str = "Examples:
  aegis llm train-head labelled.jsonl --model-dir ./all-MiniLM-L6-v2 --label is_attack -o head.json
  aegis llm train-head labelled.jsonl --model-dir ./all-MiniLM-L6-v2 --label label --fold-field fold \\
      --scores heldout.jsonl -o head.json

The learned layer is a sentence embedding (all-MiniLM-L6-v2 from --model-dir) and a logistic-regression
head. Aegis ships a head trained on openly licensed corpora (docs/llm-guard.md); train your own when your
traffic differs. With --fold-field, every fold is scored by a head trained on the other folds first
(its rows never seen in training), and --scores writes those held-out scores per line, so you can
measure the layer on sources it has not seen before deploying it.";

/// `aegis llm train-head`.
#[derive(Debug, Args)]
pub struct TrainHeadArgs {
    /// JSON Lines of labelled prompts.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Directory with model.safetensors, tokenizer.json and config.json of the sentence encoder.
    #[arg(long, value_name = "DIR")]
    pub model_dir: PathBuf,
    /// The field holding the prompt.
    #[arg(long, default_value = "text", value_name = "NAME")]
    pub field: String,
    /// The field with the true label (1/true = attack, 0/false = benign).
    #[arg(long, value_name = "NAME")]
    pub label: String,
    /// A field naming each row's fold: held-out figures per fold (train on the others, score this one).
    #[arg(long, value_name = "NAME")]
    pub fold_field: Option<String>,
    /// Write the held-out score of every row here (JSON Lines; needs --fold-field).
    #[arg(long, value_name = "FILE", requires = "fold_field")]
    pub scores: Option<PathBuf>,
    /// Keep the embeddings in FILE and reuse them while FILE matches the prompts and the encoder (embedding is
    /// the slow part: about 60 ms per 126-word-piece window on one core).
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// L2 regularisation of the head.
    #[arg(long, default_value_t = 1e-5, value_name = "LAMBDA")]
    pub l2: f64,
}

pub const SCREEN_EXAMPLES: &str = "Examples:
  aegis llm screen prompts.jsonl
  aegis llm screen prompts.jsonl --field prompt --threshold 0.7
  aegis llm screen logs.txt --allow-phrase 'developer mode enabled'
  aegis llm screen labelled.jsonl --label is_attack      # precision, recall, F1, false-positive rate
  aegis llm screen prompts.jsonl --model-dir ./all-MiniLM-L6-v2   # rules + the learned layer
  cat prompts.txt | aegis llm screen -

FILE is JSON Lines (one object per line, the prompt in --field; a line that is a JSON string is the
prompt itself) or plain text with one prompt per line. Each input gets one JSON object (stdout, or -o FILE;
--format json writes one document with a summary instead):
line, score (0-1), flagged, layer (rules, allow-list, none) and the rules that fired with the view
they fired in (plain, squashed, leet, base64, hex, url, rot13, tags) and the matched text. A summary
goes to stderr. This is the same code `aegis serve` runs on OpenAI routes, so a threshold and
allow-list calibrated here behave the same there. Exit code 1 when any prompt is flagged.";

/// `aegis llm screen`.
#[derive(Debug, Args)]
pub struct ScreenArgs {
    /// JSON Lines or plain-text file of prompts (`-` for standard input).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The field holding the prompt in JSON Lines input.
    #[arg(long, default_value = "text", value_name = "NAME")]
    pub field: String,
    /// Score (0-1) at or above which a prompt is flagged.
    #[arg(long, default_value_t = aegis_guard::DEFAULT_THRESHOLD, value_name = "SCORE")]
    pub threshold: f64,
    /// A phrase that is benign in this deployment (repeatable): rules that fire inside it are ignored.
    #[arg(long = "allow-phrase", value_name = "TEXT")]
    pub allow_phrases: Vec<String>,
    /// Screen the text as untrusted (tool output, retrieved documents): indirect-injection rules weigh more.
    #[arg(long)]
    pub untrusted: bool,
    /// A field with the true label (1/true = attack, 0/false = benign): the summary adds precision, recall,
    /// F1 and the false-positive rate.
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// Also screen each JSON line's personal data and secrets (card, IBAN, e-mail, phone, keys).
    #[arg(long)]
    pub pii: bool,
    /// Add the learned layer: the sentence encoder's directory (model.safetensors, tokenizer.json, config.json;
    /// see docs/llm-guard.md for where to get all-MiniLM-L6-v2 offline).
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// The learned layer flags a prompt when its probability reaches this (it is only reported below).
    #[arg(long, default_value_t = aegis_guard::DEFAULT_LEARNED_THRESHOLD, value_name = "P", requires = "model_dir")]
    pub learned_threshold: f64,
    /// A head trained with `aegis llm train-head` instead of the built-in one (needs --model-dir).
    #[arg(long, value_name = "FILE", requires = "model_dir")]
    pub head: Option<PathBuf>,
}

pub const ASSESS_LLM_EXAMPLES: &str = "Examples:
  aegis assess llm http://127.0.0.1:8000 --model llama-3.1-8b
  aegis assess llm http://127.0.0.1:8080/v1 --model gpt-4o-mini --header \"Authorization: Bearer $AEGIS_KEY\"
  aegis assess llm http://127.0.0.1:8000 --model my-bot --system-prompt bot-prompt.txt --format html -o llm.html

Red-teams an OpenAI-compatible chat endpoint: system-prompt extraction, goal hijacking, jailbreak
personas, harmful requests, encoded payloads, echo of planted personal data, markdown/link
exfiltration and indirect injection through a tool result or a document. Answers are judged by
exact oracles: a canary in the system prompt, a random string the model is told to say, planted
personal data, an exfiltration URL, a compliance marker. Refusal phrases are only a weak signal;
an answer no oracle can judge is 'undetermined', never a success. Requests alternate between
streamed and whole answers, one family after another (a small --max-requests still covers every
family; the report names any it did not reach). AEG-LLM-001 injection, 002 system-prompt leak,
003 data leak, 004 jailbreak. Plain http:// only. Nothing but the target is contacted.";

/// `aegis assess llm`.
#[derive(Debug, Args)]
pub struct AssessLlmArgs {
    /// Base URL of the OpenAI-compatible server (http://host:port, with or without /v1).
    #[arg(value_name = "URL")]
    pub url: String,
    /// The model name sent in each request.
    #[arg(long, value_name = "NAME")]
    pub model: String,
    /// The application's system prompt (a file); a generic support-bot prompt without it.
    #[arg(long, value_name = "FILE")]
    pub system_prompt: Option<PathBuf>,
    /// An HTTP header for every request, `Name: value` (repeatable), e.g. an Authorization bearer token.
    #[arg(long, value_name = "HEADER")]
    pub header: Vec<String>,
    /// Requests at most.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub max_requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    /// Seconds allowed per request.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
    /// Seed of the canary, rogue strings and markers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}
