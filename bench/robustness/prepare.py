"""Train the benchmark models with PyTorch (CPU, fixed seed) on scikit-learn's bundled datasets, export them to
ONNX, and write the splits as CSV plus a schema.toml with the same bounds ART gets as clip values.

digits: 8x8 images scaled to [0, 1] (pixel / 16); breast-cancer: standardised with the training mean and std.
Only our own freshly trained models are written; nothing here loads an untrusted file.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

SEED = 0


def mlp(d, k, hidden):
    layers, width = [], d
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, k))
    return torch.nn.Sequential(*layers)


def train(model, x, y, epochs, lr=1e-3, batch=64):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.tensor(x), torch.tensor(y)
    g = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model


def write_csv(path, x, y, names):
    with open(path, "w") as f:
        f.write(",".join(names + ["target"]) + "\n")
        for row, label in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{int(label)}\n")


def write_schema(path, names, lo, hi):
    with open(path, "w") as f:
        for n, a, b in zip(names, lo, hi):
            f.write(f'[[feature]]\nname = "{n}"\nmin = {float(a)!r}\nmax = {float(b)!r}\n\n')


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    meta = {}
    for name in ["digits", "breast-cancer"]:
        if name == "digits":
            ds = load_digits()
            x = (ds.data / 16.0).astype(np.float32)
            y = ds.target.astype(np.int64)
            hidden, epochs = [128, 64], 30
        else:
            ds = load_breast_cancer()
            x = ds.data.astype(np.float32)
            y = ds.target.astype(np.int64)
            hidden, epochs = [64, 32], 60
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)
        if name == "breast-cancer":
            mean, std = x_train.mean(0), x_train.std(0) + 1e-8
            x_train = ((x_train - mean) / std).astype(np.float32)
            x_test = ((x_test - mean) / std).astype(np.float32)
            lo = np.minimum(x_train.min(0), x_test.min(0))
            hi = np.maximum(x_train.max(0), x_test.max(0))
        else:
            lo, hi = np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
        d, k = x.shape[1], int(y.max()) + 1
        torch.manual_seed(SEED)
        model = train(mlp(d, k, hidden), x_train, y_train, epochs).eval()
        names = [f"f{j}" for j in range(d)]
        base = out / name
        base.mkdir(exist_ok=True)
        torch.onnx.export(model, torch.zeros(1, d), base / "model.onnx", input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
        torch.save(model.state_dict(), base / "model.pt")
        np.savez(base / "split.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, lo=lo, hi=hi)
        write_csv(base / "train.csv", x_train, y_train, names)
        write_csv(base / "test.csv", x_test, y_test, names)
        write_schema(base / "schema.toml", names, lo, hi)
        acc = float((model(torch.tensor(x_test)).argmax(1).numpy() == y_test).mean())
        meta[name] = {"d": d, "k": k, "hidden": hidden, "test_rows": len(y_test), "train_rows": len(y_train), "clean_accuracy": acc}
        print(f"{name}: {len(y_train)} train / {len(y_test)} test rows, clean accuracy {acc:.3f}", file=sys.stderr)
    (out / "meta.json").write_text(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/work/robustness")
