#!/usr/bin/env python3
"""aegis scan vs picklescan, ModelScan and modelaudit, one process per file (issue 18). Prints a Markdown report.

Usage:
  compare_tools.py --benign DIR --labelled DIR [--aegis target/debug/aegis] [--venv bench/.venv]
                   [--timeout 60] [--raw results.json] [--report-only results.json]

  --benign    files written by the real libraries (bench/scan/benign_libraries.py DIR); every one is benign.
  --labelled  the red-team corpus of `gen-corpus DIR`: DIR/manifest.json lists {path, name, malicious};
              the family of a case is its name up to the first '/'.

What counts as "flagged" (each tool's own top severities):
  aegis       any finding at severity high or critical (`aegis scan FILE --format json -q`; also its
              default exit code 1, --fail-on high).
  picklescan  exit code 1: at least one *dangerous* global ("Infected files: 1"); "suspicious" globals alone
              do not count (that is picklescan's own verdict without --strict). Exit 2 = scan error.
  ModelScan   at least one issue of severity HIGH or CRITICAL in its JSON report (`-r json -o FILE`);
              exit 3 ("no supported files") = not scanned; exit 2 without such an issue = error.
  modelaudit  at least one issue of severity `critical` in `modelaudit scan --format json --no-cache`
              (its levels are debug < info < warning < critical); exit 2 without a critical issue = error.
The "lenient" columns count any issue at all (aegis: any finding of medium or above; picklescan: dangerous or
suspicious globals; ModelScan: any issue; modelaudit: any warning or critical, i.e. its exit code 1).
A timeout, a crash or unparsable output is an "error": never counted as flagged, reported separately.
No sample is ever loaded: all four tools only parse. Telemetry of modelaudit is switched off by environment.
ModelScan runs from its own venv (--modelscan): 0.8.8 calls numpy.lib.format._check_version, which NumPy >= 2.3
no longer has (every .npy then fails), while modelaudit 0.2.54 requires NumPy >= 2.4.3 on Python 3.11.
bench/scan/run_tools.sh sets up all of it and writes bench/scan/tools.md.
"""
import argparse
import collections
import concurrent.futures
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
TOOLS = ["aegis", "picklescan", "modelscan", "modelaudit"]
ENV = dict(os.environ, PROMPTFOO_DISABLE_TELEMETRY="1", NO_ANALYTICS="1", NO_COLOR="1", TERM="dumb",
           OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")


def run(cmd, timeout, cwd=None):
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), \
            time.perf_counter() - start
    except subprocess.TimeoutExpired:
        return None, "", "timeout", time.perf_counter() - start


def result(status, secs, detail="", lenient=None, items=None):
    """status: flagged | clean | skipped (tool does not handle the file) | error."""
    return {"status": status, "secs": round(secs, 4), "detail": detail[:400],
            "lenient": status == "flagged" if lenient is None else lenient, "items": items or []}


def scan_aegis(args, path):
    code, out, err, secs = run([args.aegis, "scan", path, "--format", "json", "-q"], args.timeout)
    if code is None:
        return result("error", secs, "timeout")
    try:
        findings = json.loads(out)["findings"]
    except (ValueError, KeyError):
        return result("error", secs, f"exit {code}: {err.strip()[-300:]}")
    high = [f for f in findings if SEVERITY_RANK.get(f["severity"], 0) >= 3]
    items = [{"rule": f["rule"], "severity": f["severity"], "message": f["message"]} for f in high]
    lenient = any(SEVERITY_RANK.get(f["severity"], 0) >= 2 for f in findings)
    if code not in (0, 1):
        return result("error", secs, f"exit {code}: {err.strip()[-300:]}", lenient, items)
    return result("flagged" if high else "clean", secs, "", lenient or bool(high), items)


def scan_picklescan(args, path):
    code, out, err, secs = run([os.path.join(args.venv, "bin", "picklescan"), "-p", path], args.timeout)
    if code is None:
        return result("error", secs, "timeout")
    m = re.search(r"Scanned files: (\d+)\s+Infected files: (\d+)\s+Suspicious globals: (\d+)\s+"
                  r"Dangerous globals: (\d+)", out)
    if not m:
        return result("error", secs, f"exit {code}: {(out + err).strip()[-300:]}")
    scanned, infected, suspicious, dangerous = map(int, m.groups())
    items = [line.split(": ", 1)[-1] for line in out.splitlines() if "dangerous import" in line][:5]
    lenient = dangerous + suspicious > 0
    if code == 1:
        return result("flagged", secs, "", True, items)
    if code == 2:
        return result("error", secs, (out + err).strip().splitlines()[0][:300] if (out + err).strip() else
                      "exit 2", lenient, items)
    if scanned == 0:
        return result("skipped", secs, "not a file type picklescan scans", lenient)
    return result("clean", secs, "", lenient)


def run_with_report(cmd, timeout):
    """Run a tool that writes a JSON report to the path substituted for `{report}`; (exit, out, err, secs,
    parsed report or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        code, out, err, secs = run([report if a == "{report}" else a for a in cmd], timeout, cwd=tmp)
        try:
            with open(report) as f:
                rep = json.load(f)
        except (OSError, ValueError):
            rep = None
    return code, out, err, secs, rep


def scan_modelscan(args, path):
    code, out, err, secs, rep = run_with_report(
        [args.modelscan, "scan", "-p", path, "-r", "json", "-o", "{report}"], args.timeout)
    if code is None:
        return result("error", secs, "timeout")
    if rep is None:
        if code == 3:
            return result("skipped", secs, "no supported files")
        return result("error", secs, f"exit {code}: {(out + err).strip()[-300:]}")
    issues = rep.get("issues", [])
    high = [i for i in issues if i.get("severity") in ("HIGH", "CRITICAL")]
    items = [f"{i.get('severity')}: {i.get('description')}" for i in high][:5]
    if high:
        return result("flagged", secs, "", True, items)
    if code not in (0, 1, 3) or rep.get("errors"):
        errs = rep.get("errors") or [{"description": f"exit {code}"}]
        return result("error", secs, str(errs[0].get("description", errs[0]))[:300], bool(issues))
    if code == 3 or not rep.get("summary", {}).get("scanned", {}).get("total_scanned", 1):
        return result("skipped", secs, "no supported files", bool(issues))
    return result("clean", secs, "", bool(issues))


def scan_modelaudit(args, path):
    code, out, err, secs, rep = run_with_report(
        [os.path.join(args.venv, "bin", "modelaudit"), "scan", "--no-cache", "--format", "json",
         "-o", "{report}", path], args.timeout)
    if code is None:
        return result("error", secs, "timeout")
    if rep is None:
        return result("error", secs, f"exit {code}: {(out + err).strip()[-300:]}")
    issues = rep.get("issues", [])
    crit = [i for i in issues if i.get("severity") == "critical"]
    lenient = any(i.get("severity") in ("warning", "critical") for i in issues)
    items = [f"{i.get('rule_code')}: {i.get('message')}" for i in crit][:5]
    if crit:
        return result("flagged", secs, "", True, items)
    if code not in (0, 1):
        errs = [i.get("message", "") for i in issues if i.get("severity") in ("info", "debug")]
        return result("error", secs, (errs[0] if errs else f"exit {code}")[:300], lenient)
    if not rep.get("files_scanned", 1):
        return result("skipped", secs, "no files scanned", lenient)
    return result("clean", secs, "", lenient)


SCAN = {"aegis": scan_aegis, "picklescan": scan_picklescan, "modelscan": scan_modelscan,
        "modelaudit": scan_modelaudit}


def tool_versions(args):
    v = {}
    out = run([args.aegis, "--version"], 30)[1].strip()
    v["aegis"] = out.split()[-1] if out else "?"
    for tool, dist in (("picklescan", "picklescan"), ("modelscan", "modelscan"), ("modelaudit", "modelaudit")):
        py = os.path.join(os.path.dirname(args.modelscan) if tool == "modelscan" else
                          os.path.join(args.venv, "bin"), "python")
        code, out, _, _ = run([py, "-c", f"import importlib.metadata as m; print(m.version('{dist}'))"], 60)
        v[tool] = out.strip() if code == 0 else "not installed"
    return v


def aegis_build(aegis):
    """Which aegis was measured: the binary's build time and the commit of the work tree it sits in."""
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(aegis)))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(aegis)))
    code, sha, _, _ = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], 30)
    _, dirty, _, _ = run(["git", "-C", repo, "status", "--porcelain", "crates"], 30)
    return f"`{os.path.relpath(aegis, repo)}` built {built}" + (
        f" from commit {sha.strip()}" + (" plus uncommitted changes under crates/" if dirty.strip() else "")
        if code == 0 else "")


def benign_files(root):
    files = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if os.path.relpath(p, root) not in ("manifest.json", "skipped.json"):
                files.append(p)
    return sorted(files)


def scan_all(args, paths):
    """{tool: {path: result}}. aegis runs alone (its times are reported); the others run two at a time."""
    res = {t: {} for t in TOOLS}
    for i, p in enumerate(paths):
        res["aegis"][p] = scan_aegis(args, p)
    print(f"  aegis: {len(paths)} files", file=sys.stderr, flush=True)
    for tool in TOOLS[1:]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as ex:
            for p, r in zip(paths, ex.map(lambda p, t=tool: SCAN[t](args, p), paths)):
                res[tool][p] = r
        print(f"  {tool}: {len(paths)} files", file=sys.stderr, flush=True)
    return res


def counts(rs):
    c = collections.Counter(r["status"] for r in rs)
    c["lenient"] = sum(r["lenient"] for r in rs)
    return c


def pct(a, b):
    return f"{a / b:.0%} ({a}/{b})" if b else "–"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def report(raw):
    v, benign_root, labelled_root = raw["versions"], raw["benign_root"], raw["labelled_root"]
    res, manifest, libmanifest = raw["results"], raw["labelled_manifest"], raw["benign_manifest"]
    names = {"aegis": f"aegis {v['aegis']}", "picklescan": f"picklescan {v['picklescan']}",
             "modelscan": f"ModelScan {v['modelscan']}", "modelaudit": f"modelaudit {v['modelaudit']}"}
    L = []
    w = L.append
    w("# aegis scan vs picklescan, ModelScan and modelaudit (issue 18)\n")
    w(f"machine: {raw['machine']}  \ndate: {raw['date']}  \ntools: " + ", ".join(names.values())
      + f"  \naegis binary: {raw.get('aegis_build', '?')}  \nper-file timeout: {raw['timeout']} s; one process "
      "per file for every tool.\n")
    w("Rerun (one command, from the repository root): `bench/scan/run_tools.sh [AEGIS_BIN]` (sets up the "
      "venvs, writes both corpora, scans, writes this file; about 25 minutes, nearly all of it modelaudit). "
      "After a fix, rescan with aegis alone: `python3 bench/scan/compare_tools.py --rescan "
      "/tmp/aegis-tools/raw.json --only aegis > bench/scan/tools.md` (seconds).\n")
    w("**Flagged** = a tool's own top severities: aegis high/critical finding; picklescan a *dangerous* global "
      "(its exit 1; suspicious globals alone do not count); ModelScan an issue of severity HIGH or CRITICAL; "
      "modelaudit an issue of severity `critical`. **Lenient** = any issue at all (aegis medium or above, "
      "picklescan dangerous or suspicious globals, ModelScan any issue, modelaudit warning or critical = its "
      "exit 1). **Skipped** = the tool says the file is not a type it scans. **Error** = crash, timeout, "
      "unparsable output or the tool's own error exit without a flag.\n")

    # (a) real-library benign corpus
    bfiles = sorted(res["aegis"].keys() & set(raw["benign_files"]))
    lib_of = {os.path.join(benign_root, m["file"]): m for m in libmanifest}
    w(f"## (a) Benign files written by the real libraries ({len(bfiles)} files)\n")
    w("Written by `bench/scan/benign_libraries.py` with: " + "; ".join(raw.get("library_versions", [])) + ".\n")
    for n in raw.get("benign_notes", []):
        w(f"- not written: {n}")
    if raw.get("benign_notes"):
        w("")
    w("| tool | flagged (false alarms) | lenient | skipped | errors |\n|---|---|---|---|---|")
    for t in TOOLS:
        c = counts([res[t][p] for p in bfiles])
        w(f"| {names[t]} | {c['flagged']} | {c['lenient']} | {c['skipped']} | {c['error']} |")
    w("")
    groups = collections.defaultdict(list)
    for p in bfiles:
        groups[os.path.relpath(p, benign_root).split(os.sep)[0]].append(p)
    w("Flagged per library folder (flagged / files):\n")
    w("| folder | files | " + " | ".join(names[t] for t in TOOLS) + " |\n|---|---|" + "---|" * len(TOOLS))
    for g, ps in sorted(groups.items()):
        w(f"| {g} | {len(ps)} | " + " | ".join(
            str(sum(res[t][p]['status'] == 'flagged' for p in ps))
            + (f" (+{sum(res[t][p]['status'] == 'error' for p in ps)} err)"
               if any(res[t][p]['status'] == 'error' for p in ps) else "") for t in TOOLS) + " |")
    w("")
    flagged = [p for p in bfiles if res["aegis"][p]["status"] == "flagged"]
    w(f"### aegis high/critical findings on real benign files ({len(flagged)} files)\n")
    if flagged:
        # files with the same set of findings (ignoring the call arguments) share one block of rows
        groups_f = collections.defaultdict(list)
        for p in flagged:
            key = tuple(sorted({(it["rule"], it["severity"], it["message"].split("; called with")[0])
                                for it in res["aegis"][p]["items"]}))
            groups_f[key].append(p)
        w("Files with the same findings (call arguments aside) share a row group; messages are cut before "
          "`; called with`.\n")
        w("| files | written by | rule | severity | message |\n|---|---|---|---|---|")
        for key, ps in sorted(groups_f.items(), key=lambda kv: kv[1][0]):
            files = ", ".join(f"`{os.path.relpath(p, benign_root)}`" for p in ps)
            hows = sorted({lib_of.get(p, {}).get("how", "?") for p in ps})
            how = "; ".join(hows) if len(hows) <= 2 else f"{len(hows)} ways (see manifest)"
            for i, (rule, sev, msg) in enumerate(key):
                msg = msg.replace("|", "\\|").replace("\n", " ")[:200]
                w(f"| {files if i == 0 else '″'} | {how if i == 0 else '″'} | {rule} | {sev} | {msg} |")
        by_rule = collections.defaultdict(set)
        for p in flagged:
            for it in res["aegis"][p]["items"]:
                by_rule[(it["rule"], it["severity"])].add(os.path.relpath(p, benign_root).split(os.sep)[0])
        w("\nBy rule: " + "; ".join(f"{r} ({sev}) in {', '.join(sorted(g))}" for (r, sev), g in sorted(by_rule.items())))
    else:
        w("None.")
    w("")
    errs = [p for p in bfiles if res["aegis"][p]["status"] == "error"]
    if errs:
        w("aegis errors: " + "; ".join(f"{os.path.relpath(p, benign_root)}: {res['aegis'][p]['detail']}"
                                       for p in errs) + "\n")
    for t in TOOLS[1:]:
        fl = [p for p in bfiles if res[t][p]["status"] == "flagged"]
        if fl:
            w(f"<details><summary>{names[t]}: {len(fl)} flagged benign files</summary>\n")
            for p in fl:
                w(f"- `{os.path.relpath(p, benign_root)}`: " + "; ".join(res[t][p]["items"][:2])[:250])
            w("\n</details>\n")

    # (b) labelled corpus
    cases = [(os.path.join(labelled_root, m["path"]), m["name"].split("/")[0], bool(m["malicious"]), m["name"])
             for m in manifest]
    mal = [c for c in cases if c[2]]
    ben = [c for c in cases if not c[2]]
    w(f"## (b) Labelled red-team corpus (`gen-corpus`): {len(mal)} malicious, {len(ben)} benign twins\n")
    w("| tool | recall (flagged) | recall (lenient) | false positives on benign twins (flagged) | FP (lenient) "
      "| errors mal/benign | skipped mal/benign |\n|---|---|---|---|---|---|---|")
    for t in TOOLS:
        cm = counts([res[t][c[0]] for c in mal])
        cb = counts([res[t][c[0]] for c in ben])
        w(f"| {names[t]} | {pct(cm['flagged'], len(mal))} | {pct(cm['lenient'], len(mal))} "
          f"| {pct(cb['flagged'], len(ben))} | {pct(cb['lenient'], len(ben))} | {cm['error']}/{cb['error']} "
          f"| {cm['skipped']}/{cb['skipped']} |")
    w("")
    fams = sorted({c[1] for c in cases})
    w("Per family: recall on malicious cases, then false positives on benign twins (flagged).\n")
    w("| family | malicious | benign | " + " | ".join(f"{names[t]} recall" for t in TOOLS) + " | "
      + " | ".join(f"{t} FP" for t in TOOLS) + " |\n|---|---|---|" + "---|" * (2 * len(TOOLS)))
    for fam in fams:
        fm = [c for c in mal if c[1] == fam]
        fb = [c for c in ben if c[1] == fam]
        rec = [f"{sum(res[t][c[0]]['status'] == 'flagged' for c in fm)}/{len(fm)}" if fm else "–" for t in TOOLS]
        fp = [f"{sum(res[t][c[0]]['status'] == 'flagged' for c in fb)}/{len(fb)}" if fb else "–" for t in TOOLS]
        w(f"| {fam} | {len(fm)} | {len(fb)} | " + " | ".join(rec) + " | " + " | ".join(fp) + " |")
    w("")
    missed = [c for c in mal if res["aegis"][c[0]]["status"] != "flagged"]
    fps = [c for c in ben if res["aegis"][c[0]]["status"] == "flagged"]
    w(f"aegis misses ({len(missed)}): " + (", ".join(f"`{c[3]}` ({res['aegis'][c[0]]['status']})" for c in missed)
                                         or "none") + "  ")
    w(f"aegis false positives on benign twins ({len(fps)}): "
      + (", ".join(f"`{c[3]}` ({res['aegis'][c[0]]['items'][0]['rule']})" for c in fps) or "none") + "\n")
    for t in TOOLS:
        e = [c for c in cases if res[t][c[0]]["status"] == "error"]
        if e:
            kinds = collections.Counter(res[t][c[0]]["detail"][:80] for c in e)
            w(f"{names[t]} errors ({len(e)}): " + "; ".join(f"{k} ×{n}" for k, n in kinds.most_common(4)) + "  ")
    w("")

    # timing
    w("## Time per file (wall clock of one process, seconds)\n")
    w("| tool | corpus | median | mean | worst (file) |\n|---|---|---|---|---|")
    for t in TOOLS:
        for label, ps in (("real benign", bfiles), ("labelled", [c[0] for c in cases])):
            secs = [(res[t][p]["secs"], p) for p in ps]
            if not secs:
                continue
            worst = max(secs)
            root = benign_root if label == "real benign" else labelled_root
            w(f"| {names[t]} | {label} | {statistics.median(s for s, _ in secs):.3f} "
              f"| {statistics.mean(s for s, _ in secs):.3f} | {worst[0]:.3f} (`{os.path.relpath(worst[1], root)}`) |")
    w("\naegis is the debug build (`target/debug/aegis`); the others run under CPython 3.11 "
      "(ModelScan and modelaudit two files at a time, so their times include some contention).")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--benign")
    ap.add_argument("--labelled")
    ap.add_argument("--aegis", default="target/debug/aegis")
    ap.add_argument("--venv", default="bench/.venv")
    ap.add_argument("--modelscan", default="bench/.venv/modelscan/bin/modelscan",
                    help="ModelScan lives in its own venv: 0.8.8 calls numpy.lib.format._check_version, gone "
                         "from NumPy >= 2.3, while modelaudit 0.2.54 needs NumPy >= 2.4.3")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--raw", help="also write the per-file results as JSON here")
    ap.add_argument("--report-only", help="print the report of an earlier --raw file without scanning")
    ap.add_argument("--rescan", metavar="RAW",
                    help="rescan the files of an earlier --raw file RAW with the --only tools (e.g. aegis after a "
                         "fix), update RAW in place and print the report; the other tools' results are kept")
    ap.add_argument("--only", default="aegis", help="comma-separated tools for --rescan (default aegis)")
    ap.add_argument("--library-versions", default="", help="text for the header (';'-separated)")
    args = ap.parse_args()
    if args.report_only:
        with open(args.report_only) as f:
            print(report(json.load(f)))
        return
    if args.rescan:
        args.aegis, args.venv, args.modelscan = map(os.path.abspath, (args.aegis, args.venv, args.modelscan))
        with open(args.rescan) as f:
            raw = json.load(f)
        only = [t.strip() for t in args.only.split(",") if t.strip()]
        versions = tool_versions(args)
        for tool in only:
            paths = list(raw["results"][tool])
            with concurrent.futures.ThreadPoolExecutor(max_workers=1 if tool == "aegis" else args.workers) as ex:
                raw["results"][tool] = dict(zip(paths, ex.map(lambda p, t=tool: SCAN[t](args, p), paths)))
            raw["versions"][tool] = versions[tool]
        if "aegis" in only:
            raw["aegis_build"] = aegis_build(args.aegis)
        with open(args.rescan, "w") as f:
            json.dump(raw, f, indent=1)
        print(report(raw))
        return
    if not (args.benign and args.labelled):
        ap.error("--benign and --labelled are required")
    args.aegis = os.path.abspath(args.aegis)
    args.venv = os.path.abspath(args.venv)
    args.modelscan = os.path.abspath(args.modelscan)
    benign_root, labelled_root = os.path.abspath(args.benign), os.path.abspath(args.labelled)
    with open(os.path.join(labelled_root, "manifest.json")) as f:
        manifest = json.load(f)
    try:
        with open(os.path.join(benign_root, "manifest.json")) as f:
            libmanifest = json.load(f)
    except OSError:
        libmanifest = []
    try:
        with open(os.path.join(benign_root, "skipped.json")) as f:
            notes = json.load(f)
    except OSError:
        notes = []
    bfiles = benign_files(benign_root)
    lfiles = [os.path.join(labelled_root, m["path"]) for m in manifest]
    raw = {"versions": tool_versions(args), "aegis_build": aegis_build(args.aegis), "machine": machine(), "date": time.strftime("%Y-%m-%d"),
           "timeout": args.timeout, "benign_root": benign_root, "labelled_root": labelled_root,
           "benign_files": bfiles, "labelled_manifest": manifest, "benign_manifest": libmanifest,
           "library_versions": [s.strip() for s in args.library_versions.split(";") if s.strip()],
           "benign_notes": notes}
    print(f"scanning {len(bfiles)} real benign + {len(lfiles)} labelled files", file=sys.stderr, flush=True)
    raw["results"] = scan_all(args, bfiles + lfiles)
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump(raw, f, indent=1)
    print(report(raw))


if __name__ == "__main__":
    main()
