#!/usr/bin/env bash
# Drift benchmark: `aegis drift` vs a plain scipy loop (pandas + ks_2samp / chi2_contingency + BH) vs Evidently's
# DataDriftPreset, on a seeded REFERENCE/CURRENT pair of ROWS x 20 columns with five shifted columns (three
# numeric, two categorical; see bench/drift/generate.py). Each tool runs under /usr/bin/time -v (wall time, peak
# RSS); the detected columns are printed side by side. Results: bench/drift/results.md (or $OUT).
# Usage: bench/drift.sh [--rows N] [--no-build] [--skip-evidently]     (default 1,000,000 rows)
# Env: AEGIS=path/to/aegis overrides the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=1000000 BUILD=1 EVIDENTLY=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --skip-evidently) EVIDENTLY=0 ;;
    *) echo "usage: bench/drift.sh [--rows N] [--no-build] [--skip-evidently]" >&2; exit 2 ;;
  esac
  shift
done
AEGIS=${AEGIS:-target/release/aegis}
OUT=${OUT:-bench/drift/results.md}
if [ "$BUILD" = 1 ]; then cargo build --release -q -p aegis-cli; fi
if [ ! -x /usr/bin/time ]; then apt-get install -y -q time >/dev/null; fi
WORK=bench/work/drift/$ROWS
mkdir -p "$WORK"
REF=$WORK/reference.csv CUR=$WORK/current.csv
if [ ! -s "$CUR" ]; then python3 bench/drift/generate.py "$ROWS" "$WORK"; fi
VENV=bench/work/drift/venv
if [ "$EVIDENTLY" = 1 ]; then
  if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
  # Evidently 0.7 imports a pandas internal that pandas 3 removed: pin pandas < 3.
  if ! "$VENV/bin/python" -c "import evidently, pandas" 2>/dev/null; then
    "$VENV/bin/pip" install -q evidently "pandas<3"
  fi
fi

# timed NAME CMD...: runs CMD under /usr/bin/time -v, stdout to $WORK/NAME.out; sets WALL (s) and RSS (MiB).
timed() {
  local name=$1; shift
  local rc=0
  /usr/bin/time -v "$@" > "$WORK/$name.out" 2> "$WORK/$name.time" || rc=$?
  if [ "$rc" -gt 1 ]; then echo "$name failed (exit $rc):" >&2; tail -5 "$WORK/$name.time" >&2; exit 1; fi
  WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; printf "%.2f", s}' "$WORK/$name.time")
  RSS=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$WORK/$name.time")
  CPU=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$WORK/$name.time")
}

timed aegis "$AEGIS" drift "$REF" "$CUR" --format json -q
A_WALL=$WALL A_RSS=$RSS A_CPU=$CPU
A_DET=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(' '.join(c['name'] for c in d['columns'] if c['drifted']))" "$WORK/aegis.out")
timed scipy python3 bench/drift/scipy_loop.py "$REF" "$CUR" --json "$WORK/scipy.json"
S_WALL=$WALL S_RSS=$RSS S_CPU=$CPU S_DET=$(cat "$WORK/scipy.out")
if [ "$EVIDENTLY" = 1 ]; then
  timed evidently "$VENV/bin/python" bench/drift/evidently_run.py "$REF" "$CUR" --json "$WORK/evidently.json"
  E_WALL=$WALL E_RSS=$RSS E_CPU=$CPU E_DET=$(cat "$WORK/evidently.out")
  E_VER=$("$VENV/bin/python" -c 'import evidently, pandas; print(f"Evidently {evidently.__version__} (pandas {pandas.__version__})")')
fi
TRUTH="num_00 num_01 num_02 cat_00 cat_01"
same() { [ "$(echo "$1" | tr ' ' '\n' | sort | xargs)" = "$(echo "$TRUTH" | tr ' ' '\n' | sort | xargs)" ] && echo yes || echo no; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/max(float(sys.argv[2]),1e-9):.1f}x')" "$1" "$2"; }
SIZE=$(du -m "$REF" | cut -f1)
{
  echo "# Drift benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo
  echo "\`bench/drift.sh --rows $ROWS\`: REFERENCE and CURRENT of $ROWS rows x 20 columns (16 numeric, 4 categorical;"
  echo "${SIZE} MB of CSV each; bench/drift/generate.py, seed 20261126). Shifted in CURRENT: num_00 (mean +0.2 sd),"
  echo "num_01 (scale x1.25), num_02 (5% tail moved to +4 sd), cat_00 (frequencies 40/30/20/10 -> 28/30/24/18%),"
  echo "cat_01 (new category at 8%). Versions: aegis $("$AEGIS" --version | awk '{print $2}'); python $(python3 -c 'import sys; print(sys.version.split()[0])'), scipy $(python3 -c 'import scipy; print(scipy.__version__)'), pandas $(python3 -c 'import pandas; print(pandas.__version__)'); ${E_VER:-Evidently not run}."
  echo "Wall time and peak RSS from /usr/bin/time -v (one run each, file cache warm after generation)."
  echo
  echo "| tool | wall (s) | CPU (s) | peak RSS (MiB) | detected columns | = the five shifted |"
  echo "|---|---:|---:|---:|---|---|"
  echo "| \`aegis drift\` (KS / chi-square, BH, effect floor 0.1) | $A_WALL | $A_CPU | $A_RSS | $A_DET | $(same "$A_DET") |"
  echo "| scipy loop (pandas, ks_2samp / chi2_contingency, BH) | $S_WALL | $S_CPU | $S_RSS | $S_DET | $(same "$S_DET") |"
  if [ "$EVIDENTLY" = 1 ]; then
    echo "| Evidently DataDriftPreset (defaults) | $E_WALL | $E_CPU | $E_RSS | $E_DET | $(same "$E_DET") |"
  fi
  echo
  echo "aegis is $(ratio "$S_WALL" "$A_WALL") faster than the scipy loop$( [ "$EVIDENTLY" = 1 ] && echo " and $(ratio "$E_WALL" "$A_WALL") faster than Evidently") (wall time)."
  echo
  python3 - "$WORK/aegis.out" "$WORK/scipy.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); s = json.load(open(sys.argv[2]))
cols = {c["name"]: c for c in a["columns"]}
diff = max(abs(c["pvalue"] - s["pvalues"][n]) for n, c in cols.items() if c["pvalue"] is not None)
print(f"Raw p-values of aegis and the scipy loop differ by at most {diff:.1e} over the 20 columns (same tests).")
for n in s["detected"]:
    c = cols[n]
    if not c["drifted"]:
        eff = c["wasserstein"] if c["kind"] == "numeric" else c["jensen_shannon"]
        print(f"Only the scipy loop flags `{n}`: BH-corrected p = {s['adjusted'][n]:.3g} < 0.05, but PSI = "
              f"{c['psi']:.2g} and {'W/sd' if c['kind'] == 'numeric' else 'JS'} = {eff:.2g}, below aegis's effect "
              f"floor of 0.1 (the column is not shifted: a chance rejection that a significance test alone cannot avoid).")
PY
} > "$OUT"
cat "$OUT"
