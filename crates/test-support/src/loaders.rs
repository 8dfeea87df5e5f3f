//! Files whose magic number says one thing while a loader reads another: polyglot pickles (a first opcode that
//! swallows another format's magic), every compression codec joblib and pandas write, and headerless
//! (protocol 0/1) pickles inside containers whose member names promise nothing. Each malicious case has a
//! benign twin made the same way.

use crate::gguf::honest_model;
use crate::tar::{bzip2, gzip, legacy_torch_tar, lz4, lzma_alone, xz, zlib, zstd, TarWriter};
use crate::zip::{pytorch_zip, state_dict_pickle, tensor_bytes, BENIGN_PICKLE, PAYLOAD_PICKLE};
use crate::Case;

/// A protocol-1 pickle without a `PROTO` header that calls `os.system`: `K\x01` (an int), `0` (pop it),
/// then the call. No sniffer shape matches its first byte.
pub const HEADERLESS_PAYLOAD: &[u8] = b"K\x010cos\nsystem\n(X\x02\x00\x00\x00idtR.";

/// The benign twin: a headerless protocol-1 pickle of a small list.
pub const HEADERLESS_BENIGN: &[u8] = b"]q\x00(K\x01K\x02e.";

/// The call every polyglot ends with: pop what the magic number pushed, then `os.system('id')`.
const TAIL: &[u8] = b"0cos\nsystem\n(X\x02\x00\x00\x00idtR.";

/// `GGUF` read as `BINFLOAT` (`G` and eight bytes: `GUF`, the version, one byte), then the call.
pub fn gguf_polyglot() -> Vec<u8> {
    let mut out = b"GGUF\x03\x00\x00\x00\x00".to_vec();
    out.extend_from_slice(TAIL);
    out
}

/// `BZh1` read as `BINBYTES` whose four-byte length is `Zh1\0` (3,237,978 bytes), then the call.
pub fn bzip2_polyglot() -> Vec<u8> {
    let len = u32::from_le_bytes(*b"Zh1\x00") as usize;
    let mut out = b"BZh1\x00".to_vec();
    out.resize(out.len() + len, b'A');
    out.extend_from_slice(TAIL);
    out
}

/// A protocol-2 pickle whose first string puts `ustar\0` at offset 257, where tar sniffers look.
pub fn tar_polyglot() -> Vec<u8> {
    let mut out = b"\x80\x02X".to_vec();
    let text_start = out.len() + 4;
    let mut text = vec![b'a'; 257 - text_start];
    text.extend_from_slice(b"ustar\x0000");
    text.resize(600, b'a');
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(TAIL);
    out
}

/// A compressor: bytes in, compressed stream out.
pub type Encode = fn(&[u8]) -> Vec<u8>;

/// A `data.pkl` of one tensor over storage `0` (FloatStorage, `numel` elements): a view of `size` elements
/// from `offset`, optionally followed by `SETITEMS` on the tensor (`tensor[0] = 7` at load).
pub fn tensor_pickle(numel: u8, size: u8, offset: u8, setitems: bool) -> Vec<u8> {
    let mut p =
        b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x06\x00\x00\x00weightq\x02".to_vec();
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\nq\x03");
    p.extend_from_slice(b"((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05");
    p.extend_from_slice(b"X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K");
    p.push(numel);
    p.extend_from_slice(b"tq\x08QK");
    p.push(offset);
    p.push(b'K');
    p.push(size);
    p.extend_from_slice(b"\x85q\tK\x01\x85q\n\x89h\x00)Rq\x0btq\x0cRq\r");
    if setitems {
        p.extend_from_slice(b"(K\x00K\x07u");
    }
    p.extend_from_slice(b"s.");
    p
}

/// A TorchScript archive (`torch.jit.save` layout) whose module's `forward` is `body` (TorchScript source).
pub fn torchscript_zip(body: &str) -> Vec<u8> {
    use crate::zip::{Member, ZipWriter};
    let code = format!(
        "class Net(Module):\n  __parameters__ = []\n  __buffers__ = []\n  training : bool\n  \
         def forward(self: __torch__.Net,\n    input: Tensor) -> Tensor:\n{body}"
    );
    let data = b"\x80\x02c__torch__\nNet\n)\x81}X\x08\x00\x00\x00trainingq\x00\x88sb.";
    // A source map as TorchScript writes it: list builders from `torch.jit._pickle`.
    let debug = b"\x80\x02ctorch.jit._pickle\nbuild_intlist\n]\x85R.";
    ZipWriter::from_members(vec![
        Member::stored("net/data.pkl", data),
        Member::stored("net/code/__torch__.py", code.as_bytes()),
        Member::stored("net/code/__torch__.py.debug_pkl", debug),
        Member::stored("net/constants.pkl", b"\x80\x02).".as_slice()),
        Member::stored("net/version", b"6\n"),
    ])
    .finish()
}

/// A legacy torch tar `storages` member as `torch.save` (< 1.6) lays it out: the count, one storage record
/// (`('0', 'cpu', torch.FloatStorage)`, its element count and four bytes of data), then the storage views
/// pickle `views` (a protocol-0 pickle after raw bytes, which `pickle.load` runs).
pub fn legacy_storages(views: &[u8]) -> Vec<u8> {
    let mut out = b"\x80\x02K\x01.".to_vec();
    out.extend_from_slice(
        b"\x80\x02(X\x01\x00\x00\x000X\x03\x00\x00\x00cpuctorch\nFloatStorage\ntq\x00.",
    );
    out.extend_from_slice(&1u64.to_le_bytes());
    out.extend_from_slice(&0.5f32.to_le_bytes());
    out.extend_from_slice(views);
    out
}

/// A legacy torch tar whose `storages` member is [`legacy_storages`] of `views`.
pub fn legacy_tar_with_storages(views: &[u8]) -> Vec<u8> {
    TarWriter::new()
        .file("sys_info", b"\x80\x02}q\x00.")
        .file("pickle", &state_dict_pickle())
        .file("storages", &legacy_storages(views))
        .file("tensors", b"\x80\x02K\x00.")
        .finish()
}

/// Every codec joblib and pandas compress with, by its file-name extension.
pub const CODECS: [(&str, Encode); 5] = [
    ("bz2", bzip2),
    ("xz", xz),
    ("lzma", lzma_alone),
    ("zst", zstd),
    ("lz4", lz4),
];

/// Malicious and benign cases of this module.
pub fn corpus() -> Vec<Case> {
    let mut cases = vec![
        Case::malicious(
            "polyglot/gguf-magic-pickle",
            "model.gguf",
            gguf_polyglot(),
            "AEG-SCAN-101",
            "pickle whose BINFLOAT swallows the GGUF magic",
        ),
        Case::benign(
            "polyglot/gguf-honest",
            "model.gguf",
            honest_model(crate::gguf::CHATML_TEMPLATE),
            "an honest GGUF (its magic is also a pickle opcode)",
        ),
        Case::malicious(
            "polyglot/bzip2-magic-pickle",
            "model.pt",
            bzip2_polyglot(),
            "AEG-SCAN-101",
            "pickle whose BINBYTES length swallows the bzip2 magic",
        ),
        Case::benign(
            "polyglot/bzip2-honest",
            "model.pkl.bz2",
            bzip2(&state_dict_pickle()),
            "a real bzip2 stream of a benign pickle",
        ),
        Case::malicious(
            "polyglot/ustar-at-257-pickle",
            "model.pt",
            tar_polyglot(),
            "AEG-SCAN-101",
            "pickle with a tar magic at offset 257",
        ),
        Case::benign(
            "polyglot/tar-honest",
            "model.tar",
            legacy_torch_tar(&state_dict_pickle()),
            "a real tar whose first bytes are a member name",
        ),
        Case::malicious(
            "container/zlib-headerless",
            "model.joblib",
            zlib(HEADERLESS_PAYLOAD),
            "AEG-SCAN-101",
            "headerless pickle in a zlib joblib stream",
        ),
        Case::benign(
            "container/zlib-headerless-benign",
            "model.joblib",
            zlib(HEADERLESS_BENIGN),
            "headerless benign pickle in a zlib joblib stream",
        ),
        Case::malicious(
            "container/gzip-any-name-headerless",
            "model.gz",
            gzip(HEADERLESS_PAYLOAD, Some("weights.data")),
            "AEG-SCAN-101",
            "headerless pickle in a gzip member of an arbitrary name",
        ),
        Case::benign(
            "container/gzip-any-name-text",
            "notes.gz",
            gzip(b"cat\ndog\nelephant\n", Some("labels.txt")),
            "text in a gzip member",
        ),
        Case::malicious(
            "container/torch-tar-storages-headerless",
            "model.tar",
            TarWriter::new()
                .file("sys_info", b"\x80\x02}q\x00.")
                .file("pickle", &state_dict_pickle())
                .file("storages", HEADERLESS_PAYLOAD)
                .file("tensors", b"\x80\x02K\x00.")
                .finish(),
            "AEG-SCAN-101",
            "headerless pickle as the storages member of a legacy torch tar",
        ),
        Case::benign(
            "container/torch-tar-storages-raw",
            "model.tar",
            TarWriter::new()
                .file("pickle", &state_dict_pickle())
                .file("storages", &tensor_bytes())
                .finish(),
            "raw storage bytes in a legacy torch tar",
        ),
        Case::malicious(
            "container/torch-tar-payload-after-storage-data",
            "model.tar",
            legacy_tar_with_storages(b"cposix\nsystem\n(S'id'\ntR."),
            "AEG-SCAN-101",
            "a protocol-0 pickle after a storage's raw bytes in a legacy torch tar",
        ),
        Case::benign(
            "container/torch-tar-storage-layout",
            "model.tar",
            legacy_tar_with_storages(b"\x80\x02]q\x00."),
            "a legacy torch tar's storages member with raw data between its pickles",
        ),
        Case::malicious(
            "container/pandas-tar-gz-headerless",
            "frame.pkl.tar.gz",
            gzip(
                &TarWriter::new().file("frame", HEADERLESS_PAYLOAD).finish(),
                None,
            ),
            "AEG-SCAN-101",
            "headerless pickle inside a pandas .pkl.tar.gz",
        ),
        Case::benign(
            "container/pandas-tar-gz-benign",
            "frame.pkl.tar.gz",
            gzip(
                &TarWriter::new().file("frame", BENIGN_PICKLE).finish(),
                None,
            ),
            "benign pickle inside a .pkl.tar.gz",
        ),
        Case::benign(
            "container/text-members-in-tar",
            "run.tar.gz",
            gzip(
                &TarWriter::new()
                    .file("labels.txt", b"cat\ndog\nelephant\n")
                    .file(
                        "hparams.yaml",
                        b"lr: 0.001\nbatch_size: 32\nclasses:\n- cat\n- dog\n",
                    )
                    .file("vocab.txt", b"[PAD]\n[UNK]\n(\n)\nI\nS\n")
                    .file("notes", b"cos\nsine\n(radians)\n")
                    .finish(),
                None,
            ),
            "text members (labels, YAML, vocabularies) inside a compressed tar",
        ),
    ];
    for (ext, encode) in CODECS {
        cases.push(Case::malicious(
            &format!("compressed/joblib-{ext}-payload"),
            "model.joblib",
            encode(PAYLOAD_PICKLE),
            "AEG-SCAN-101",
            "payload pickle in a joblib or pandas compressed stream",
        ));
        cases.push(Case::benign(
            &format!("compressed/pickle-{ext}-benign"),
            &format!("model.pkl.{ext}"),
            encode(&state_dict_pickle()),
            "benign pickle in a compressed stream",
        ));
    }
    // A genuine-looking scikit-learn name that resolves to `multiprocessing.connection.Client`, which opens a
    // connection when called, spliced before a Pipeline.
    let mut spliced = b"\x80\x04".to_vec();
    spliced.extend_from_slice(
        b"csklearn.callback._transport\nClient\n(X\t\x00\x00\x00127.0.0.1M\x5c\x11\x86tR0",
    );
    spliced.extend_from_slice(b"csklearn.pipeline\nPipeline\n)\x81}X\x05\x00\x00\x00steps]sb.");
    cases.push(Case::malicious(
        "trust/sklearn-reexport-client",
        "model.pkl",
        spliced,
        "AEG-SCAN-101",
        "a scikit-learn module's re-export of multiprocessing.connection.Client",
    ));
    cases.push(Case::benign(
        "trust/sklearn-pipeline",
        "model.pkl",
        b"\x80\x04csklearn.pipeline\nPipeline\n)\x81}X\x05\x00\x00\x00stepsq\x00]q\x01sb.".to_vec(),
        "a plain scikit-learn Pipeline",
    ));
    // Memory primitives from allowed names only (the storage member holds 4 floats).
    let tensor =
        |numel, size, offset, setitems| pytorch_zip(&tensor_pickle(numel, size, offset, setitems));
    for (name, bytes, what) in [
        (
            "setitems-on-tensor",
            tensor(4, 4, 0, true),
            "SETITEMS applied to a tensor during unpickling",
        ),
        (
            "view-past-storage",
            tensor(4, 64, 0, false),
            "a tensor view past the elements its storage declares",
        ),
        (
            "storage-past-data",
            tensor(64, 64, 0, false),
            "a storage declaring more elements than its data holds",
        ),
    ] {
        let name = format!("tensor/{name}");
        cases.push(Case::malicious(
            &name,
            "model.pt",
            bytes,
            "AEG-SCAN-111",
            what,
        ));
    }
    cases.push(Case::benign(
        "tensor/view-at-the-end",
        "model.pt",
        tensor(4, 2, 2, false),
        "a view over the last two elements of its storage",
    ));
    cases.push(Case::malicious(
        "torchscript/custom-operator-and-from-file",
        "model.pt",
        torchscript_zip(
            "    x = torch.from_file(\"/etc/shadow\", False, 4096)\n    return ops.acme.exfiltrate(input, x)\n",
        ),
        "AEG-SCAN-112",
        "TorchScript calling a custom native operator and reading a host file",
    ));
    cases.push(Case::benign(
        "torchscript/builtin-operators",
        "model.pt",
        torchscript_zip(
            "    _0 = ops.aten.relu(input)\n    return torch.linear(_0, self.w, self.b)\n",
        ),
        "TorchScript with built-in operators, its source maps and TorchScript classes",
    ));
    cases.push(Case::malicious(
        "compressed/7z-not-inspected",
        "model.7z",
        b"7z\xbc\xaf\x27\x1c\x00\x04 an archive the scanner cannot open".to_vec(),
        "AEG-SCAN-250",
        "a 7z archive, which the scanner cannot decompress",
    ));
    cases
}
