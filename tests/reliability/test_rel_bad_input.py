"""Every user-facing input path rejects bad input with one clear line (no traceback without --debug),
and every untrusted on-disk artifact (decode cache, stage cache, results file) is checked, not trusted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchbox import registry
from benchbox.cli import main
from benchbox.grid import read_rows
from fixtures.layouts import make_mvtec
from rel_util import GRID_TINY, RUN_TINY, leftovers, one_error_line
from test_cifar_emnist import make_cifar
from test_datasets import make_mnist_root


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCHBOX_DATA", raising=False)
    monkeypatch.delenv("BENCHBOX_DEBUG", raising=False)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """``benchbox ARGS`` in this process: exit code, stdout, stderr (SystemExit, as tyro raises it, included)."""
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def rejected(capsys, *args: str, code: int = 2) -> str:
    got, _, err = cli(capsys, *args)
    assert got == code, err
    return one_error_line(err)


# ------------------------------------------------------------------------- plugins and options


def test_unknown_plugin_on_every_command(tmp_path, capsys):
    out = tmp_path / "runs"
    assert "did you mean: transformer" in rejected(capsys, "run", "--detector", "transfomer", "--out", str(out))
    assert "unknown policy 'rnadom'" in rejected(capsys, "grid", *GRID_TINY, "--policies", "none,rnadom",
                                                 "--results", str(tmp_path / "r.jsonl"))
    assert "did you mean: mvtec" in rejected(capsys, "data", "check", "mvtek", "--root", str(tmp_path))
    assert "unknown plugin group 'detektors'" in rejected(capsys, "list", "detektors")
    assert "did you mean 'grid'" in rejected(capsys, "gird")
    assert not out.exists() and not (tmp_path / "r.jsonl").exists()


def test_unknown_option_in_grid_flags_and_spec(tmp_path, capsys):
    results = str(tmp_path / "r.jsonl")
    msg = rejected(capsys, "grid", *GRID_TINY, "--set", "generator.epoch=2", "--results", results)
    assert "'epoch': no chosen generator has this option" in msg
    spec = tmp_path / "spec.toml"
    spec.write_text('[grid]\ndatasets = ["digits"]\ndetectors = ["ae"]\n[options.detector.ae]\nepoch = 1\n')
    msg = rejected(capsys, "grid", str(spec), "--results", results)
    assert "has no option 'epoch' (did you mean 'epochs'?)" in msg
    # options of a plugin that is not chosen are still checked (a misspelt plugin is not silently ignored)
    spec.write_text('[grid]\ndatasets = ["digits"]\ndetectors = ["ae"]\n[options.detector.transfomer]\ndim = 8\n')
    assert "did you mean: transformer" in rejected(capsys, "grid", str(spec), "--results", results)
    spec.write_text('[grid]\ndatasets = ["digits"]\ndetectors = ["ae"]\n[options.detector.transformer]\ndimm = 8\n')
    assert "has no option 'dimm' (did you mean 'dim'?)" in rejected(capsys, "grid", str(spec), "--results", results)
    spec.write_text('[grid]\ndatasets = ["digits"]\n[option.detector]\nepochs = 1\n')
    assert "unknown table(s) option" in rejected(capsys, "grid", str(spec), "--results", results)
    spec.write_text('[grid]\ndatasets = ["digits"\n')
    assert str(spec) in rejected(capsys, "grid", str(spec), "--results", results)
    assert "--bogus" in rejected(capsys, "grid", "--bogus", "--results", results)
    assert "expected comma-separated integers" in rejected(capsys, "grid", "--seeds", "0,x", "--results", results)
    assert not Path(results).exists()


def test_wrong_option_type_in_grid(tmp_path, capsys):
    results = str(tmp_path / "r.jsonl")
    msg = rejected(capsys, "grid", *GRID_TINY, "--set", 'generator.epochs="two"', "--results", results)
    assert "option 'epochs' expects an integer, got 'two'" in msg
    spec = tmp_path / "spec.toml"
    spec.write_text('[grid]\ndatasets = [{name = "digits", train_limit = 1.5}]\n')
    assert "option 'train_limit' expects an integer, got 1.5" in rejected(capsys, "grid", str(spec), "--results", results)
    spec.write_text('[grid]\ndatasets = ["digits"]\n[augment]\nratio = "lots"\n')
    assert "option 'ratio' expects a number" in rejected(capsys, "grid", str(spec), "--results", results)


def test_unknown_option_of_run_is_one_line(tmp_path, capsys):
    msg = rejected(capsys, "run", *RUN_TINY, "--dataset.normal-klass", "3", "--out", str(tmp_path / "r"))
    assert "normal-klass" in msg


def test_wrong_option_type_of_run_is_one_line(tmp_path, capsys):
    assert "--generator.epochs" in rejected(capsys, "run", *RUN_TINY, "--generator.epochs", "two",
                                            "--out", str(tmp_path / "r"))


def test_error_line_keeps_bracketed_names(tmp_path, capsys):
    msg = rejected(capsys, "grid", *GRID_TINY, "--set", "generator.epoch=2", "--results", str(tmp_path / "r.jsonl"))
    assert "[options.generator] 'epoch'" in msg


def test_bad_option_value_is_one_line_without_debug_and_traceback_with_it(tmp_path, capsys):
    args = ["run", *RUN_TINY, "--dataset.normal-class", "42", "--out", str(tmp_path / "runs")]
    assert "normal-class 42" in rejected(capsys, *args)
    code, _, err = cli(capsys, *args, "--debug")
    assert code == 2 and "Traceback" in err and "normal-class 42" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ------------------------------------------------------------------------------- datasets


def test_empty_and_corrupt_datasets_through_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    tiny = [a for a in RUN_TINY if a not in ("--dataset", "digits")]
    make_mvtec(tmp_path / "mvtec")
    for p in (tmp_path / "mvtec" / "bottle" / "train" / "good").iterdir():
        p.unlink()
    msg = rejected(capsys, "run", "--dataset", "mvtec", "--dataset.root", str(tmp_path / "mvtec"),
                   "--dataset.image-size", "32", *tiny, "--out", str(runs))
    assert "stage 'load data' failed" in msg and "train/good: no normal training images" in msg
    make_mnist_root(tmp_path / "mnist", compress=False)
    idx = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    idx.write_bytes(idx.read_bytes()[:-3])
    msg = rejected(capsys, "run", "--dataset", "mnist", "--dataset.root", str(tmp_path / "mnist"), *tiny, "--out", str(runs))
    assert str(idx) in msg and "truncated" in msg
    make_cifar(tmp_path / "cifar")
    batch = tmp_path / "cifar" / "cifar-10-batches-bin" / "data_batch_2.bin"
    batch.write_bytes(batch.read_bytes()[:5000])
    msg = rejected(capsys, "run", "--dataset", "cifar10", "--dataset.root", str(tmp_path / "cifar"), *tiny,
                   "--out", str(runs))
    assert str(batch) in msg and "multiple of 3,073" in msg
    (tmp_path / "empty").mkdir()
    msg = rejected(capsys, "run", "--dataset", "emnist", "--dataset.root", str(tmp_path / "empty"), *tiny,
                   "--out", str(runs))
    assert "holds no EMNIST 'letters' IDX files" in msg
    assert not runs.exists() or not any(runs.iterdir())


class _Trap:
    """Unpickling this creates a file: loading it would prove the cache was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_decode_cache_npz_that_needs_pickle_is_rebuilt_not_loaded(tmp_path):
    make_mvtec(tmp_path / "data")
    ds = registry.create("datasets", "mvtec", root=str(tmp_path / "data"), image_size=32)
    first = ds.load(0)
    entries = sorted((tmp_path / "cache" / "datasets").glob("*.npz"))
    assert entries
    marker = tmp_path / "unpickled"
    for path in entries:  # same name, but an object array: only loadable with pickle
        with open(path, "wb") as fh:
            np.savez(fh, images=np.array([_Trap(marker)], dtype=object))
    again = ds.load(0)
    assert not marker.exists(), "the decode cache was unpickled"
    assert torch.equal(first.train, again.train) and torch.equal(first.test.images, again.test.images)
    for path in entries:  # rebuilt as plain arrays
        with np.load(path, allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)
    assert not leftovers(tmp_path / "cache")


def test_truncated_decode_cache_npz_is_rebuilt(tmp_path):
    make_mvtec(tmp_path / "data")
    ds = registry.create("datasets", "mvtec", root=str(tmp_path / "data"), image_size=32)
    first = ds.load(0)
    for path in (tmp_path / "cache" / "datasets").glob("*.npz"):
        path.write_bytes(path.read_bytes()[:100])
    again = ds.load(0)
    assert torch.equal(first.test.masks, again.test.masks) and not leftovers(tmp_path / "cache")


# --------------------------------------------------------------------- stage cache and results


def grid_rows(capsys, tmp_path, results: Path, *extra: str) -> tuple[int, str, str]:
    return cli(capsys, "grid", *GRID_TINY, "--seeds", "0", "--results", str(results),
               "--cache-dir", str(tmp_path / "stages"), "--no-run-folders", *extra)


def test_bad_stage_artifacts_are_recomputed_through_grid(tmp_path, capsys):
    code, _, err = grid_rows(capsys, tmp_path, tmp_path / "a.jsonl", "--policies", "random")
    assert code == 0, err
    (ref,) = read_rows(tmp_path / "a.jsonl")[0]
    assert {s["status"] for s in ref["cache"].values()} == {"miss"}
    root = tmp_path / "stages" / "stages"
    gen = root / "generator" / f"{ref['cache']['generator']['key']}.pt"
    aug = root / "augment" / f"{ref['cache']['augment']['key']}.pt"
    gen.write_bytes(gen.read_bytes()[:-200])  # truncated
    blob = bytearray(aug.read_bytes())
    blob[-5] ^= 0xFF  # same size, wrong sha256
    aug.write_bytes(bytes(blob))
    code, _, err = grid_rows(capsys, tmp_path, tmp_path / "b.jsonl", "--policies", "random")
    assert code == 0, err
    (row,) = read_rows(tmp_path / "b.jsonl")[0]
    status = {k: v["status"] for k, v in row["cache"].items()}
    assert status == {"generator": "recomputed", "policy": "hit", "augment": "recomputed"}
    assert row["metrics"] == ref["metrics"]  # recomputed artifacts give the same numbers
    assert not leftovers(tmp_path)


def test_torn_results_line_is_ignored_reported_and_the_rest_kept(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    code, _, err = grid_rows(capsys, tmp_path, results, "--policies", "none,random")
    assert code == 0, err
    with open(results, "ab") as fh:
        fh.write(b'{"config_hash": "abc", "status": "ok", "metr')  # a writer killed mid-line
    code, out, err = grid_rows(capsys, tmp_path, results, "--policies", "none,random")
    assert code == 0 and "ignored 1 torn" in err and "2 already in results" in out and "0 run" in out
    code, out, err = grid_rows(capsys, tmp_path, results, "--policies", "none,random", "--seeds", "0,1")
    assert code == 0 and "2 run, 2 already in results" in out
    rows, torn = read_rows(results)
    assert torn == 1 and len(rows) == 4 and len({r["config_hash"] for r in rows}) == 4
    lines = results.read_text().splitlines()
    assert lines[2].startswith('{"config_hash": "abc"') and json.loads(lines[3])["status"] == "ok"
    code, out, err = cli(capsys, "leaderboard", str(results), "--out", str(tmp_path / "lb"))
    assert code == 0 and "ignored 1 torn" in err and (tmp_path / "lb" / "leaderboard.md").is_file()
    assert "missing.jsonl not found" in rejected(capsys, "leaderboard", str(tmp_path / "missing.jsonl"))


def test_results_file_that_is_not_json_lines(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    results.write_bytes(b"\x80\x04\x95 pickled\n[1, 2]\n\xff\xfe garbage\n")
    code, out, err = grid_rows(capsys, tmp_path, results, "--policies", "none")
    assert code == 0 and "ignored 3 torn" in err and "1 run" in out
    rows, torn = read_rows(results)
    assert torn == 3 and len(rows) == 1 and rows[0]["status"] == "ok"
