#!/usr/bin/env bash
# GPU readiness check (issue 16 part 6): one script, one results file, under 8 minutes on one GPU.
#
#   benchmarks/gpu_check.sh [--device cuda|cpu] [--out FILE.json] [--quick]
#
# Steps (each under its own time limit; a failed step is recorded and the others still run):
#   1. default_cell   `benchbox run --device DEV` with every default (mnist / ae / ppo / transformer)
#   2. grid_ray       a 12-cell grid (mnist x {ae, vae} x {none, random, ppo} x transformer x seeds 0, 1;
#                     reduced budgets) on the Ray backend, --gpus-per-cell 0.25 (0 with --device cpu:
#                     a fractional GPU request on a machine without one would wait forever)
#   3. anomalib-*     every registered anomalib wrapper, one small cell each (policy none, 64 training
#                     images, --detector.no-pretrained, --detector.max-steps 20) on DEV
#   4. latent_env     benchmarks/latent_env_speed.py --device DEV (N = 1, 64, 1024)
#   5. backbone       benchmarks/backbone.py --parts speed --device DEV: ae training images/s at 28 and
#                     256 px, default backbone and channels_last + bf16 (bf16 acts on CUDA only)
# Writes FILE.json (default benchmarks/results/gpu_check_DEV.json) and FILE.md: per step the command,
# exit code, wall time, the numbers it produced and the tail of its log; plus the machine (nvidia-smi).
# --device cpu runs every step that a CPU allows (all but anomalib-efficientad, which needs minutes per
# batch on a CPU) with the same commands, so the script itself is tested without a GPU.
# Nothing is downloaded: HF_HUB_OFFLINE=1, pretrained weights off, a fresh BENCHBOX_CACHE in a temp dir.
set -u

DEVICE=cuda
OUT=""
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="${2:-}"; shift 2 ;;
    --device=*) DEVICE="${1#*=}"; shift ;;
    --out) OUT="${2:-}"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    --quick) QUICK=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1'; expected --device cuda|cpu, --out FILE.json, --quick" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in
  cuda|cpu) ;;
  *) echo "gpu_check.sh: --device must be cuda or cpu, got '$DEVICE'" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 2
PY="${PYTHON:-$ROOT/.venv/bin/python}"
BB="${BENCHBOX:-$(dirname "$PY")/benchbox}"
if [ ! -x "$PY" ] || [ ! -x "$BB" ]; then
  echo "gpu_check.sh: no $PY / $BB; run 'make .venv/.installed-test' first (or set PYTHON=...)" >&2; exit 2
fi
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check.sh: --device cuda but torch sees no CUDA device (use --device cpu to test the script)" >&2; exit 2
fi
OUT="${OUT:-$ROOT/benchmarks/results/gpu_check_$DEVICE.json}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 BENCHBOX_CACHE="$WORK/cache" PYTHONUNBUFFERED=1
STEPS="$WORK/steps.jsonl"
: > "$STEPS"
T_START=$(date +%s)

# step NAME LIMIT_S CMD... : run CMD with a time limit, log to $WORK/NAME.log, append one JSON line to $STEPS
step() {
  local name="$1" limit="$2"; shift 2
  echo "[gpu_check] $name: $*" >&2
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" > "$WORK/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  "$PY" - "$name" "$rc" "$t0" "$t1" "$limit" "$WORK/$name.log" "$STEPS" "$@" <<'EOF'
import json, sys
name, rc, t0, t1, limit, log, steps, *cmd = sys.argv[1:]
tail = open(log, errors="replace").read()[-1500:]
row = {"step": name, "rc": int(rc), "timed_out": int(rc) in (124, 137), "wall_s": round(float(t1) - float(t0), 1),
       "limit_s": int(limit), "command": " ".join(cmd), "log_tail": tail}
open(steps, "a").write(json.dumps(row) + "\n")
print(f"[gpu_check] {name}: rc {rc}, {row['wall_s']} s", file=sys.stderr)
EOF
}

if [ "$DEVICE" = cuda ]; then GPUS=0.25; else GPUS=0; fi
if [ "$QUICK" = 1 ]; then SEEDS=0,1; GEN_EPOCHS=1; PPO_STEPS=256; else SEEDS=0,1; GEN_EPOCHS=5; PPO_STEPS=1024; fi

# 1. the default cell
step default_cell 240 "$BB" run --device "$DEVICE" --out "$WORK/runs/default_cell"

# 2. 12 cells on Ray, a quarter GPU each
step grid_ray 240 "$BB" grid --datasets mnist --generators ae,vae --policies none,random,ppo --detectors transformer \
  --seeds "$SEEDS" --set dataset.train_limit=400 --set generator.epochs="$GEN_EPOCHS" \
  --set policy.ppo.total_timesteps="$PPO_STEPS" --set detector.transformer.epochs=4 \
  --device "$DEVICE" --backend ray --gpus-per-cell "$GPUS" --results "$WORK/grid.jsonl" --no-run-folders --quiet

# 3. every anomalib wrapper
ANOMALIB=$("$PY" -c "from benchbox import registry; print(' '.join(p.name for p in registry.list_plugins('detectors') if p.name.startswith('anomalib-')))")
for det in $ANOMALIB; do
  if [ "$DEVICE" = cpu ] && [ "$det" = anomalib-efficientad ]; then
    echo "{\"step\": \"$det\", \"skipped\": \"minutes per batch on a CPU; runs with --device cuda\"}" >> "$STEPS"; continue
  fi
  step "$det" 120 "$BB" run --device "$DEVICE" --dataset mnist --dataset.train-limit 64 --generator ae \
    --generator.epochs 1 --policy none --detector "$det" --detector.no-pretrained --detector.max-steps 20 \
    --out "$WORK/runs/$det" --quiet
done

# 4. latent env speed
step latent_env 120 "$PY" benchmarks/latent_env_speed.py --device "$DEVICE" --out-dir "$WORK/latent_env"

# 5. backbone training images/s
if [ "$DEVICE" = cuda ]; then REPEAT=16; else REPEAT=1; fi
step backbone 120 "$PY" benchmarks/backbone.py --parts speed --variants new new-cl-bf16 --threads 2 \
  --device "$DEVICE" --speed-repeat "$REPEAT" --out "$WORK/backbone.json"

"$PY" - "$WORK" "$STEPS" "$OUT" "$DEVICE" "$T_START" <<'EOF'
import glob, json, os, platform, subprocess, sys, time
from pathlib import Path
work, steps, out, device, t_start = sys.argv[1:]
work, out = Path(work), Path(out)
rows = [json.loads(line) for line in open(steps)]

def results(folder):
    return [json.loads(Path(p).read_text()) for p in sorted(glob.glob(str(folder / "**" / "result.json"), recursive=True))]

def cell_numbers(res):
    m = res.get("metrics", {})
    keep = ("image_auroc", "pixel_auroc", "aupro", "gen_fid")
    return {"device": res.get("device"), **{k: m[k] for k in keep if m.get(k) is not None},
            "timings_s": res.get("timings"), "peak_cuda_mb": res.get("peak_cuda_mb")}

for r in rows:
    s = r["step"]
    if r.get("skipped"):
        continue
    if s == "default_cell" or s.startswith("anomalib-"):
        found = results(work / "runs" / s)
        r["numbers"] = cell_numbers(found[0]) if found else None
    elif s == "grid_ray":
        p = work / "grid.jsonl"
        cells = [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []
        r["numbers"] = {"cells": len(cells), "ok": sum(c.get("status") == "ok" for c in cells),
                        "devices": sorted({str(c.get("device")) for c in cells}),
                        "image_auroc": [round(c.get("metrics", {}).get("image_auroc", float("nan")), 4) for c in cells]}
    elif s == "latent_env":
        found = sorted((work / "latent_env").glob("*.json"))
        r["numbers"] = json.loads(found[0].read_text()).get("rows") if found else None
    elif s == "backbone":
        p = work / "backbone.json"
        r["numbers"] = [{k: x.get(k) for k in ("variant", "image_size", "n_images", "images_per_s", "steady_images_per_s")}
                        for x in json.loads(p.read_text())["rows"]] if p.exists() else None

def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""

commit = sh(["git", "rev-parse", "--short", "HEAD"])
doc = {"device": device, "date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit,
       "wall_s": round(time.time() - float(t_start), 1),
       "passed": all(r.get("skipped") or r["rc"] == 0 for r in rows),
       "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                   "nvidia_smi": sh(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])},
       "steps": rows}
try:
    import torch
    doc["machine"]["torch"] = torch.__version__
    doc["machine"]["cuda_device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
except Exception:
    pass
out.parent.mkdir(parents=True, exist_ok=True)
tmp = out.with_suffix(".json.tmp")
tmp.write_text(json.dumps(doc, indent=1))
os.replace(tmp, out)
lines = [f"# GPU readiness check ({device})", "",
         f"Written by `benchmarks/gpu_check.sh --device {device}` at commit {commit}, {doc['date']}; total {doc['wall_s']} s; "
         f"all steps passed: **{doc['passed']}**. Machine: {doc['machine'].get('cuda_device') or doc['machine']['platform']}, "
         f"torch {doc['machine'].get('torch')}.", "", "| step | rc | wall s | numbers |", "|---|---:|---:|---|"]
for r in rows:
    if r.get("skipped"):
        lines.append(f"| {r['step']} | - | - | skipped: {r['skipped']} |")
    else:
        lines.append(f"| {r['step']} | {r['rc']}{' (timed out)' if r['timed_out'] else ''} | {r['wall_s']} | "
                     f"`{json.dumps(r.get('numbers'))[:400]}` |")
out.with_suffix(".md").write_text("\n".join(lines) + "\n")
print(f"[gpu_check] wrote {out} and {out.with_suffix('.md')}; passed: {doc['passed']}; {doc['wall_s']} s", file=sys.stderr)
sys.exit(0 if doc["passed"] else 1)
EOF
