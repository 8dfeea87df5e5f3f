//! Evasions found in review, each with a benign twin: routing tricks (a pickle with a zip end record, a
//! pickle with no `PROTO` header), templates outside GGUF (`chat_template.jinja`, JSON that Python's json
//! accepts and strict parsers reject), and tar members with unknown type flags.

use crate::Case;

/// `os.system("echo pwned")`, protocol 2, as bytes (never executed).
const PAYLOAD: &[u8] =
    b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";

/// The same call with no `PROTO` header, preceded by `NONE`, `POP`: `pickle.load` reads it all the same.
const HEADERLESS: &[u8] = b"N0cos\nsystem\n(S'echo pwned'\ntR.";

const SSTI: &str = "{% for m in messages %}{{ m['content'] }}{% endfor %}\
                    {{ cycler.__init__.__globals__.os.popen('id').read() }}";
const HONEST: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + \
                      message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}\
                      {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// An empty zip end-of-central-directory record.
fn eocd() -> Vec<u8> {
    let mut record = b"PK\x05\x06".to_vec();
    record.extend_from_slice(&[0; 18]);
    record
}

/// A 512-byte ustar header for a member of `size` bytes with type flag `flag`.
fn tar_header(name: &str, size: usize, flag: u8) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = flag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

fn tar(name: &str, data: &[u8], flag: u8) -> Vec<u8> {
    let mut out = tar_header(name, data.len(), flag);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0; 1024]);
    out
}

fn tokenizer_config(template: &str) -> Vec<u8> {
    let escaped = serde_json::to_string(template).unwrap_or_default();
    format!("{{\"bos_token\": \"<s>\", \"model_max_length\": NaN, \"chat_template\": {escaped}}}")
        .into_bytes()
}

/// Malicious and benign cases of routing and template evasions.
pub fn corpus() -> Vec<Case> {
    let critical = "AEG-SCAN-101";
    let mut with_eocd = PAYLOAD.to_vec();
    with_eocd.extend_from_slice(&eocd());
    let mut benign_with_eocd = b"\x80\x02}q\x00.".to_vec();
    benign_with_eocd.extend_from_slice(&eocd());
    let mut benign_binary = b"K".to_vec();
    benign_binary.extend((0u32..600).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    vec![
        Case::malicious(
            "route/pickle-with-zip-end-record",
            "model.pt",
            with_eocd,
            critical,
            "pickle whose tail carries a zip end record, so zip-first routing misses the head",
        ),
        Case::benign(
            "route/benign-pickle-with-zip-end-record",
            "model.pt",
            benign_with_eocd,
            "benign pickle followed by a zip end record",
        ),
        Case::malicious(
            "route/headerless-pickle",
            "weights.dat",
            HEADERLESS.to_vec(),
            critical,
            "pickle without PROTO header starting with NONE, POP",
        ),
        Case::malicious(
            "route/proto1-header",
            "model.pkl",
            [b"\x80\x01".as_slice(), &PAYLOAD[2..]].concat(),
            critical,
            "PROTO 1 header, which writers never emit but loaders accept",
        ),
        Case::benign(
            "route/opcode-like-binary",
            "weights.dat",
            benign_binary,
            "binary data whose first byte happens to be a pickle opcode",
        ),
        Case::malicious(
            "route/tar-unknown-typeflag",
            "checkpoint.tar",
            tar("archive/data.pkl", PAYLOAD, b'Z'),
            critical,
            "tar member with an unknown type flag, which tarfile reads as a regular file",
        ),
        Case::benign(
            "route/tar-regular",
            "checkpoint.tar",
            tar("archive/data.pkl", b"\x80\x02}q\x00.", b'0'),
            "tar with a benign pickle member",
        ),
        Case::malicious(
            "template/jinja-file",
            "chat_template.jinja",
            SSTI.as_bytes().to_vec(),
            "AEG-SCAN-411",
            "SSTI in chat_template.jinja, which transformers renders",
        ),
        Case::benign(
            "template/jinja-file-honest",
            "chat_template.jinja",
            HONEST.as_bytes().to_vec(),
            "honest ChatML template file",
        ),
        Case::malicious(
            "template/tokenizer-config-nan",
            "tokenizer_config.json",
            tokenizer_config(SSTI),
            "AEG-SCAN-411",
            "SSTI in a tokenizer_config.json that only Python's lenient json accepts (NaN)",
        ),
        Case::benign(
            "template/tokenizer-config-nan-honest",
            "tokenizer_config.json",
            tokenizer_config(HONEST),
            "honest template in lenient JSON",
        ),
    ]
}
