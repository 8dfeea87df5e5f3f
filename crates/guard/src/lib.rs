//! LLM traffic screening for `aegis serve`, `aegis llm screen` and `aegis assess llm`.
//!
//! - [`normalize`]: the views of a text that undo obfuscation (NFKC, invisibles, look-alikes, spacing,
//!   leetspeak, base64/hex/percent/rot13, tag smuggling);
//! - [`rules`]: the rule layer, phrase families of prompt injection and jailbreaks;
//! - [`Screener`]: views + rules + allow-list → a [`Verdict`] with a 0–1 score;
//! - [`learned`]: the optional learned layer (sentence embedding + a linear head we train);
//! - [`pii`]: personal data and secrets (Luhn, mod 97, provider key shapes, PEM blocks, entropy);
//! - [`canary`]: per-request canary tokens and their detection, written any way, streamed or not;
//! - [`openai`]: the OpenAI wire format (request texts, system prompt, answers, the stream filter).
//!
//! No IO and no clock: the caller supplies the random bytes of a canary, and decides what to do with a verdict.

pub mod canary;
pub mod learned;
pub mod normalize;
pub mod openai;
pub mod pii;
pub mod rules;
mod screen;

pub use screen::{
    AllowList, Layer, Screener, Source, Verdict, DEFAULT_LEARNED_THRESHOLD, DEFAULT_THRESHOLD,
};
