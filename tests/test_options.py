"""benchbox.options (one walk of a Config: flags, docs, coercion, per-field checks) and the CellSpec shape."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import pytest

from benchbox import cli, options, registry
from benchbox.config import DEFAULT_PLUGINS, AugmentConfig, CellSpec, PluginChoice, RunOptions, config_hash
from benchbox.errors import ConfigError

from conftest import make_distribution


@dataclass
class Inner:
    width: int = 8
    """Width of the block."""


@dataclass
class Sample:
    epochs: int = field(default=3, metadata={"check": options.at_least(1)})
    """Training epochs."""
    ratio: Annotated[float, options.between(0, 1)] = 0.5
    limit: Optional[int] = field(default=None, metadata={"check": (options.at_least(0),)})
    sub: Inner = field(default_factory=Inner)


def test_walk_flattens_nested_fields_with_flags_docs_defaults_and_checks():
    opts = {o.name: o for o in options.walk(Sample, "--detector.")}
    assert list(opts) == ["epochs", "ratio", "limit", "sub.width"]
    assert opts["sub.width"].flag == "--detector.sub.width" and opts["sub.width"].doc == "Width of the block."
    assert opts["epochs"].doc == "Training epochs." and opts["epochs"].default == 3
    assert opts["ratio"].annotation is float and opts["ratio"].type_name == "float"  # Annotated stripped
    assert opts["limit"].type_name == "int | None" and opts["limit"].default_text == "None"
    assert [len(opts[n].checks) for n in opts] == [1, 1, 1, 0]
    assert opts["sub.width"].value_in(Sample(sub=Inner(width=5))) == 5


def test_build_config_coerces_and_runs_the_checks_in_one_pass():
    cfg = options.build_config(Sample, {"epochs": 2, "ratio": 1, "sub": {"width": 4}}, "detector 'x'")
    assert cfg == Sample(epochs=2, ratio=1.0, sub=Inner(width=4)) and isinstance(cfg.ratio, float)
    cases = [
        ({"epochs": 0}, "detector 'x' option 'epochs' expects an integer >= 1, got 0"),
        ({"ratio": 1.5}, "detector 'x' option 'ratio' expects a number in [0, 1], got 1.5"),
        ({"limit": -1}, "detector 'x' option 'limit' expects an integer >= 0, got -1"),
        ({"epochs": 2.0}, "detector 'x' option 'epochs' expects an integer, got 2.0"),  # type first, then bounds
        ({"sub": {"widht": 2}}, "detector 'x' option 'sub' has no option 'widht' (did you mean 'width'?)"),
    ]
    for values, message in cases:
        with pytest.raises(ConfigError) as exc:
            options.build_config(Sample, values, "detector 'x'")
        assert str(exc.value) == message
    assert options.build_config(Sample, {"limit": None}, "x").limit is None  # None (unset) is never checked


def test_check_config_names_the_flag():
    options.check_config(Sample(), "--detector.")
    with pytest.raises(ConfigError, match=r"^--detector\.ratio expects a number in \[0, 1\], got -0\.5$"):
        options.check_config(Sample(ratio=-0.5), "--detector.")
    missing = options.Check(lambda v: Path(v).exists(), "an existing file")
    with pytest.raises(ConfigError, match="--root expects an existing file, got '/nonexistent/x'"):
        missing("/nonexistent/x", "--root")


CHECKED_DETECTOR = """
    from dataclasses import dataclass, field
    from typing import Annotated
    import torch
    from benchbox.interfaces import Detector, Scores
    from benchbox.options import at_least, between

    class Checked(Detector):
        '''A detector whose options carry bounds.'''
        @dataclass
        class Config:
            epochs: int = field(default=2, metadata={"check": at_least(1)})
            '''Training epochs.'''
            quantile: Annotated[float, between(0, 1)] = 0.9
        def fit(self, images, ctx, pseudo_anomalies=None):
            pass
        def score(self, images):
            return Scores(image=torch.zeros(len(images)))
"""


def test_bounds_are_enforced_on_the_command_line_and_in_grids(extra_site, capsys, tmp_path):
    make_distribution(extra_site, "bbx-checked", {"benchbox.detectors": {"bbx-chk": "bbx_test_chk:Checked"}},
                      {"bbx_test_chk": CHECKED_DETECTOR})
    base = ["run", "--dataset", "digits", "--policy", "none", "--detector", "bbx-chk", "--out", str(tmp_path / "runs")]
    for argv, expected in [(["--detector.epochs", "0"], "error: --detector.epochs expects an integer >= 1, got 0"),
                           (["--detector.quantile", "2"], "error: --detector.quantile expects a number in [0, 1], got 2.0")]:
        assert cli.main(base + argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == expected and not (tmp_path / "runs").exists()
    from benchbox.gridspec import GridSpec

    grid = GridSpec(datasets=["digits"], generators=["ae"], policies=["none"], detectors=[{"name": "bbx-chk", "epochs": 0}])
    with pytest.raises(ConfigError, match=r"^detector 'bbx-chk' option 'epochs' expects an integer >= 1, got 0$"):
        grid.cells()
    opts = {o.flag: o for o in registry.config_options(registry.load("detectors", "bbx-chk"), "detector")}
    assert opts["--detector.quantile"].type_name == "float" and opts["--detector.epochs"].doc == "Training epochs."


def test_one_default_cell_and_the_four_kinds_in_one_place():
    assert list(registry.KINDS) == ["dataset", "generator", "policy", "detector"]
    assert registry.GROUPS == ("datasets", "generators", "policies", "detectors")
    assert DEFAULT_PLUGINS == {"dataset": "mnist", "generator": "ae", "policy": "ppo", "detector": "transformer"}
    assert cli.split_selectors([])[0] == DEFAULT_PLUGINS
    assert CellSpec.of().names == DEFAULT_PLUGINS == cli.parse_run([]).names
    assert CellSpec.of().hash() == cli.parse_run([]).hash()


def test_cellspec_is_keyed_by_kind_and_hashes_like_before():
    @dataclass
    class Cfg:
        size: int = 1

    spec = CellSpec({kind: PluginChoice(f"p-{kind}", Cfg(size=i)) for i, kind in enumerate(reversed(registry.KINDS))},
                    augment=AugmentConfig(ratio=0.5), run=RunOptions(seed=3, device="cpu"))
    assert list(spec.plugins) == list(registry.KINDS)  # data-flow order whatever the order given
    assert spec["policy"].name == "p-policy" and spec["policy"].config.size == 1
    # the resolved config (and so the results-row key) has the shape it had with four name/config pairs
    legacy = {"dataset": {"name": "p-dataset", "size": 3}, "generator": {"name": "p-generator", "size": 2},
              "policy": {"name": "p-policy", "size": 1}, "detector": {"name": "p-detector", "size": 0},
              "augment": {"ratio": 0.5, "batch_size": 256}, "seed": 3, "device": "cpu"}
    assert spec.resolved() == legacy and spec.hash() == config_hash(legacy)
    with pytest.raises(ConfigError, match="exactly one plugin of each kind"):
        CellSpec({"dataset": PluginChoice("x", Cfg())})
    with pytest.raises(ConfigError, match="unknown plugin kind"):
        CellSpec.of(datasets="digits")
    made = CellSpec.of(dataset=("digits", {"normal_class": 2}), policy="none")
    assert made["dataset"].config.normal_class == 2 and made["generator"].name == "ae"
    assert dataclasses.asdict(made["policy"].config) == {}


def test_core_imports_no_plugin_code():
    """The core reaches plugins only through entry points: no module under benchbox/ names benchbox_plugins."""
    core = Path(__file__).parents[1] / "benchbox"
    offenders = [str(p.relative_to(core.parent)) for p in sorted(core.rglob("*.py")) if "benchbox_plugins" in p.read_text()]
    assert offenders == []
