"""The README's two-node Ray recipe, run for real: a head and a worker node started with
``ray start`` (token auth on, each node with its own temp dir), and a tiny grid run on them with
``benchbox grid --backend ray --ray-address``. Both nodes are stopped at the end, pass or fail.

Ray 2.60 turns ``--node-ip-address 127.0.0.1`` into the host's routable address and its gRPC
servers listen on every interface, so the test runs the whole cluster (nodes and driver) inside a
private network namespace (``unshare -n``) where loopback is the only interface: nothing it starts
can be reached from outside the test, and every ``ray start`` is also bounded by ``timeout``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LIFETIME_S = 400  # each node stops by itself after this, whatever happens to the test

# The recipe, as a shell script run inside the namespace. $BIN is the venv's bin folder.
RECIPE = r"""
set -u
ip link set lo up
cleanup() {  # the worker first: a node whose head is gone waits 30 s to drain
  [ -n "$WORKER" ] && kill -TERM $WORKER 2>/dev/null && wait $WORKER 2>/dev/null
  kill -TERM $HEAD 2>/dev/null; wait $HEAD 2>/dev/null
}
HEAD= WORKER=
trap cleanup EXIT
export RAY_AUTH_MODE=${AUTH_MODE} RAY_AUTH_TOKEN_PATH=$DIR/token RAY_USAGE_STATS_ENABLED=0
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0  # a test cluster stops at once on SIGTERM
$BIN/python -c "import secrets; print(secrets.token_hex(32))" > $DIR/token
PORT=$($BIN/python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
timeout $LIFETIME $BIN/ray start --head --block --node-ip-address 127.0.0.1 --port $PORT --num-cpus 1 \
    --include-dashboard false --disable-usage-stats --temp-dir $DIR/head > $DIR/head.log 2>&1 &
HEAD=$!
$BIN/python - <<PY || { echo "head did not start"; exit 3; }
import socket, time
for _ in range(120):
    try:
        socket.create_connection(("127.0.0.1", $PORT), 1).close(); break
    except OSError:
        time.sleep(0.5)
else:
    raise SystemExit(1)
PY
timeout $LIFETIME $BIN/ray start --block --address 127.0.0.1:$PORT --node-ip-address 127.0.0.1 --num-cpus 1 \
    --temp-dir $DIR/worker > $DIR/worker.log 2>&1 &
WORKER=$!
$BIN/python - <<PY || { echo "the worker node did not join"; exit 4; }
import time, ray
ray.init(address="127.0.0.1:$PORT", log_to_driver=False)
for _ in range(120):
    if len([n for n in ray.nodes() if n["Alive"]]) == 2:
        break
    time.sleep(0.5)
else:
    raise SystemExit(1)
PY
ss -ltn > $DIR/listening.txt
$BIN/python -m benchbox.cli grid --backend ray --ray-address 127.0.0.1:$PORT "$@"
"""

GRID = ["--datasets", "digits", "--generators", "ae", "--policies", "none,random", "--detectors", "ae",
        "--seeds", "0", "--device", "cpu", "--threads", "1", "--augment-ratio", "0.5",
        "--set", "generator.epochs=1", "--set", "generator.base_channels=8", "--set", "generator.latent_dim=8",
        "--set", "detector.epochs=1", "--set", "detector.base_channels=8", "--set", "dataset.train_limit=60"]


def _namespace() -> list[str] | None:
    """A command prefix that runs in a fresh network namespace, or None where none can be made."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return None
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    return None


def run_recipe(tmp: Path, *grid_args: str, auth_mode: str = "token") -> subprocess.CompletedProcess:
    prefix = _namespace()
    if prefix is None:
        pytest.skip("needs a private network namespace (unshare -n) so that Ray's servers stay on loopback")
    env = dict(os.environ, DIR=str(tmp), BIN=str(Path(sys.executable).parent), LIFETIME=str(LIFETIME_S),
               AUTH_MODE=auth_mode, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    script = tmp / "recipe.sh"
    script.write_text(textwrap.dedent(RECIPE))
    return subprocess.run([*prefix, "bash", str(script), *grid_args], capture_output=True, text=True, env=env,
                          timeout=LIFETIME_S + 60, cwd=tmp)


def test_two_node_cluster_on_loopback_runs_a_grid_with_a_shared_cache():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'benchbox[grid-ray]')")
    import tempfile

    # short paths: Ray's Unix sockets live under the temp dir and must stay under 107 characters
    tmp = Path(tempfile.mkdtemp(prefix="bbray", dir="/tmp"))
    try:
        proc = run_recipe(tmp, *GRID, "--results", str(tmp / "results.jsonl"), "--cache-dir", str(tmp / "cache"),
                          "--runs-dir", str(tmp / "runs"))
        logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in tmp.glob("*.log"))
        assert proc.returncode == 0, proc.stdout + proc.stderr + logs
        rows = [json.loads(line) for line in (tmp / "results.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
        assert {r["config"]["policy"]["name"] for r in rows} == {"none", "random"}
        assert all(0.5 < r["metrics"]["image_auroc"] <= 1.0 for r in rows)
        # the stage cache is shared by the nodes: the generator was fitted once, the other cell hit it
        statuses = sorted(r["cache"]["generator"]["status"] for r in rows)
        assert statuses == ["hit", "miss"], statuses
        assert len(list((tmp / "cache" / "stages").rglob("*"))) > 0
        # every server the cluster started listened on loopback only
        listening = (tmp / "listening.txt").read_text().splitlines()[1:]
        addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening if line.strip()}
        assert addresses and addresses <= {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}, addresses
    finally:
        leftover = subprocess.run(["pgrep", "-f", str(tmp)], capture_output=True, text=True).stdout.split()
        shutil.rmtree(tmp, ignore_errors=True)
    assert not leftover, f"Ray processes of the test still running: {leftover}"
