#!/usr/bin/env python3
"""Benign model files written by the real ML libraries at their current versions (issue 18: false alarms).

Usage: OMP_NUM_THREADS=1 benign_libraries.py OUTDIR

Every file is one a user expects a model scanner to pass: each library writes it through its own public save
API, exactly as users do. Nothing is downloaded (every model is built or fitted here on random data), and
nothing is ever loaded back. Each library block is independent: a library that is not installed (or fails)
is skipped with one printed line, and the rest still runs. At the end a manifest (file, library, version,
how written) is printed and also written to OUTDIR/manifest.json.

Set up (see bench/scan/tools.md for the versions used last):
  python3 -m venv /tmp/benchvenv
  /tmp/benchvenv/bin/pip install numpy pandas scikit-learn joblib xgboost lightgbm safetensors onnx \
      zstandard pyarrow torch transformers keras h5py
Keras is used with the torch backend (KERAS_BACKEND=torch), so neither TensorFlow nor JAX is needed.
The scikit-learn part is bench/scan/benign_sklearn.py, imported as is.
"""
import importlib
import inspect
import json
import os
import pickle
import sys
import traceback

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OUT = None
MANIFEST = []
NOTES = []  # what was skipped and why (also written to OUTDIR/skipped.json)


def note(text):
    NOTES.append(text)
    print(f"  {text}", flush=True)


def version(module):
    try:
        return importlib.import_module(module).__version__
    except Exception:  # noqa: BLE001 - a version is informational only
        return "?"


def record(path, library, how):
    MANIFEST.append({"file": os.path.relpath(path, OUT), "library": library, "how": how})


def dump_pickle(path, obj, library, how, **kwargs):
    """`pickle.dump(obj)` to `path`, recorded in the manifest."""
    with open(path, "wb") as f:
        pickle.dump(obj, f, **kwargs)
    record(path, library, how)


def sub(name):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    return d


BLOCKS = []


def block(fn):
    BLOCKS.append(fn)
    return fn


def run_blocks():
    for fn in BLOCKS:
        before = len(MANIFEST)
        try:
            fn()
            print(f"[ok]      {fn.__name__}: {len(MANIFEST) - before} files", flush=True)
        except ImportError as e:
            print(f"[skipped] {fn.__name__}: library not installed ({e})", flush=True)
            NOTES.append(f"{fn.__name__}: library not installed ({e})")
        except Exception as e:  # noqa: BLE001 - one broken library must not stop the others
            print(f"[failed]  {fn.__name__}: {type(e).__name__}: {e} ({len(MANIFEST) - before} files written)",
                  flush=True)
            NOTES.append(f"{fn.__name__} failed: {type(e).__name__}: {e}")
            traceback.print_exc(limit=3)


def data(n=200, d=4, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


@block
def sklearn_block():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benign_sklearn  # the existing generator (scikit-learn, joblib, pandas, NumPy)

    d = sub("sklearn")
    benign_sklearn.write(d)
    lib = (f"scikit-learn {version('sklearn')}, joblib {version('joblib')}, numpy {version('numpy')}, "
           f"pandas {version('pandas')}")
    for name in sorted(os.listdir(d)):
        if name.endswith(".pkl") and name != "frame.pkl":
            how = "pickle.dump(estimator, protocol=HIGHEST)"
        elif name.endswith(".joblib"):
            parts = name.split(".")
            how = "joblib.dump(estimator)" if len(parts) == 2 else f"joblib.dump(estimator, compress=('{parts[1]}', 3))"
        elif name == "frame.pkl":
            how = "DataFrame.to_pickle"
        else:
            how = "np.save(allow_pickle=True)"
        record(os.path.join(d, name), lib, f"benign_sklearn.py: {how}")


@block
def pandas_block():
    import numpy as np
    import pandas as pd

    d = sub("pandas")
    lib = f"pandas {pd.__version__}"
    n = 6
    frames = {
        "categorical": pd.DataFrame({"c": pd.Categorical(list("abcabc")), "o": pd.Categorical([1, 2, 3] * 2, ordered=True)}),
        "datetime_tz": pd.DataFrame({"t": pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Berlin"),
                                     "u": pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")}),
        "string_dtype": pd.DataFrame({"s": pd.array(list("abcdef"), dtype="string"), "obj": np.array(list("uvwxyz"), dtype=object)}),
        "int64_nullable": pd.DataFrame({"i": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
                                        "f": pd.array([1.5, None, 2, 3, 4, 5], dtype="Float64")}),
        "bool": pd.DataFrame({"b": [True, False] * 3, "nb": pd.array([True, None, False, True, None, False], dtype="boolean")}),
        "multiindex": pd.DataFrame({"v": range(n)}, index=pd.MultiIndex.from_product([["x", "y"], [1, 2, 3]], names=["k", "n"])),
        "series": pd.Series(np.arange(n, dtype="float64"), name="s", index=list("abcdef")),
        "timedelta": pd.DataFrame({"td": pd.to_timedelta(range(n), unit="s")}),
        "period": pd.DataFrame({"p": pd.period_range("2024-01", periods=n, freq="M")}),
        "interval": pd.DataFrame({"iv": pd.interval_range(0, n)}),
        "sparse": pd.DataFrame({"sp": pd.arrays.SparseArray([0, 0, 1, 0, 2, 0])}),
        "mixed": pd.DataFrame({"a": range(n), "b": list("abcdef"), "c": np.linspace(0, 1, n)}),
    }
    try:
        frames["string_pyarrow"] = pd.DataFrame({"s": pd.array(list("abcdef"), dtype="string[pyarrow]")})
    except Exception as e:  # noqa: BLE001
        note(f"pandas: string[pyarrow] skipped ({e})")
    for name, obj in frames.items():
        p = os.path.join(d, f"{name}.pkl")
        obj.to_pickle(p)
        record(p, lib, f"{type(obj).__name__}.to_pickle ({name})")
    big = frames["mixed"]
    for proto in (2, 4):
        p = os.path.join(d, f"mixed.proto{proto}.pkl")
        big.to_pickle(p, protocol=proto)
        record(p, lib, f"DataFrame.to_pickle(protocol={proto})")
    # with pyarrow installed, pandas 3 stores `str` columns and indexes as ArrowStringArray (pyarrow pickles);
    # the same frames with the pure-Python string storage, as pandas writes them without pyarrow
    try:
        with pd.option_context("mode.string_storage", "python"):
            plain = {
                "mixed": pd.DataFrame({"a": range(n), "b": pd.array(list("abcdef"), dtype="str"),
                                       "c": np.linspace(0, 1, n)}),
                "series": pd.Series(np.arange(n, dtype="float64"), name="s",
                                    index=pd.Index(list("abcdef"), dtype="str")),
                "string_dtype": pd.DataFrame({"s": pd.array(list("abcdef"), dtype="string")}),
            }
            for name, obj in plain.items():
                p = os.path.join(d, f"{name}.python_storage.pkl")
                obj.to_pickle(p)
                record(p, lib, f"{type(obj).__name__}.to_pickle ({name}, mode.string_storage='python')")
    except Exception as e:  # noqa: BLE001
        note(f"pandas: python string storage skipped ({type(e).__name__}: {e})")
    for ext in ["gz", "bz2", "xz", "zst", "zip", "tar.gz", "tar.bz2", "tar.xz"]:
        for name in ("mixed", "categorical", "datetime_tz"):
            p = os.path.join(d, f"{name}.pkl.{ext}")
            try:
                frames[name].to_pickle(p)  # compression inferred from the extension
                record(p, lib, f"DataFrame.to_pickle (compression inferred from .{ext})")
            except Exception as e:  # noqa: BLE001
                note(f"pandas: .pkl.{ext} skipped ({type(e).__name__}: {e})")
                break


@block
def numpy_block():
    import numpy as np

    d = sub("numpy")
    lib = f"numpy {np.__version__}"
    arrays = {
        "structured": np.zeros(4, dtype=[("x", "f4"), ("y", "i8"), ("name", "U8")]),
        "structured_nested": np.zeros(3, dtype=[("pos", [("x", "f8"), ("y", "f8")]), ("rgb", "u1", (3,))]),
        "object_mixed": np.array([{"a": 1}, "text", 3, None, (1, 2)], dtype=object),
        "object_strings": np.array(["a", "bb", "ccc"], dtype=object),
        "datetime64": np.arange("2024-01", "2024-06", dtype="datetime64[D]"),
        "float16": np.linspace(0, 1, 16, dtype=np.float16),
        "complex": np.arange(6, dtype=np.complex128),
        "unicode": np.array(["alpha", "beta"]),
    }
    for name, arr in arrays.items():
        p = os.path.join(d, f"{name}.npy")
        np.save(p, arr, allow_pickle=arr.dtype.hasobject)
        record(p, lib, f"np.save ({name}, dtype {arr.dtype})")
    p = os.path.join(d, "arrays.npz")
    np.savez(p, a=np.arange(10), s=arrays["structured"], o=arrays["object_mixed"])
    record(p, lib, "np.savez (int, structured, object)")
    p = os.path.join(d, "arrays_compressed.npz")
    np.savez_compressed(p, a=np.arange(10), o=arrays["object_strings"])
    record(p, lib, "np.savez_compressed (int, object)")
    for name in ("structured", "object_mixed"):
        p = os.path.join(d, f"{name}.pkl")
        dump_pickle(p, arrays[name], lib, f"pickle.dump(ndarray {name}, protocol=5)", protocol=pickle.HIGHEST_PROTOCOL)
    p = os.path.join(d, "ndarray_dump.pkl")
    arrays["float16"].dump(p)
    record(p, lib, "ndarray.dump")


@block
def xgboost_block():
    import joblib
    import xgboost as xgb

    d = sub("xgboost")
    lib = f"xgboost {xgb.__version__}"
    X, y = data()
    clf = xgb.XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1).fit(X, y)
    for ext in ("json", "ubj"):
        p = os.path.join(d, f"classifier.{ext}")
        clf.save_model(p)
        record(p, lib, f"XGBClassifier.save_model(.{ext})")
    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), num_boost_round=3)
    for ext in ("json", "ubj"):
        p = os.path.join(d, f"booster.{ext}")
        booster.save_model(p)
        record(p, lib, f"Booster.save_model(.{ext})")
    p = os.path.join(d, "booster.raw.ubj")
    with open(p, "wb") as f:
        f.write(booster.save_raw(raw_format="ubj"))
    record(p, lib, "Booster.save_raw('ubj')")
    p = os.path.join(d, "classifier.pkl")
    dump_pickle(p, clf, lib, "pickle.dump(XGBClassifier)")
    p = os.path.join(d, "booster.pkl")
    dump_pickle(p, booster, lib, "pickle.dump(Booster)")
    p = os.path.join(d, "classifier.joblib")
    joblib.dump(clf, p)
    record(p, lib + f", joblib {joblib.__version__}", "joblib.dump(XGBClassifier)")
    reg = xgb.XGBRegressor(n_estimators=3, n_jobs=1).fit(X, X[:, 2])
    p = os.path.join(d, "regressor.json")
    reg.save_model(p)
    record(p, lib, "XGBRegressor.save_model(.json)")


@block
def lightgbm_block():
    import joblib
    import lightgbm as lgb

    d = sub("lightgbm")
    lib = f"lightgbm {lgb.__version__}"
    X, y = data()
    clf = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, n_jobs=1, verbose=-1).fit(X, y)
    p = os.path.join(d, "classifier.txt")
    clf.booster_.save_model(p)
    record(p, lib, "Booster.save_model (text)")
    booster = lgb.train({"objective": "regression", "num_leaves": 4, "verbose": -1, "num_threads": 1},
                        lgb.Dataset(X, label=X[:, 2]), num_boost_round=3)
    p = os.path.join(d, "regressor.txt")
    booster.save_model(p)
    record(p, lib, "lgb.train(...).save_model (text)")
    p = os.path.join(d, "regressor.json")
    with open(p, "w") as f:
        json.dump(booster.dump_model(), f)
    record(p, lib, "json.dump(Booster.dump_model())")
    for name, obj in (("classifier", clf), ("booster", booster)):
        p = os.path.join(d, f"{name}.pkl")
        dump_pickle(p, obj, lib, f"pickle.dump({type(obj).__name__})")
    p = os.path.join(d, "classifier.joblib")
    joblib.dump(clf, p)
    record(p, lib + f", joblib {joblib.__version__}", "joblib.dump(LGBMClassifier)")


@block
def safetensors_numpy_block():
    import numpy as np
    import safetensors
    from safetensors.numpy import save_file

    d = sub("safetensors")
    lib = f"safetensors {safetensors.__version__}, numpy {np.__version__}"
    rng = np.random.default_rng(0)
    tensors = {
        "w.f32": rng.normal(size=(4, 3)).astype(np.float32),
        "w.f16": rng.normal(size=(2, 2)).astype(np.float16),
        "w.f64": rng.normal(size=(3,)),
        "i.i64": np.arange(5, dtype=np.int64),
        "i.i8": np.arange(5, dtype=np.int8),
        "u.u8": np.arange(5, dtype=np.uint8),
        "b.bool": np.array([True, False, True]),
        "scalar": np.array(1.0, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    p = os.path.join(d, "numpy_mixed.safetensors")
    save_file(tensors, p)
    record(p, lib, "safetensors.numpy.save_file (f32 f16 f64 i64 i8 u8 bool, scalar, empty)")
    p = os.path.join(d, "numpy_metadata.safetensors")
    save_file({"w": tensors["w.f32"]}, p, metadata={"format": "np", "note": "benign"})
    record(p, lib, "safetensors.numpy.save_file(metadata=...)")


@block
def safetensors_torch_block():
    import safetensors
    import torch
    from safetensors.torch import save_file

    d = sub("safetensors")
    lib = f"safetensors {safetensors.__version__}, torch {torch.__version__}"
    t = {"bf16": torch.randn(3, 3).to(torch.bfloat16), "f32": torch.randn(2, 2)}
    names = []
    for name in ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float4_e2m1fn_x2"):
        dt = getattr(torch, name, None)
        if dt is None:
            continue
        try:
            t[name] = torch.zeros(4, dtype=torch.uint8).view(dt) if "x2" in name else torch.randn(4).to(dt)
            save_file({name: t[name]}, os.path.join(d, "_probe.safetensors"))
            names.append(name)
        except Exception as e:  # noqa: BLE001
            t.pop(name, None)
            note(f"safetensors: {name} not supported ({type(e).__name__}: {e})")
    if os.path.exists(os.path.join(d, "_probe.safetensors")):
        os.remove(os.path.join(d, "_probe.safetensors"))
    p = os.path.join(d, "torch_low_precision.safetensors")
    save_file(t, p, metadata={"format": "pt"})
    record(p, lib, "safetensors.torch.save_file (bf16, f32, " + ", ".join(names) + ")")


@block
def onnx_block():
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d = sub("onnx")
    lib = f"onnx {onnx.__version__}"
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "B")
    nodes = [helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "B"], ["Z"]),
             helper.make_node("Relu", ["Z"], ["Y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 3])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="aegis-bench")
    onnx.checker.check_model(model)
    p = os.path.join(d, "tiny.onnx")
    onnx.save_model(model, p)
    record(p, lib, "onnx.helper graph, onnx.save_model")
    ext = os.path.join(d, "external")
    os.makedirs(ext, exist_ok=True)
    p = os.path.join(ext, "tiny_external.onnx")
    onnx.save_model(model, p, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
                    size_threshold=0)
    record(p, lib, "onnx.save_model(save_as_external_data=True, location='weights.bin')")
    record(os.path.join(ext, "weights.bin"), lib, "external data file of tiny_external.onnx")
    # an If node with two subgraphs, and a local function
    then_g = helper.make_graph([helper.make_node("Identity", ["X"], ["T"])], "then", [],
                               [helper.make_tensor_value_info("T", TensorProto.FLOAT, [None, 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["X"], ["E"])], "else", [],
                               [helper.make_tensor_value_info("E", TensorProto.FLOAT, [None, 4])])
    fn = helper.make_function("local", "DoubleRelu", ["A"], ["C"],
                              [helper.make_node("Relu", ["A"], ["R"]), helper.make_node("Add", ["R", "R"], ["C"])],
                              [helper.make_opsetid("", 17)])
    g2 = helper.make_graph([helper.make_node("ReduceSum", ["X"], ["S"], keepdims=0),
                            helper.make_node("Greater", ["S", "zero"], ["cond"]),
                            helper.make_node("If", ["cond"], ["I"], then_branch=then_g, else_branch=else_g),
                            helper.make_node("DoubleRelu", ["I"], ["Y"], domain="local")],
                           "branchy", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 4])],
                           [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])],
                           [numpy_helper.from_array(np.array(0, dtype=np.float32), "zero")])
    m2 = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                           functions=[fn], producer_name="aegis-bench")
    onnx.checker.check_model(m2)
    p = os.path.join(d, "if_function.onnx")
    onnx.save_model(m2, p)
    record(p, lib, "If subgraphs + local function, onnx.save_model")
    m3 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m3.metadata_props.add(key="author", value="bench")
    p = os.path.join(d, "tiny_metadata.onnx")
    onnx.save_model(m3, p)
    record(p, lib, "metadata_props, onnx.save_model")


@block
def torch_block():
    import torch

    d = sub("torch")
    lib = f"torch {torch.__version__}"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(16, 4)).sum().backward()
    opt.step()
    saves = [
        ("state_dict.pt", model.state_dict(), {}, "torch.save(model.state_dict())"),
        ("pytorch_model.bin", model.state_dict(), {}, "torch.save(state_dict) as pytorch_model.bin"),
        ("module.pt", model, {}, "torch.save(nn.Sequential module)"),
        ("optimizer.pt", opt.state_dict(), {}, "torch.save(Adam.state_dict())"),
        ("checkpoint.pth", {"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict(),
                            "loss": 0.25, "lr": [1e-3]}, {}, "torch.save(training checkpoint dict)"),
        ("legacy.pt", model.state_dict(), {"_use_new_zipfile_serialization": False},
         "torch.save(_use_new_zipfile_serialization=False)"),
        ("legacy_module.pt", model, {"_use_new_zipfile_serialization": False},
         "torch.save(module, _use_new_zipfile_serialization=False)"),
        ("bf16_state.pt", {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}, {},
         "torch.save(bfloat16 state_dict)"),
        ("proto2.pt", model.state_dict(), {"pickle_protocol": 2}, "torch.save(pickle_protocol=2)"),
    ]
    for name, obj, kw, how in saves:
        p = os.path.join(d, name)
        torch.save(obj, p, **kw)
        record(p, lib, how)
    p = os.path.join(d, "scripted.pt")
    torch.jit.script(model.eval()).save(p)
    record(p, lib, "torch.jit.script(module).save")
    p = os.path.join(d, "traced.pt")
    torch.jit.trace(model.eval(), torch.randn(2, 4)).save(p)
    record(p, lib, "torch.jit.trace(module).save")
    try:
        p = os.path.join(d, "exported.pt2")
        torch.export.save(torch.export.export(model.eval(), (torch.randn(2, 4),)), p)
        record(p, lib, "torch.export.save(torch.export.export(module))")
    except Exception as e:  # noqa: BLE001
        note(f"torch: torch.export skipped ({type(e).__name__}: {e})")


@block
def transformers_block():
    import torch  # noqa: F401 - transformers needs a backend
    import transformers
    from transformers import BertConfig, BertModel, BertTokenizer

    lib = f"transformers {transformers.__version__}, torch {torch.__version__}"
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    model = BertModel(config)
    base = sub("transformers")
    vocab = os.path.join(base, "vocab.txt")
    with open(vocab, "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(59)]) + "\n")
    tok = BertTokenizer(vocab)
    os.remove(vocab)
    variants = [("bert_safetensors", {})]
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        variants.append(("bert_pickle", {"safe_serialization": False}))
    else:  # transformers 5 removed it: save_pretrained writes safetensors only and ignores the keyword
        note(f"transformers {transformers.__version__}: save_pretrained(safe_serialization=False) no longer "
             "exists (safetensors only); pickle variant skipped")
    for name, kw in variants:
        d = os.path.join(base, name)
        model.save_pretrained(d, **kw)
        tok.save_pretrained(d)
        for f in sorted(os.listdir(d)):
            record(os.path.join(d, f), lib, f"BertModel(tiny random config).save_pretrained({kw or ''}) "
                   "+ BertTokenizer.save_pretrained")
    try:  # what Trainer._save writes next to every checkpoint: torch.save(self.args, "training_args.bin")
        args = transformers.TrainingArguments(output_dir=os.path.join(base, "trainer_out"), report_to=[])
        p = os.path.join(base, "bert_safetensors", "training_args.bin")
        torch.save(args, p)
        record(p, lib, "torch.save(TrainingArguments) as Trainer._save writes training_args.bin")
    except Exception as e:  # noqa: BLE001
        note(f"transformers: training_args.bin skipped ({type(e).__name__}: {e})")


@block
def keras_block():
    import keras
    import numpy as np

    d = sub("keras")
    lib = f"keras {keras.__version__} (backend {keras.backend.backend()})"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.1), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    X, y = data(32)
    model.fit(X, y, epochs=1, verbose=0)
    p = os.path.join(d, "model.keras")
    model.save(p)
    record(p, lib, "model.save(.keras)")
    p = os.path.join(d, "model.weights.h5")
    model.save_weights(p)
    record(p, lib, "model.save_weights(.weights.h5)")
    try:
        import h5py

        p = os.path.join(d, "legacy.h5")
        model.save(p)
        record(p, lib + f", h5py {h5py.__version__}", "model.save(.h5) (legacy HDF5)")
    except Exception as e:  # noqa: BLE001
        note(f"keras: legacy .h5 skipped ({type(e).__name__}: {e})")
    inp = keras.Input((4,))
    out = keras.layers.Dense(2)(keras.layers.Concatenate()([keras.layers.Dense(3)(inp), keras.layers.Dense(3)(inp)]))
    fmodel = keras.Model(inp, out)
    p = os.path.join(d, "functional.keras")
    fmodel.save(p)
    record(p, lib, "functional keras.Model.save(.keras)")
    del np


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    OUT = os.path.abspath(sys.argv[1])
    os.makedirs(OUT, exist_ok=True)
    run_blocks()
    missing = [m["file"] for m in MANIFEST if not os.path.isfile(os.path.join(OUT, m["file"]))]
    for m in missing:
        note(f"warning: {m} listed but not written")
    MANIFEST.sort(key=lambda m: m["file"])
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(MANIFEST, f, indent=1)
    with open(os.path.join(OUT, "skipped.json"), "w") as f:
        json.dump(NOTES, f, indent=1)
    print(f"\n{len(MANIFEST)} files in {OUT}\n\n| file | library, version | how written |\n|---|---|---|")
    for m in MANIFEST:
        print(f"| {m['file']} | {m['library']} | {m['how']} |")


if __name__ == "__main__":
    main()
