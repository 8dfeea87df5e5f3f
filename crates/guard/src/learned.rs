//! The optional learned layer: a sentence embedding (all-MiniLM-L6-v2, loaded by `aegis_ml::sentence` from a
//! directory the operator names) and a logistic-regression head trained by us on openly licensed injection and
//! benign corpora (`bench/llm_guard/`), shipped inside the binary ([`Head::builtin`]).
//!
//! A text is normalised first (the `plain` view and any decoded runs of [`crate::normalize`]), split into
//! windows of [`WINDOW_TOKENS`] word pieces, and scored by its worst window: a long document with one injected
//! paragraph scores as that paragraph, not as the average of the document. At most [`MAX_WINDOWS`] windows are
//! read (the first and last halves of that budget); the rule layer still reads the whole text.

use std::path::Path;

use aegis_ml::sentence::SentenceEncoder;
use sha2::{Digest, Sha256};

use crate::normalize::{self, Channel};

/// Word pieces per window (plus `[CLS]` and `[SEP]`).
pub const WINDOW_TOKENS: usize = 126;
/// Windows read per text at most.
pub const MAX_WINDOWS: usize = 16;

/// What can go wrong loading or running the learned layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The encoder could not be loaded or run.
    #[error(transparent)]
    Encoder(#[from] aegis_ml::Error),
    /// The head does not fit the encoder or cannot be read.
    #[error("{0}")]
    Head(String),
}

/// A linear head over the embedding.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    /// SHA-256 (hex) of the `model.safetensors` it was trained on.
    pub encoder_sha256: String,
    /// Weights, one per embedding dimension.
    pub weights: Vec<f32>,
    /// Bias.
    pub bias: f32,
    /// What it was trained on (sources, rows), for the record.
    pub trained_on: String,
}

impl Head {
    /// The head that ships with Aegis (for all-MiniLM-L6-v2).
    pub fn builtin() -> Head {
        serde_json::from_str(include_str!("minilm_head.json")).expect("the built-in head parses")
    }

    /// Read a head written by `aegis llm train-head`.
    pub fn read(path: &Path) -> Result<Head, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Head(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Head(format!("{} is not a head file: {e}", path.display())))
    }

    /// P(injection) of one embedding.
    pub fn probability(&self, embedding: &[f32]) -> f64 {
        let z: f64 = self
            .weights
            .iter()
            .zip(embedding)
            .map(|(w, x)| f64::from(*w) * f64::from(*x))
            .sum::<f64>()
            + f64::from(self.bias);
        1.0 / (1.0 + (-z).exp())
    }
}

/// The encoder and its head.
#[derive(Debug)]
pub struct Learned {
    encoder: SentenceEncoder,
    head: Head,
}

impl Learned {
    /// Load the encoder from `dir` and pair it with `head` (the built-in one when `None`); the head must have
    /// been trained on these very weights.
    pub fn load(dir: &Path, head: Option<Head>) -> Result<Learned, Error> {
        let encoder = SentenceEncoder::load(dir)?;
        let head = head.unwrap_or_else(Head::builtin);
        if head.weights.len() != encoder.dim() {
            return Err(Error::Head(format!(
                "the head has {} weights but the encoder in {} makes {}-dimensional embeddings",
                head.weights.len(),
                dir.display(),
                encoder.dim()
            )));
        }
        let sha = file_sha256(&dir.join("model.safetensors"))?;
        if sha != head.encoder_sha256 {
            return Err(Error::Head(format!(
                "{}/model.safetensors (SHA-256 {sha}) is not the encoder the head was trained on ({}); use the \
                 all-MiniLM-L6-v2 weights named in docs/llm-guard.md, or train a head for these weights with \
                 `aegis llm train-head`",
                dir.display(),
                head.encoder_sha256
            )));
        }
        Ok(Learned { encoder, head })
    }

    /// Load the encoder from `dir` with an untrained (zero) head, to compute embeddings for training one.
    pub fn load_for_training(dir: &Path) -> Result<Learned, Error> {
        let encoder = SentenceEncoder::load(dir)?;
        let head = Head {
            encoder_sha256: file_sha256(&dir.join("model.safetensors"))?,
            weights: vec![0.0; encoder.dim()],
            bias: 0.0,
            trained_on: String::new(),
        };
        Ok(Learned { encoder, head })
    }

    /// The embeddings of `text`'s windows (normalised text first).
    pub fn embeddings(&self, text: &str) -> Result<Vec<Vec<f32>>, Error> {
        let mut out = Vec::new();
        for view in normalize::views(text) {
            if !matches!(
                view.channel,
                Channel::Plain | Channel::Base64 | Channel::Hex | Channel::Url | Channel::Tags
            ) {
                continue;
            }
            let pieces = self.encoder.tokenizer().pieces(&view.text);
            for window in windows(&pieces) {
                out.push(
                    self.encoder
                        .embed_ids(&self.encoder.tokenizer().wrap(window))?,
                );
            }
        }
        Ok(out)
    }

    /// P(injection) of `text`: the largest over its windows.
    pub fn score(&self, text: &str) -> Result<f64, Error> {
        Ok(self
            .embeddings(text)?
            .iter()
            .map(|e| self.head.probability(e))
            .fold(0.0, f64::max))
    }
}

/// The windows of `pieces`: consecutive runs of [`WINDOW_TOKENS`], at most [`MAX_WINDOWS`] (the first and the
/// last ones when there are more). An empty text is one empty window.
fn windows(pieces: &[u32]) -> Vec<&[u32]> {
    if pieces.is_empty() {
        return vec![pieces];
    }
    let all: Vec<&[u32]> = pieces.chunks(WINDOW_TOKENS).collect();
    if all.len() <= MAX_WINDOWS {
        return all;
    }
    let half = MAX_WINDOWS / 2;
    all[..half]
        .iter()
        .chain(&all[all.len() - half..])
        .copied()
        .collect()
}

fn file_sha256(path: &Path) -> Result<String, Error> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::Head(format!("cannot read {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .map_err(|e| Error::Head(format!("cannot read {}: {e}", path.display())))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The SHA-256 (hex) of `dir/model.safetensors`, recorded in a trained head.
pub fn encoder_sha256(dir: &Path) -> Result<String, Error> {
    file_sha256(&dir.join("model.safetensors"))
}

/// Train a logistic-regression head on embeddings and labels (true = injection): class-balanced, L2-regularised
/// (`l2`), full-batch Adam for `epochs` steps from zero weights, so the result depends only on the data.
pub fn train_head(
    embeddings: &[Vec<f32>],
    labels: &[bool],
    l2: f64,
    epochs: usize,
) -> (Vec<f32>, f32) {
    let dim = embeddings.first().map_or(0, Vec::len);
    let n = embeddings.len().max(1) as f64;
    let positives = labels.iter().filter(|&&l| l).count().max(1) as f64;
    let negatives = (labels.len() as f64 - positives).max(1.0);
    let weight = |l: bool| {
        if l {
            n / (2.0 * positives)
        } else {
            n / (2.0 * negatives)
        }
    };
    let mut w = vec![0.0f64; dim + 1];
    let (mut m, mut v) = (vec![0.0f64; dim + 1], vec![0.0f64; dim + 1]);
    let (lr, b1, b2, eps) = (0.05, 0.9, 0.999, 1e-8);
    for t in 1..=epochs {
        let mut grad = vec![0.0f64; dim + 1];
        for (x, &l) in embeddings.iter().zip(labels) {
            let z: f64 = x
                .iter()
                .zip(&w)
                .map(|(a, b)| f64::from(*a) * b)
                .sum::<f64>()
                + w[dim];
            let p = 1.0 / (1.0 + (-z).exp());
            let g = weight(l) * (p - if l { 1.0 } else { 0.0 }) / n;
            for (gi, xi) in grad.iter_mut().zip(x) {
                *gi += g * f64::from(*xi);
            }
            grad[dim] += g;
        }
        for i in 0..dim {
            grad[i] += l2 * w[i];
        }
        for i in 0..=dim {
            m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
            v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
            let mh = m[i] / (1.0 - b1.powi(t as i32));
            let vh = v[i] / (1.0 - b2.powi(t as i32));
            w[i] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    let bias = w.pop().unwrap_or(0.0) as f32;
    (w.into_iter().map(|x| x as f32).collect(), bias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_short_texts_and_bound_long_ones() {
        assert_eq!(windows(&[]).len(), 1);
        let short: Vec<u32> = (0..200).collect();
        assert_eq!(windows(&short).len(), 2);
        let long: Vec<u32> = (0..(WINDOW_TOKENS * 40) as u32).collect();
        let w = windows(&long);
        assert_eq!(w.len(), MAX_WINDOWS);
        assert_eq!(w[0][0], 0);
        assert_eq!(*w.last().unwrap().last().unwrap(), long.len() as u32 - 1);
    }

    #[test]
    fn the_head_learns_a_separable_rule_and_the_builtin_parses() {
        // Label = sign of the first coordinate.
        let xs: Vec<Vec<f32>> = (0..200)
            .map(|i| {
                let a = ((i * 37) % 200) as f32 / 100.0 - 1.0;
                vec![a, ((i * 11) % 7) as f32 / 7.0]
            })
            .collect();
        let ys: Vec<bool> = xs.iter().map(|x| x[0] > 0.0).collect();
        let (w, b) = train_head(&xs, &ys, 1e-4, 300);
        let head = Head {
            encoder_sha256: String::new(),
            weights: w,
            bias: b,
            trained_on: String::new(),
        };
        let correct = xs
            .iter()
            .zip(&ys)
            .filter(|(x, &y)| (head.probability(x) > 0.5) == y)
            .count();
        assert!(correct >= 195, "{correct}/200");
        let builtin = Head::builtin();
        assert_eq!(builtin.weights.len(), 384);
        assert_eq!(builtin.encoder_sha256.len(), 64);
    }
}
