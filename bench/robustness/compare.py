"""ART (PyTorch) and aegis on the same ONNX-exported models and the same splits, side by side.

Robust accuracy = accuracy on the attacked test rows (all rows; a clean mistake stays a mistake).
ART times are the attack's generate() call (model already in memory); aegis attack times are the attack's own
wall time as the report records it, and aegis process times are the whole `aegis` run (load the ONNX file and
the CSV, attack, re-check every row, report). Training times are whole runs for both.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, FastGradientMethod, ProjectedGradientDescent
from art.defences.trainer import AdversarialTrainerMadryPGD
from art.estimators.classification import PyTorchClassifier

sys.path.insert(0, str(Path(__file__).parent))
from prepare import SEED, mlp  # noqa: E402

AEGIS = "target/release/aegis"
EPS = [0.05, 0.1, 0.2]


def classifier(model, d, k, lo, hi):
    return PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                             input_shape=(d,), nb_classes=k, clip_values=(lo, hi), device_type="cpu")


def apgd_pair(clf, eps, k):
    attacks = [AutoProjectedGradientDescent(clf, eps=eps, eps_step=2 * eps, max_iter=100, batch_size=512, loss_type="cross_entropy", verbose=False)]
    if k > 2:  # ART's DLR loss needs at least three classes
        attacks.append(AutoProjectedGradientDescent(clf, eps=eps, eps_step=2 * eps, max_iter=100, batch_size=512,
                                                    loss_type="difference_logits_ratio", verbose=False))
    return attacks


def accuracy(clf, x, y):
    return float((clf.predict(x).argmax(1) == y).mean())


def aegis(args):
    t = time.perf_counter()
    p = subprocess.run([AEGIS] + args + ["--format", "json", "-q"], capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode not in (0, 1):
        raise SystemExit(f"aegis failed: {' '.join(args)}\n{p.stderr}")
    return json.loads(p.stdout), dt


def aegis_robust(base, model, eps, attack):
    rep, dt = aegis(["assess", "robustness", str(model), "--data", str(base / "test.csv"), "--label", "target",
                     "--schema", str(base / "schema.toml"), "--eps", str(eps), "--attacks", attack, "--seed", "0"])
    point = rep["metrics"]["robustness"]["curve"][0]
    return point["robust_accuracy"], dt, sum(t for _, t in point["seconds"])


def run(work, name, meta, rows):
    base = work / name
    s = np.load(base / "split.npz")
    d, k, hidden = meta["d"], meta["k"], meta["hidden"]
    lo, hi = s["lo"].astype(np.float32), s["hi"].astype(np.float32)
    model = mlp(d, k, hidden)
    model.load_state_dict(torch.load(base / "model.pt", weights_only=True))
    model.eval()
    clf = classifier(model, d, k, lo, hi)
    x, y = s["x_test"], s["y_test"]
    rows.append((name, "clean", "-", accuracy(clf, x, y), None, meta["clean_accuracy"], None, None))
    for eps in EPS:
        for label, make, ours in [
            ("FGSM", lambda: FastGradientMethod(clf, eps=eps, batch_size=512), "fgsm"),
            ("PGD-40", lambda: ProjectedGradientDescent(clf, eps=eps, eps_step=2.5 * eps / 40, max_iter=40, num_random_init=1,
                                                        batch_size=512, verbose=False), "pgd"),
            # ART's default AutoAttack refuses tabular input (its Square Attack wants images): its APGD part.
            ("AutoAttack (APGD-CE + APGD-DLR)", lambda: AutoAttack(clf, eps=eps, eps_step=eps / 4, batch_size=512, attacks=apgd_pair(clf, eps, k)),
             "autoattack"),
        ]:
            torch.manual_seed(SEED)
            np.random.seed(SEED)
            t = time.perf_counter()
            try:
                adv = make().generate(x=x, y=y)
                art_t = time.perf_counter() - t
                art_acc = accuracy(clf, adv, y)
            except Exception as e:  # ART refuses some settings (e.g. the DLR loss with 2 classes)
                print(f"{name} {label} eps={eps}: ART failed: {e}", file=sys.stderr)
                art_t, art_acc = None, None
            aeg_acc, aeg_t, aeg_attack_t = aegis_robust(base, base / "model.onnx", eps, ours)
            rows.append((name, label, eps, art_acc, art_t, aeg_acc, aeg_attack_t, aeg_t))
            print(f"{name} {label} eps={eps}: ART {art_acc} in {art_t}s, aegis {aeg_acc:.3f} in {aeg_t:.2f}s", file=sys.stderr)


def harden(work, name, meta, rows, eps=0.1, epochs=30, aegis_epochs=60):
    base = work / name
    s = np.load(base / "split.npz")
    d, k, hidden = meta["d"], meta["k"], meta["hidden"]
    lo, hi = s["lo"].astype(np.float32), s["hi"].astype(np.float32)
    torch.manual_seed(SEED)
    model = mlp(d, k, hidden)
    clf = classifier(model, d, k, lo, hi)
    trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=epochs, batch_size=64, eps=eps, eps_step=2.5 * eps / 7, max_iter=7, num_random_init=1)
    t = time.perf_counter()
    trainer.fit(s["x_train"], s["y_train"])
    art_t = time.perf_counter() - t
    pgd = ProjectedGradientDescent(clf, eps=eps, eps_step=2.5 * eps / 40, max_iter=40, num_random_init=1, batch_size=512, verbose=False)
    art_acc = accuracy(clf, pgd.generate(x=s["x_test"], y=s["y_test"]), s["y_test"])
    arch = "mlp:" + ",".join(str(h) for h in hidden)
    out = base / "hardened.onnx"
    _, aeg_t = aegis(["harden", "--arch", arch, "--data", str(base / "train.csv"), "--label", "target", "--schema", str(base / "schema.toml"),
                      "--eps", str(eps), "--epochs", str(aegis_epochs), "--steps", "7", "--eval-steps", "10", "--patience", str(aegis_epochs),
                      "--val-split", "0.1", "--no-baseline", "--out", str(out)])
    aeg_acc, _, _ = aegis_robust(base, out, eps, "pgd")
    rows.append((name, f"adv. training, PGD-7 (ART {epochs} epochs, aegis {aegis_epochs}) → PGD-40 robust acc.", eps, art_acc, art_t, aeg_acc, None, aeg_t))
    print(f"{name} harden eps={eps}: ART {art_acc:.3f} in {art_t:.1f}s, aegis {aeg_acc:.3f} in {aeg_t:.1f}s", file=sys.stderr)


def main(work):
    work = Path(work)
    meta = json.loads((work / "meta.json").read_text())
    rows = []
    for name in meta:
        run(work, name, meta[name], rows)
    harden(work, "digits", meta["digits"], rows)
    print("| dataset | attack | eps | ART robust acc. | ART attack time (s) | aegis robust acc. | aegis attack time (s) | aegis process time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, label, eps, a, at, b, bat, bt in rows:
        f = lambda v: "-" if v is None else f"{v:.3f}" if v < 10 else f"{v:.1f}"
        print(f"| {name} | {label} | {eps} | {'n/a' if a is None else f'{a:.3f}'} | {f(at)} | {b:.3f} | {f(bat)} | {f(bt)} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/work/robustness")
