//! The settings of the LLM guard (`[upstream.llm_guard]` in aegis.toml) and their checks, apart from the guard
//! itself ([`crate::llm_guard`]) so that the configuration module depends on no part of the server.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use aegis_guard::learned::{Head, Learned};
use aegis_guard::pii::{Action, Kind};
use aegis_guard::{AllowList, Screener};
use serde::{Deserialize, Serialize};

/// What the guard does with a flagged prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardMode {
    /// Nothing is screened.
    Off,
    /// Screened, counted and audited; nothing else.
    Shadow,
    /// As shadow, and a finding (with its notification).
    Alert,
    /// As alert, and the request is refused with 403.
    #[default]
    Block,
}

impl GuardMode {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardMode::Off => "off",
            GuardMode::Shadow => "shadow",
            GuardMode::Alert => "alert",
            GuardMode::Block => "block",
        }
    }
}

/// What the guard does when an answer contains the request's canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryMode {
    /// No canary is added.
    Off,
    /// Added; a leak is recorded and the answer passes.
    Flag,
    /// Added; a leaking answer is withheld (a stream is cut there).
    #[default]
    Cut,
}

/// What the guard does with personal data and secrets it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiMode {
    /// Not looked for.
    Off,
    /// Counted and recorded; the text passes unchanged.
    Log,
    /// Replaced with `[REDACTED:kind]`.
    Redact,
    /// All but the last four characters replaced with `*`.
    Mask,
    /// The request is refused (prompts) or the answer withheld (answers).
    Block,
}

impl PiiMode {
    pub(crate) fn action(self) -> Option<Action> {
        match self {
            PiiMode::Off => None,
            PiiMode::Log => Some(Action::Log),
            PiiMode::Redact => Some(Action::Redact),
            PiiMode::Mask => Some(Action::Mask),
            PiiMode::Block => Some(Action::Block),
        }
    }
}

/// `[upstream.llm_guard]`: the LLM guard of one OpenAI-compatible upstream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmGuardConfig {
    /// What to do with a flagged prompt (`off`, `shadow`, `alert`, `block`).
    pub mode: GuardMode,
    /// Score (0–1) at or above which a prompt is flagged.
    pub threshold: f64,
    /// Phrases that are benign here (a rule that fires inside one is ignored), compared after normalisation.
    pub allow_phrases: Vec<String>,
    /// Whole prompts that are benign here.
    pub allow_prompts: Vec<String>,
    /// Keep the first 2,000 characters of a flagged prompt in the audit record (off: only score, layer, rules).
    pub audit_prompts: bool,
    /// Canary in the system prompt of chat requests (`off`, `flag`, `cut`).
    pub canary: CanaryMode,
    /// Personal data and secrets in prompts (`off`, `log`, `redact`, `mask`, `block`).
    pub pii_prompts: PiiMode,
    /// Personal data and secrets in answers.
    pub pii_answers: PiiMode,
    /// Kinds looked for (default all): card, iban, email, phone, api-key, private-key, high-entropy.
    pub pii_kinds: Vec<String>,
    /// Mode per model name (the request's `model`), overriding `mode`.
    pub models: BTreeMap<String, GuardMode>,
    /// Mode per API key (its name or id), overriding the model's and the upstream's.
    pub keys: BTreeMap<String, GuardMode>,
    /// The learned layer: a directory with all-MiniLM-L6-v2 (`model.safetensors`, `tokenizer.json`,
    /// `config.json`; see docs/llm-guard.md). Without it only the rules screen.
    pub model_dir: Option<std::path::PathBuf>,
    /// A head from `aegis llm train-head` instead of the built-in one.
    pub head: Option<std::path::PathBuf>,
    /// The learned layer flags a message when its probability reaches this (below, it is only audited).
    pub learned_threshold: f64,
}

impl Default for LlmGuardConfig {
    fn default() -> LlmGuardConfig {
        LlmGuardConfig {
            mode: GuardMode::Block,
            threshold: aegis_guard::DEFAULT_THRESHOLD,
            allow_phrases: Vec::new(),
            allow_prompts: Vec::new(),
            audit_prompts: false,
            canary: CanaryMode::Cut,
            pii_prompts: PiiMode::Log,
            pii_answers: PiiMode::Redact,
            pii_kinds: Vec::new(),
            models: BTreeMap::new(),
            keys: BTreeMap::new(),
            model_dir: None,
            head: None,
            learned_threshold: aegis_guard::DEFAULT_LEARNED_THRESHOLD,
        }
    }
}

impl LlmGuardConfig {
    /// Consistency checks that serde cannot express.
    pub fn check(&self, upstream: &str) -> Result<(), String> {
        if !self.learned_threshold.is_finite() || !(0.0..=1.0).contains(&self.learned_threshold) {
            return Err(format!(
                "upstream {upstream:?}: llm_guard.learned_threshold must be between 0 and 1 (it is {})",
                self.learned_threshold
            ));
        }
        if !self.threshold.is_finite() || !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!(
                "upstream {upstream:?}: llm_guard.threshold must be between 0 and 1 (it is {})",
                self.threshold
            ));
        }
        if self.model_dir.is_none()
            && self.learned_threshold != aegis_guard::DEFAULT_LEARNED_THRESHOLD
        {
            return Err(format!(
                "upstream {upstream:?}: llm_guard.learned_threshold needs llm_guard.model_dir (the learned layer)"
            ));
        }
        if self.head.is_some() && self.model_dir.is_none() {
            return Err(format!(
                "upstream {upstream:?}: llm_guard.head needs llm_guard.model_dir (the encoder it was trained on)"
            ));
        }
        for k in &self.pii_kinds {
            if Kind::parse(k).is_none() {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(format!(
                    "upstream {upstream:?}: llm_guard.pii_kinds has {k:?}; use any of {}",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn kinds(&self) -> Vec<Kind> {
        if self.pii_kinds.is_empty() {
            Kind::ALL.to_vec()
        } else {
            self.pii_kinds
                .iter()
                .filter_map(|k| Kind::parse(k))
                .collect()
        }
    }
}

/// The guards of every OpenAI upstream, built once at start.
#[derive(Debug, Default)]
pub struct LlmGuards {
    by_upstream: HashMap<String, Arc<UpstreamGuard>>,
    /// When a finding was last recorded per (rule, upstream, key, model): at most one a minute.
    recorded: Mutex<HashMap<String, i64>>,
}

/// One upstream's guard.
#[derive(Debug)]
pub struct UpstreamGuard {
    pub(crate) upstream: String,
    pub(crate) config: LlmGuardConfig,
    pub(crate) screener: Screener,
    pub(crate) kinds: Vec<Kind>,
}

impl LlmGuards {
    /// Build from the configuration (already checked). A learned layer that cannot be loaded stops the start:
    /// a security setting must not silently fall back to less.
    /// `upstreams`: the OpenAI upstreams' names and settings (none: the defaults).
    pub fn build(upstreams: &[(String, Option<LlmGuardConfig>)]) -> Result<LlmGuards, String> {
        let mut encoders: HashMap<(std::path::PathBuf, Option<std::path::PathBuf>), Arc<Learned>> =
            HashMap::new();
        let mut by_upstream = HashMap::new();
        for (name, settings) in upstreams {
            let config = settings.clone().unwrap_or_default();
            let mut screener = Screener::new(
                config.threshold,
                AllowList::new(&config.allow_phrases, &config.allow_prompts),
            );
            if let Some(dir) = &config.model_dir {
                let key = (dir.clone(), config.head.clone());
                let learned = match encoders.get(&key) {
                    Some(l) => Arc::clone(l),
                    None => {
                        let head = config.head.as_deref().map(Head::read).transpose();
                        let loaded = head.and_then(|h| Learned::load(dir, h)).map_err(|e| {
                            format!("upstream {name:?}: the LLM guard's learned layer: {e}")
                        })?;
                        let l = Arc::new(loaded);
                        encoders.insert(key, Arc::clone(&l));
                        l
                    }
                };
                screener = screener.with_learned(learned, config.learned_threshold);
            }
            let guard = UpstreamGuard {
                upstream: name.clone(),
                screener,
                kinds: config.kinds(),
                config,
            };
            by_upstream.insert(name.clone(), Arc::new(guard));
        }
        Ok(LlmGuards {
            by_upstream,
            recorded: Mutex::default(),
        })
    }

    /// The guard of `upstream`, if it has one.
    pub(crate) fn get(&self, upstream: &str) -> Option<Arc<UpstreamGuard>> {
        self.by_upstream.get(upstream).cloned()
    }

    /// Whether a finding for `what` may be written now (at most one a minute each).
    pub(crate) fn may_record(&self, what: String) -> bool {
        let now = aegis_store::now_secs();
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        if recorded.len() > 10_000 {
            recorded.retain(|_, at| now - *at < 60);
        }
        match recorded.get(&what) {
            Some(at) if now - *at < 60 => false,
            _ => {
                recorded.insert(what, now);
                true
            }
        }
    }
}

impl UpstreamGuard {
    /// The mode for `model` through `key`: the key's, else the model's, else the upstream's.
    pub(crate) fn mode_for(&self, model: &str, key_id: &str, key_name: &str) -> GuardMode {
        self.config
            .keys
            .get(key_id)
            .or_else(|| self.config.keys.get(key_name))
            .or_else(|| self.config.models.get(model))
            .copied()
            .unwrap_or(self.config.mode)
    }
}
