"""Discovery through real entry points, lazy listing, unknown names, broken plugins isolated."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchbox import registry
from benchbox.errors import PluginLoadError, UnknownPluginError
from benchbox.interfaces import GROUPS

from conftest import make_distribution

FIRST_PARTY = {
    "datasets": {"mnist", "digits"},
    "generators": {"ae"},
    "policies": {"none", "random"},
    "detectors": {"transformer"},
}

WORKING_DETECTOR = """
    from dataclasses import dataclass
    import torch
    from benchbox.interfaces import Detector, Scores

    class MeanDistance(Detector):
        '''Distance to the mean training image (third-party example).'''
        @dataclass
        class Config:
            power: float = 2.0
        def fit(self, images, ctx, pseudo_anomalies=None):
            self.mean = images.mean(0)
        def score(self, images):
            return Scores(image=(images - self.mean).abs().pow(self.config.power).flatten(1).mean(1))
"""


def test_first_party_plugins_come_from_entry_points():
    found = {g: {p.name for p in registry.list_plugins(g)} for g in GROUPS}
    for group, names in FIRST_PARTY.items():
        assert names <= found[group]
    for p in registry.list_plugins():
        if p.name in FIRST_PARTY.get(p.group, ()):
            assert p.distribution == "benchbox"
            assert p.description, f"{p.name} has no description"
            assert not p.broken


def test_listing_does_not_import_plugin_code():
    code = (
        "import sys, benchbox.registry as r; ps = r.list_plugins(); assert len(ps) >= 6; "
        "heavy = [m for m in ('torch', 'benchbox_plugins.detectors.transformer') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pattern_filter_like_timm():
    assert [p.name for p in registry.list_plugins("detectors", "trans*")] == ["transformer"]
    assert registry.list_plugins("generators", "zzz*") == []


def test_unknown_name_names_group_and_closest():
    with pytest.raises(UnknownPluginError) as exc:
        registry.create("detectors", "transfomer")
    msg = str(exc.value)
    assert "benchbox.detectors" in msg and "transformer" in msg and "\n" not in msg


def test_unknown_group_is_clear():
    with pytest.raises(UnknownPluginError, match="datasets, generators, policies, detectors"):
        registry.list_plugins("widgets")


def test_singular_group_names_accepted():
    assert registry.load("detector", "transformer") is registry.load("benchbox.detectors", "transformer")


def test_create_with_options_and_bad_options():
    det = registry.create("detectors", "transformer", epochs=3, **{"mask-ratio": 0.5})
    assert det.config.epochs == 3 and det.config.mask_ratio == 0.5
    from benchbox.errors import ConfigError

    with pytest.raises(ConfigError, match="no option 'epoch'.*epochs"):
        registry.create("detectors", "transformer", epoch=3)
    with pytest.raises(ConfigError, match="expects an integer"):
        registry.create("detectors", "transformer", epochs="many")


def test_third_party_plugin_discovered_and_broken_ones_isolated(extra_site):
    make_distribution(
        extra_site,
        "bbx-test-plugins",
        {
            "benchbox.detectors": {
                "bbx-mean": "bbx_test_good:MeanDistance",
                "bbx-raises": "bbx_test_raises:Thing",
                "bbx-missing-attr": "bbx_test_good:NoSuchClass",
                "bbx-missing-module": "bbx_test_nowhere:Thing",
            }
        },
        {
            "bbx_test_good": WORKING_DETECTOR,
            "bbx_test_raises": "class Thing:\n    '''Looks fine statically.'''\nraise ImportError('needs libfoo')\n",
        },
    )
    listed = {p.name: p for p in registry.list_plugins("detectors")}
    assert listed["bbx-mean"].distribution == "bbx-test-plugins"
    assert listed["bbx-mean"].description.startswith("Distance to the mean")
    assert listed["bbx-missing-module"].broken and listed["bbx-missing-attr"].broken
    assert not listed["bbx-raises"].broken  # static listing imports nothing
    checked = {p.name: p for p in registry.list_plugins("detectors", check=True)}
    assert checked["bbx-raises"].broken and "needs libfoo" in checked["bbx-raises"].error
    assert not checked["transformer"].broken and not checked["bbx-mean"].broken

    with pytest.raises(PluginLoadError, match="bbx-raises.*broken.*ImportError: needs libfoo"):
        registry.create("detectors", "bbx-raises")
    det = registry.create("detectors", "bbx-mean", power=1.0)  # others keep working
    assert det.config.power == 1.0
    assert registry.create("detectors", "transformer") is not None


def test_cli_list_shows_broken_plugin(extra_site):
    make_distribution(extra_site, "bbx-broken", {"benchbox.policies": {"bbx-bad": "bbx_test_bad:P"}},
                      {"bbx_test_bad": "class P:\n    pass\nraise RuntimeError('boom at import')\n"})
    out = subprocess.run([sys.executable, "-m", "benchbox.cli", "list", "policies", "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 1  # --check reports broken plugins through the exit code
    assert "bbx-bad" in out.stdout and "broken" in out.stdout and "boom at import" in out.stdout
    assert "random" in out.stdout and "Traceback" not in out.stdout + out.stderr
    plain = subprocess.run([sys.executable, "-m", "benchbox.cli", "list"], capture_output=True, text=True)
    assert plain.returncode == 0 and "transformer" in plain.stdout


DOCUMENTED = '''
    from dataclasses import dataclass, field
    from typing import Literal, Optional
    import torch
    from benchbox.interfaces import Detector, Scores

    @dataclass
    class BaseOptions:
        epochs: int = 3
        """Training epochs.

        A second paragraph that the listing leaves out."""
        lr: float = 1e-3

    @dataclass
    class Sub:
        width: int = 8
        """Width of the sub-block."""

    class Documented(Detector):
        """A detector with documented options."""
        @dataclass
        class Config(BaseOptions):
            mode: Literal["fast", "slow"] = "fast"
            """How hard to try."""
            limit: Optional[int] = None
            """Cap (None = none)."""
            verbose: bool = False
            """Talk more."""
            layers: tuple[str, ...] = ("a", "b")
            sub: Sub = field(default_factory=Sub)
        def fit(self, images, ctx, pseudo_anomalies=None):
            pass
        def score(self, images):
            return Scores(image=torch.zeros(len(images)))
'''


def test_config_options_types_defaults_and_field_docs(extra_site, capsys):
    make_distribution(extra_site, "bbx-documented", {"benchbox.detectors": {"bbx-doc": "bbx_test_doc:Documented"}},
                      {"bbx_test_doc": DOCUMENTED})
    opts = {o.flag: o for o in registry.config_options(registry.load("detectors", "bbx-doc"), "detector")}
    assert list(opts) == ["--detector.epochs", "--detector.lr", "--detector.mode", "--detector.limit",
                          "--detector.verbose", "--detector.layers", "--detector.sub.width"]
    assert (opts["--detector.epochs"].type_name, opts["--detector.epochs"].default_text) == ("int", "3")
    assert opts["--detector.epochs"].default == 3 and opts["--detector.epochs"].annotation is int
    assert opts["--detector.epochs"].doc == "Training epochs."  # inherited, first paragraph only
    assert opts["--detector.lr"].doc == "" and opts["--detector.lr"].default_text == "0.001"
    assert (opts["--detector.mode"].type_name, opts["--detector.mode"].default_text) == ("{fast,slow}", "'fast'")
    assert opts["--detector.limit"].type_name == "int | None" and opts["--detector.limit"].doc == "Cap (None = none)."
    assert opts["--detector.verbose"].negation == "--detector.no-verbose" and opts["--detector.lr"].negation == ""
    assert opts["--detector.layers"].type_name == "tuple[str, ...]" and opts["--detector.layers"].default_text == "('a', 'b')"
    assert opts["--detector.sub.width"].doc == "Width of the sub-block." and opts["--detector.sub.width"].name == "sub.width"

    from benchbox import cli

    assert cli.main(["list", "detectors", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "bbx-doc (detector, bbx-documented 0.1)" in out and "A detector with documented options." in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("--detector.verbose"))
    assert line.split()[1:3] == ["bool", "False"] and "Talk more. (off: --detector.no-verbose)" in line
