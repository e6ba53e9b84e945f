"""The third-party example (examples/benchbox-example-plugin) installed with real pip and used by benchbox.

pip builds a wheel from a copy of the example (so no build folder lands in the checkout) and
installs it into a temporary folder that subprocesses get on PYTHONPATH: its entry points are
written by the install itself, exactly as for a user's ``pip install``. Offline: no index, no
build isolation (setuptools comes with the test environment).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchbox.grid import read_rows

EXAMPLE = Path(__file__).parents[1] / "examples" / "benchbox-example-plugin"
SMALL = ["--dataset.per-shape", "40", "--generator.epochs", "1", "--generator.base-channels", "8",
         "--generator.latent-dim", "8", "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    try:
        import setuptools  # noqa: F401  -- the build backend, used without build isolation
    except ImportError:
        pytest.fail("setuptools is not importable: pip cannot build the example offline (pip install setuptools)")
    root = tmp_path_factory.mktemp("example")
    src = root / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    target = root / "site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                          "--no-build-isolation", "--target", str(target), str(src)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return target


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def bb(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchbox.cli", *args], capture_output=True, text=True,
                          env=_env(site), cwd=cwd)


def test_pip_wrote_the_entry_points(site):
    infos = list(site.glob("benchbox_example_plugin-*.dist-info"))
    assert len(infos) == 1, sorted(p.name for p in site.iterdir())
    eps = (infos[0] / "entry_points.txt").read_text()
    assert "[benchbox.datasets]" in eps and "example-shapes = benchbox_example_plugin.shapes:Shapes" in eps
    assert "[benchbox.detectors]" in eps and "example-mahalanobis" in eps
    assert (site / "benchbox_example_plugin" / "mahalanobis.py").is_file()


def test_listed_with_its_options(site):
    out = bb(site, "list", "datasets", "--verbose")
    assert out.returncode == 0, out.stderr
    assert "example-shapes" in out.stdout and "benchbox-example-plugin" in out.stdout
    assert "--dataset.normal-shape" in out.stdout and "Shape treated as normal" in out.stdout
    assert "example-mahalanobis" not in out.stdout  # a group filter still applies


def test_run_uses_both_plugins(site, tmp_path):
    out = bb(site, "run", "--dataset", "example-shapes", "--detector", "example-mahalanobis", "--policy", "random",
             "--dataset.normal-shape", "square", "--detector.grid", "4", *SMALL, "--out", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    (run,) = list((tmp_path / "runs").iterdir())
    result = json.loads((run / "result.json").read_text())
    assert result["plugins"]["datasets"]["distribution"] == "benchbox-example-plugin"
    assert result["plugins"]["detectors"]["distribution"] == "benchbox-example-plugin"
    assert result["config"]["dataset"]["normal_shape"] == "square" and result["config"]["detector"]["grid"] == 4
    # the example detector is near chance at these budgets (AUROC 0.42-0.65 over seeds 0-4), so the
    # split the run used is what is checked: 40 squares -> 30 % test (12), 10 % of the rest val (3),
    # 25 train, one generated image per training image; 80 test anomalies (40 of each other shape)
    data = result["data"]
    assert data["category"] == "square", data
    assert (data["n_train"], data["n_val"], data["n_test"], data["n_test_anomalous"], data["n_generated"]) == \
        (25, 3, 92, 80, 25), data
    assert isinstance(result["metrics"]["image_auroc"], float)
    assert result["metrics"]["pixel_auroc"] is None  # the shapes carry no masks
    # a wrong option type of a third-party plugin is one line too
    bad = bb(site, "run", "--dataset", "example-shapes", "--detector", "example-mahalanobis", "--detector.grid", "x")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert "--detector.grid expects an integer, got 'x'" in bad.stderr


@pytest.mark.slow
def test_grid_and_the_examples_own_tests(site, tmp_path):
    results = tmp_path / "r.jsonl"
    out = bb(site, "grid", "--datasets", "example-shapes", "--generators", "ae", "--policies", "none,random",
             "--detectors", "example-mahalanobis,ae", "--seeds", "0", "--device", "cpu", "--threads", "1",
             "--set", "dataset.per_shape=40", "--set", "generator.epochs=1", "--set", "generator.base_channels=8",
             "--set", "detector.ae.epochs=1", "--set", "detector.ae.base_channels=8",
             "--results", str(results), "--cache-dir", str(tmp_path / "cache"), "--no-run-folders")
    assert out.returncode == 0, out.stderr
    rows, bad = read_rows(results)
    assert bad == 0 and len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert {r["config"]["detector"]["name"] for r in rows} == {"example-mahalanobis", "ae"}
    assert "1 generator trainings" in out.stdout

    # the example's own CI (benchbox.testing checks), against the installed copy
    own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                         capture_output=True, text=True, env=_env(site), cwd=tmp_path)
    assert own.returncode == 0, own.stdout[-3000:]
    assert "5 passed" in own.stdout and "skipped" not in own.stdout


def test_the_docs_example_passes_the_checks(tmp_path, monkeypatch):
    """docs/plugins.md's complete example, as written, passes benchbox.testing.check_detector."""
    import importlib
    import re

    from benchbox.errors import ConfigError
    from benchbox.testing import check_detector

    doc = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    code = re.search(r"## A complete example.*?```python\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "bbx_test_docs_knn.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = importlib.import_module("bbx_test_docs_knn")
        check_detector(module.PixelKNN)
        check_detector(module.PixelKNN, {"k": 3})
        with pytest.raises(ConfigError, match="--detector.k must be >= 1"):
            module.PixelKNN(module.PixelKNN.Config(k=0))
    finally:
        sys.modules.pop("bbx_test_docs_knn", None)
