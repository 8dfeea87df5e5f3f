//! A BERT sentence encoder (all-MiniLM-L6-v2 and other `BertModel` checkpoints of its shape), for the LLM
//! guard's learned layer: WordPiece tokenisation as `tokenizers`' BERT pipeline does it, the encoder forward on
//! candle, mean pooling and L2 normalisation (sentence-transformers' semantics).
//!
//! The weights come from a directory the operator names: `model.safetensors` (read through `aegis-formats`, the
//! one safetensors parser, with every tensor's shape checked against `config.json`), `tokenizer.json` (its
//! WordPiece vocabulary) and `config.json`. Nothing is downloaded. Tokenisation is checked against the
//! `tokenizers` package, and embeddings against a numpy implementation, in the tests (`testdata/`).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use unicode_normalization::UnicodeNormalization;

use crate::Error;

/// Largest weight file read, in bytes (MiniLM-L6 is 91 MB; BERT-base 440 MB).
pub const MAX_WEIGHTS_BYTES: u64 = 600 << 20;
/// Longest word WordPiece splits; longer ones are `[UNK]` (as in BERT).
const MAX_WORD_CHARS: usize = 100;

/// WordPiece tokenisation of an uncased BERT vocabulary.
#[derive(Debug, Clone)]
pub struct WordPiece {
    vocab: HashMap<String, u32>,
    cls: u32,
    sep: u32,
    unk: u32,
    lowercase: bool,
}

impl WordPiece {
    /// Read the vocabulary of a `tokenizer.json` (a WordPiece model).
    pub fn from_tokenizer_json(path: &Path) -> Result<WordPiece, Error> {
        let bad = |reason: String| Error::Load {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        if json.pointer("/model/type").and_then(|t| t.as_str()) != Some("WordPiece") {
            return Err(bad(
                "the tokenizer is not a WordPiece (BERT) tokenizer".into()
            ));
        }
        let vocab: HashMap<String, u32> = json
            .pointer("/model/vocab")
            .and_then(|v| v.as_object())
            .ok_or_else(|| bad("no model.vocab".into()))?
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), u32::try_from(v.as_u64()?).ok()?)))
            .collect();
        let id = |t: &str| {
            vocab
                .get(t)
                .copied()
                .ok_or_else(|| bad(format!("the vocabulary has no {t}")))
        };
        let lowercase = json
            .pointer("/normalizer/lowercase")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        Ok(WordPiece {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            unk: id("[UNK]")?,
            vocab,
            lowercase,
        })
    }

    /// The word pieces of `text`, without `[CLS]`/`[SEP]`.
    pub fn pieces(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for word in self.pre_tokenize(text) {
            self.word_pieces(&word, &mut out);
        }
        out
    }

    /// `[CLS]` + `pieces` + `[SEP]`.
    pub fn wrap(&self, pieces: &[u32]) -> Vec<u32> {
        let mut ids = Vec::with_capacity(pieces.len() + 2);
        ids.push(self.cls);
        ids.extend_from_slice(pieces);
        ids.push(self.sep);
        ids
    }

    /// BERT's normaliser and pre-tokeniser: clean control characters, space out CJK ideographs, lower-case and
    /// strip accents, split on whitespace and punctuation.
    fn pre_tokenize(&self, text: &str) -> Vec<String> {
        let mut cleaned = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\0' || c == '\u{fffd}' || (is_control(c)) {
                continue;
            }
            if is_cjk(c) {
                cleaned.push(' ');
                cleaned.push(c);
                cleaned.push(' ');
            } else if c.is_whitespace() {
                cleaned.push(' ');
            } else {
                cleaned.push(c);
            }
        }
        let normalised: String = if self.lowercase {
            cleaned
                .to_lowercase()
                .nfd()
                .filter(|c| !is_combining_mark(*c))
                .collect()
        } else {
            cleaned
        };
        let mut words = Vec::new();
        for chunk in normalised.split(' ').filter(|w| !w.is_empty()) {
            let mut current = String::new();
            for c in chunk.chars() {
                if is_punctuation(c) {
                    if !current.is_empty() {
                        words.push(std::mem::take(&mut current));
                    }
                    words.push(c.to_string());
                } else {
                    current.push(c);
                }
            }
            if !current.is_empty() {
                words.push(current);
            }
        }
        words
    }

    fn word_pieces(&self, word: &str, out: &mut Vec<u32>) {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > MAX_WORD_CHARS {
            out.push(self.unk);
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        let mut piece = String::new();
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                piece.clear();
                if start > 0 {
                    piece.push_str("##");
                }
                piece.extend(&chars[start..end]);
                if let Some(&id) = self.vocab.get(&piece) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => pieces.push(id),
                None => {
                    out.push(self.unk);
                    return;
                }
            }
            start = end;
        }
        out.extend(pieces);
    }
}

fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    c.is_control()
        || matches!(c as u32, 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0xFEFF)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Unicode combining marks (general category Mn) in the ranges text actually uses.
fn is_combining_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x0610..=0x061A | 0x064B..=0x065F
        | 0x0900..=0x0903 | 0x093A..=0x094F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// BERT's punctuation: ASCII symbols and Unicode punctuation (general category P*).
fn is_punctuation(c: char) -> bool {
    let u = c as u32;
    matches!(u, 33..=47 | 58..=64 | 91..=96 | 123..=126)
        || matches!(u,
            0x00A1 | 0x00A7 | 0x00AB | 0x00B6 | 0x00B7 | 0x00BB | 0x00BF | 0x037E | 0x0387
            | 0x055A..=0x055F | 0x0589 | 0x058A | 0x05BE | 0x05C0 | 0x05C3 | 0x05C6 | 0x05F3 | 0x05F4
            | 0x0609 | 0x060A | 0x060C | 0x060D | 0x061B | 0x061E | 0x061F | 0x066A..=0x066D | 0x06D4
            | 0x0964 | 0x0965 | 0x0970 | 0x2010..=0x2027 | 0x2030..=0x2043 | 0x2045..=0x2051
            | 0x2053..=0x205E | 0x207D | 0x207E | 0x208D | 0x208E | 0x2308..=0x230B | 0x2329 | 0x232A
            | 0x2768..=0x2775 | 0x27C5 | 0x27C6 | 0x27E6..=0x27EF | 0x2983..=0x2998 | 0x29D8..=0x29DB
            | 0x29FC | 0x29FD | 0x2CF9..=0x2CFC | 0x2CFE | 0x2CFF | 0x2E00..=0x2E2E | 0x2E30..=0x2E4F
            | 0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301F | 0x3030 | 0x303D | 0x30A0 | 0x30FB
            | 0xFE10..=0xFE19 | 0xFE30..=0xFE52 | 0xFE54..=0xFE61 | 0xFE63 | 0xFE68 | 0xFE6A | 0xFE6B
            | 0xFF01..=0xFF03 | 0xFF05..=0xFF0A | 0xFF0C..=0xFF0F | 0xFF1A | 0xFF1B | 0xFF1F | 0xFF20
            | 0xFF3B..=0xFF3D | 0xFF3F | 0xFF5B | 0xFF5D | 0xFF5F..=0xFF65)
}

/// The encoder's shape, from `config.json`.
#[derive(Debug, Clone, serde::Deserialize)]
struct Config {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    vocab_size: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    hidden_act: String,
}

fn default_type_vocab() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

struct Layer {
    qkv_w: Tensor,
    qkv_b: Tensor,
    out_w: Tensor,
    out_b: Tensor,
    ln1: (Tensor, Tensor),
    up_w: Tensor,
    up_b: Tensor,
    down_w: Tensor,
    down_b: Tensor,
    ln2: (Tensor, Tensor),
}

/// A loaded BERT sentence encoder.
pub struct SentenceEncoder {
    tokenizer: WordPiece,
    config: Config,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    ln: (Tensor, Tensor),
    layers: Vec<Layer>,
    device: Device,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder")
            .field("hidden", &self.config.hidden_size)
            .field("layers", &self.config.num_hidden_layers)
            .finish()
    }
}

impl SentenceEncoder {
    /// Load `dir/model.safetensors`, `dir/tokenizer.json` and `dir/config.json`.
    pub fn load(dir: &Path) -> Result<SentenceEncoder, Error> {
        let config_path = dir.join("config.json");
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(&config_path).map_err(|source| {
                Error::Io {
                    path: config_path.clone(),
                    source,
                }
            })?)
            .map_err(|e| Error::Load {
                path: config_path.clone(),
                reason: format!("not a BERT config.json: {e}"),
            })?;
        let bad = |reason: String| Error::Load {
            path: dir.join("model.safetensors"),
            reason,
        };
        if config.hidden_size == 0
            || config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
            || config.num_hidden_layers == 0
            || config.num_hidden_layers > 48
        {
            return Err(bad("config.json describes no usable BERT encoder".into()));
        }
        if !(config.hidden_act.is_empty() || config.hidden_act == "gelu") {
            return Err(bad(format!(
                "activation {:?} is not supported (gelu only)",
                config.hidden_act
            )));
        }
        let tokenizer = WordPiece::from_tokenizer_json(&dir.join("tokenizer.json"))?;
        let mut tensors = read_tensors(&dir.join("model.safetensors"))?;
        let device = Device::Cpu;
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let mut take = |name: &str, shape: &[usize]| -> Result<Tensor, Error> {
            let key = [name.to_string(), format!("bert.{name}")]
                .into_iter()
                .find(|k| tensors.contains_key(k))
                .ok_or_else(|| bad(format!("no tensor {name}")))?;
            let (dims, data) = tensors.remove(&key).expect("present");
            if dims != shape {
                return Err(bad(format!(
                    "{name} has shape {dims:?}, expected {shape:?}"
                )));
            }
            Tensor::from_vec(data, shape, &device).map_err(|e| bad(e.to_string()))
        };
        let word = take("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let position = take(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let token_type = take(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        let ln = (
            take("embeddings.LayerNorm.weight", &[h])?,
            take("embeddings.LayerNorm.bias", &[h])?,
        );
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        let t = |x: Tensor| x.t().and_then(|x| x.contiguous());
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let mut lin =
                |name: &str, rows: usize, cols: usize| -> Result<(Tensor, Tensor), Error> {
                    let w = take(&format!("{p}.{name}.weight"), &[rows, cols])?;
                    let b = take(&format!("{p}.{name}.bias"), &[rows])?;
                    Ok((t(w).map_err(|e| bad(e.to_string()))?, b))
                };
            let (qw, qb) = lin("attention.self.query", h, h)?;
            let (kw, kb) = lin("attention.self.key", h, h)?;
            let (vw, vb) = lin("attention.self.value", h, h)?;
            let (out_w, out_b) = lin("attention.output.dense", h, h)?;
            let (up_w, up_b) = lin("intermediate.dense", i, h)?;
            let (down_w, down_b) = lin("output.dense", h, i)?;
            let cat = |a: &[Tensor], dim| Tensor::cat(a, dim).map_err(|e| bad(e.to_string()));
            layers.push(Layer {
                qkv_w: cat(&[qw, kw, vw], 1)?,
                qkv_b: cat(&[qb, kb, vb], 0)?,
                out_w,
                out_b,
                ln1: (
                    take(&format!("{p}.attention.output.LayerNorm.weight"), &[h])?,
                    take(&format!("{p}.attention.output.LayerNorm.bias"), &[h])?,
                ),
                up_w,
                up_b,
                down_w,
                down_b,
                ln2: (
                    take(&format!("{p}.output.LayerNorm.weight"), &[h])?,
                    take(&format!("{p}.output.LayerNorm.bias"), &[h])?,
                ),
            });
        }
        Ok(SentenceEncoder {
            tokenizer,
            config,
            word,
            position,
            token_type,
            ln,
            layers,
            device,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &WordPiece {
        &self.tokenizer
    }

    /// Dimensions of an embedding.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Most tokens in one window (`[CLS]` and `[SEP]` included).
    pub fn max_tokens(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// The normalised mean-pooled embedding of `ids` (already wrapped in `[CLS]`…`[SEP]`; at most
    /// [`Self::max_tokens`]).
    pub fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, Error> {
        self.forward(ids).map_err(|e| Error::Eval(e.to_string()))
    }

    fn forward(&self, ids: &[u32]) -> candle_core::Result<Vec<f32>> {
        let n = ids.len().clamp(1, self.max_tokens());
        let ids: Vec<u32> = ids
            .iter()
            .take(n)
            .map(|&i| i.min(self.config.vocab_size as u32 - 1))
            .collect();
        let dev = &self.device;
        let h = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let d = h / heads;
        let eps = self.config.layer_norm_eps as f32;
        let ids = Tensor::new(ids.as_slice(), dev)?;
        let pos = Tensor::arange(0u32, n as u32, dev)?;
        let mut x = self
            .word
            .index_select(&ids, 0)?
            .add(&self.position.index_select(&pos, 0)?)?
            .broadcast_add(&self.token_type.get(0)?)?;
        x = candle_nn::ops::layer_norm(&x, &self.ln.0, &self.ln.1, eps)?;
        let scale = 1.0 / (d as f64).sqrt();
        for l in &self.layers {
            let qkv = x.matmul(&l.qkv_w)?.broadcast_add(&l.qkv_b)?; // [n, 3h]
            let split = |k: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(1, k * h, h)?
                    .reshape((n, heads, d))?
                    .transpose(0, 1)?
                    .contiguous()
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let attn = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = attn
                .matmul(&v)?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((n, h))?;
            let out = ctx.matmul(&l.out_w)?.broadcast_add(&l.out_b)?;
            x = candle_nn::ops::layer_norm(&(x + out)?, &l.ln1.0, &l.ln1.1, eps)?;
            let up = x.matmul(&l.up_w)?.broadcast_add(&l.up_b)?.gelu_erf()?;
            let down = up.matmul(&l.down_w)?.broadcast_add(&l.down_b)?;
            x = candle_nn::ops::layer_norm(&(x + down)?, &l.ln2.0, &l.ln2.1, eps)?;
        }
        let mean = x.mean(0)?;
        let norm = mean
            .sqr()?
            .sum_all()?
            .sqrt()?
            .to_scalar::<f32>()?
            .max(1e-12);
        (mean / f64::from(norm))?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()
    }
}

/// Tensors by name: shape and values.
type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Every F32 tensor of a safetensors file as (shape, values), located by `aegis-formats`' parser.
fn read_tensors(path: &Path) -> Result<Tensors, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |reason: String| Error::Load {
        path: PathBuf::from(path),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_WEIGHTS_BYTES {
        return Err(bad(format!("larger than {} MB", MAX_WEIGHTS_BYTES >> 20)));
    }
    let header =
        aegis_formats::safetensors::parse(&mut file, len, &aegis_formats::Limits::default())
            .map_err(|e| bad(e.to_string()))?;
    if !header.anomalies.is_empty() {
        return Err(bad(format!(
            "the safetensors file is malformed: {:?}",
            header.anomalies[0]
        )));
    }
    let mut out = HashMap::new();
    for t in &header.tensors {
        if t.dtype != "F32" {
            continue; // position ids (I64) and anything else the encoder does not read
        }
        let bytes = t.end - t.begin;
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let count: usize = shape.iter().product();
        if bytes != count as u64 * 4 {
            return Err(bad(format!(
                "tensor {} has {bytes} bytes for {count} values",
                t.name
            )));
        }
        let mut buf = vec![0u8; bytes as usize];
        file.seek(SeekFrom::Start(header.buffer_start + t.begin))
            .map_err(io)?;
        file.read_exact(&mut buf).map_err(io)?;
        let values = buf
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(t.name.clone(), (shape, values));
    }
    Ok(out)
}
