#!/usr/bin/env bash
# GPU readiness check (issue 16 part 6): one script, one results file, under 8 minutes on one GPU.
#
#   benchmarks/gpu_check.sh [--device cuda|cpu] [--quick] [--parts LIST] [RESULTS_DIR]
#
# Parts (each timed and under its own time limit; a failed or timed-out part is recorded, the rest still run):
#   default_cell  `benchbox run --device DEV`, every default (mnist / ae / ppo / transformer)
#   grid_ray      a 12-cell grid (mnist x {ae, vae} x {none, random, ppo} x transformer x seeds 0, 1; reduced
#                 budgets) on the Ray backend, --gpus-per-cell 0.25 (0 on the CPU: a GPU request on a machine
#                 without one waits forever). Ray runs as a one-node cluster inside a private network namespace
#                 (unshare -n: loopback is its only interface, as in tests/test_ray_cluster.py), started with
#                 `ray start --head --block` under `timeout`, so it stops by itself; no namespace: skipped.
#   anomalib      every registered anomalib-* detector, one small cell each (policy none, 64 training images,
#                 --detector.no-pretrained, --detector.max-steps 20) on DEV
#   latent_env    benchmarks/latent_env_speed.py --device DEV (N = 1, 64, 1024; floor and Python-loop ratios)
#   backbone      benchmarks/backbone.py --parts speed --device DEV: ae training images/s at 28 and 256 px
# LIST is a comma-separated subset of those names (default: all). --quick shrinks every budget (for testing
# the script: `--device cpu --quick`). Writes RESULTS_DIR/gpu_check_DEV.json (per part: command, exit code,
# wall time, the numbers it produced, the tail of its log; provenance: versions, device, commit, wall time)
# and the .md written from it (RESULTS_DIR defaults to benchmarks/results). Exit code 0 when every part
# passed, 1 when one failed, 2 on bad arguments. Nothing is downloaded (HF_HUB_OFFLINE=1, no pretrained
# weights, a fresh BENCHBOX_CACHE in a temp dir that is removed at the end).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
BIN="$(dirname "$PY")"
ALL_PARTS="default_cell,grid_ray,anomalib,latent_env,backbone"

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "gpu_check.sh: $*" >&2; exit 2; }

# ---- internal: the Ray part, run inside `unshare -n` (loopback only) --------------------------------------
if [ "${1:-}" = "__ray_grid" ]; then
  shift
  WORK="$1" LIFETIME="$2" NUM_CPUS="$3" NUM_GPUS="$4"; shift 4
  ip link set lo up
  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$WORK/ray_token" RAY_USAGE_STATS_ENABLED=0
  export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0
  "$PY" -c "import secrets; print(secrets.token_hex(32))" > "$WORK/ray_token"
  PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  HEAD=
  trap '[ -n "$HEAD" ] && kill -TERM $HEAD 2>/dev/null; wait 2>/dev/null || true' EXIT
  timeout "$LIFETIME" "$BIN/ray" start --head --block --node-ip-address 127.0.0.1 --port "$PORT" \
    --num-cpus "$NUM_CPUS" --num-gpus "$NUM_GPUS" --include-dashboard false --disable-usage-stats \
    --temp-dir "$WORK/ray" > "$WORK/ray_head.log" 2>&1 &
  HEAD=$!
  "$PY" - "$PORT" <<'PY' || { echo "gpu_check.sh: the Ray head did not start (see ray_head.log)"; exit 3; }
import socket, sys, time
for _ in range(120):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        break
    except OSError:
        time.sleep(0.5)
else:
    raise SystemExit(1)
PY
  "$BIN/benchbox" grid --backend ray --ray-address "127.0.0.1:$PORT" "$@"
  exit $?
fi

# ---- arguments -----------------------------------------------------------------------------------------
DEVICE=cuda QUICK=0 PARTS="$ALL_PARTS" RESULTS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) [ $# -ge 2 ] || die "--device needs a value: cuda or cpu"; DEVICE="$2"; shift 2 ;;
    --device=*) DEVICE="${1#*=}"; shift ;;
    --parts) [ $# -ge 2 ] || die "--parts needs a list: $ALL_PARTS"; PARTS="$2"; shift 2 ;;
    --parts=*) PARTS="${1#*=}"; shift ;;
    --quick) QUICK=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option '$1'; expected --device cuda|cpu, --quick, --parts LIST, RESULTS_DIR" ;;
    *) [ -z "$RESULTS" ] || die "one RESULTS_DIR only, got '$RESULTS' and '$1'"; RESULTS="$1"; shift ;;
  esac
done
case "$DEVICE" in cuda|cpu) ;; *) die "--device must be cuda or cpu, got '$DEVICE'" ;; esac
for p in ${PARTS//,/ }; do
  case ",$ALL_PARTS," in *",$p,"*) ;; *) die "--parts: unknown part '$p'; expected a subset of $ALL_PARTS" ;; esac
done
[ -x "$PY" ] && [ -x "$BIN/benchbox" ] || die "no $PY / $BIN/benchbox: run 'make .venv/.installed-test' first (or set PYTHON=...)"
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  die "--device cuda but torch sees no CUDA device (use --device cpu to test the script)"
fi
RESULTS="${RESULTS:-$ROOT/benchmarks/results}"
mkdir -p "$RESULTS" || die "cannot create the results folder '$RESULTS'"
RESULTS="$(cd "$RESULTS" && pwd)"

cd "$ROOT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 BENCHBOX_CACHE="$WORK/cache" PYTHONUNBUFFERED=1
STEPS="$WORK/steps.jsonl"
: > "$STEPS"
T_START=$(date +%s.%N)
want() { case ",$PARTS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# step NAME LIMIT_S CMD... : run CMD under a time limit, log to $WORK/NAME.log, record one JSON line
step() {
  local name="$1" limit="$2" t0 t1 rc=0
  shift 2
  echo "[gpu_check] $name: $*" >&2
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" > "$WORK/$name.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  "$PY" benchmarks/gpu_check.py record "$STEPS" "$name" "$rc" "$t0" "$t1" "$limit" "$WORK/$name.log" -- "$@"
}
skip() { "$PY" benchmarks/gpu_check.py skip "$STEPS" "$1" "$2"; echo "[gpu_check] $1: skipped: $2" >&2; }

if [ "$QUICK" = 1 ]; then
  CELL=(--dataset.train-limit 100 --generator.epochs 1 --policy.total-timesteps 512 --detector.epochs 1)
  GRID_SET=(--set dataset.train_limit=60 --set generator.epochs=1 --set policy.ppo.total_timesteps=256
            --set detector.epochs=1)
  ENV_ARGS=(--seconds 0.2 --rounds 1) BB_VARIANTS=(new) REPEAT=1
else
  CELL=()
  GRID_SET=(--set dataset.train_limit=400 --set generator.epochs=5 --set policy.ppo.total_timesteps=2048
            --set detector.epochs=4)
  ENV_ARGS=() BB_VARIANTS=(new new-cl-bf16) REPEAT=1
fi
if [ "$DEVICE" = cuda ]; then GPUS=0.25 NUM_GPUS=1 RAY_CPUS=4 REPEAT=$([ "$QUICK" = 1 ] && echo 1 || echo 16)
else GPUS=0 NUM_GPUS=0 RAY_CPUS=1; fi

# 1. the default cell
if want default_cell; then
  step default_cell 300 "$BIN/benchbox" run --device "$DEVICE" "${CELL[@]}" --out "$WORK/runs/default_cell"
fi

# 2. 12 cells on a one-node Ray cluster on loopback, a quarter GPU each
if want grid_ray; then
  if ! "$PY" -c "import ray" 2>/dev/null; then
    skip grid_ray "Ray is not installed (pip install -e '.[grid-ray]')"
  elif ! command -v unshare > /dev/null || ! command -v ip > /dev/null || ! unshare -n true 2>/dev/null; then
    skip grid_ray "needs a private network namespace (unshare -n) so that Ray listens on loopback only"
  else
    step grid_ray 300 unshare -n bash "$0" __ray_grid "$WORK" 320 "$RAY_CPUS" "$NUM_GPUS" \
      --datasets mnist --generators ae,vae --policies none,random,ppo --detectors transformer --seeds 0,1 \
      "${GRID_SET[@]}" --device "$DEVICE" --threads 1 --gpus-per-cell "$GPUS" --results "$WORK/grid.jsonl" \
      --cache-dir "$WORK/cache" --no-run-folders --quiet
  fi
fi

# 3. every anomalib wrapper
if want anomalib; then
  for det in $("$PY" benchmarks/gpu_check.py anomalib-detectors); do
    if [ "$DEVICE" = cpu ] && [ "$det" = anomalib-efficientad ]; then
      skip "$det" "minutes per batch on a CPU; runs with --device cuda"; continue
    fi
    step "$det" 150 "$BIN/benchbox" run --device "$DEVICE" --dataset mnist --dataset.train-limit 64 --generator ae \
      --generator.epochs 1 --policy none --detector "$det" --detector.no-pretrained --detector.max-steps 20 \
      --out "$WORK/runs/$det" --quiet
  done
fi

# 4. latent env speed (floor: one batched decode + encode of the same N)
if want latent_env; then
  step latent_env 180 "$PY" benchmarks/latent_env_speed.py --device "$DEVICE" "${ENV_ARGS[@]}" --out-dir "$WORK/latent_env"
fi

# 5. backbone training images/s (28 and 256 px)
if want backbone; then
  step backbone 180 "$PY" benchmarks/backbone.py --parts speed --variants "${BB_VARIANTS[@]}" --threads "${OMP_NUM_THREADS:-2}" \
    --device "$DEVICE" --speed-repeat "$REPEAT" --out "$WORK/backbone.json"
fi

"$PY" benchmarks/gpu_check.py collect "$WORK" "$STEPS" "$RESULTS" "$DEVICE" "$T_START" "$QUICK"
