#!/usr/bin/env bash
# DRED vs EL-DRED, uniform, DR, PLR, robust PLR, ACCEL and ACCEL-D on one H200 machine
# (16 CPU cores) in under 10 minutes including start-up (docs/gpu/dred.md).
# Status: no GPU run of this plan has been made -- no GPU machine was lent to the sessions
# that wrote it or that ran the 5-seed `cpu` comparison (docs/dred-results.md); only
# --smoke has run, on CPU, in the test suite. The throughput figures in docs/gpu/dred.md
# for the H200 are estimates from the CPU machine.
#
#   OUT=/path/to/out bash experiments/gpu/dred_h200.sh           # the plan (scale "h200")
#   OUT=/tmp/smoke  bash experiments/gpu/dred_h200.sh --smoke   # CPU, tiny, ~1 minute
#
# Steps: (1) machine facts; (2) a throughput probe of the batched env + policy on each device
# (cpu, cuda), one process, a few PPO updates; (3) the 8-method sweep through the resumable
# runner on the faster device (or $DEVICE), one process per cell, $WORKERS at a time, stopped
# by `timeout` after $RUN_LIMIT s (rerunning the script resumes the unfinished cells from their
# checkpoints); (4) the report (solved rate, return, distribution shift) and figure.
# Environment: OUT, PYTHON (default python3), SEEDS (5), WORKERS (16), RUN_LIMIT (400 s),
# DEVICE (cpu or cuda: skip the choice), ROBUSTRL_WHEELS (a folder of wheels to install from
# when robustrl is not importable).
set -euo pipefail

SMOKE=0
if [[ "${1:-}" == "--smoke" ]]; then SMOKE=1; elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--smoke]" >&2; exit 2
fi
OUT=${OUT:-results/dred_h200}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if [[ $SMOKE == 1 ]]; then
  SCALE=tiny; SEEDS=1; WORKERS=1; RUN_LIMIT=240; PROBE_UPDATES=1; DEVICES=cpu
  METHODS='[dred, uniform]'
else
  SCALE=h200; SEEDS=${SEEDS:-5}; WORKERS=${WORKERS:-16}; RUN_LIMIT=${RUN_LIMIT:-400}
  PROBE_UPDATES=2; DEVICES="cpu cuda"
  METHODS='[dred, el_dred, dr, uniform, plr, robust_plr, accel, accel_d]'
fi
START=$(date +%s)

# 0. robustrl importable (installed, or from this checkout)
if ! "$PY" -c "import robustrl, stable_baselines3, minigrid" 2>/dev/null; then
  if [[ -n "${ROBUSTRL_WHEELS:-}" ]]; then
    "$PY" -m pip install -q --no-index --find-links "$ROBUSTRL_WHEELS" -e ".[dred,neural]"
  else
    "$PY" -m pip install -q --no-deps -e .
  fi
fi

# 1. machine
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null \
    || echo "no GPU (nvidia-smi not found)"
  echo "cpus: $(nproc)"
  "$PY" -c "import torch, numpy, numba; print('torch', torch.__version__, 'cuda',
torch.cuda.is_available(), 'numpy', numpy.__version__, 'numba', numba.__version__)"
} > "$OUT/machine.txt" 2>&1

# 2. throughput probe: env steps/s of one DRED cell process per device
for dev in $DEVICES; do
  if [[ $dev == cuda ]] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    continue
  fi
  ROBUSTRL_DRED_DEVICE=$dev timeout 120 "$PY" -c "
from robustrl.experiments.dred_cave_escape import measure_throughput as m
r = m('dred', '$SCALE', $PROBE_UPDATES, out='$OUT/throughput_$dev.json')
print('$dev', round(r['steps_per_second']), 'env steps/s')" || echo "probe on $dev failed"
done
DEV=${DEVICE:-$("$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
rates = {p.stem.split("_")[-1]: json.loads(p.read_text())["steps_per_second"]
         for p in Path(sys.argv[1]).glob("throughput_*.json")}
# many cells time-share one GPU: take cuda only when one process is 2x faster on it
print("cuda" if rates.get("cuda", 0) > 2 * rates.get("cpu", 0) else "cpu")
PY
)}
echo "device for the sweep: $DEV (probe: $(cat "$OUT"/throughput_*.json 2>/dev/null \
  | tr -d '\n' | head -c 600))" | tee "$OUT/device.txt"

# 3. the sweep (resumable; a timeout leaves finished cells and checkpoints)
ROBUSTRL_DRED_DEVICE=$DEV ROBUSTRL_DRED_CACHE="$OUT/cache" OMP_NUM_THREADS=1 \
  timeout "$RUN_LIMIT" "$PY" -m robustrl run dred_cave_escape --set scale=$SCALE \
  --set "method=$METHODS" --seeds "$SEEDS" --workers "$WORKERS" \
  --quiet --out "$OUT/dred" || echo "sweep stopped (timeout $RUN_LIMIT s?): rerun to resume"

# 4. report and figure from whatever finished
"$PY" -m robustrl plot "$OUT/dred" > "$OUT/report.txt" 2>&1 || true
cat "$OUT/report.txt"
echo "total seconds: $(( $(date +%s) - START ))" | tee -a "$OUT/report.txt"
