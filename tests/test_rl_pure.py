"""The RL algorithms are cleanrl-pure: nothing under ``benchbox_plugins/rl/`` imports benchbox.

Checked twice: statically (every import statement of every file in rl/, parsed with ast, names a
module outside ``benchbox`` and, inside ``benchbox_plugins``, only ``benchbox_plugins.rl``), and at
run time (importing every rl module in a fresh interpreter loads no ``benchbox`` module).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import benchbox_plugins.rl

RL = Path(benchbox_plugins.rl.__file__).parent
FILES = sorted(RL.glob("*.py"))


def imported_modules(path: Path) -> list[str]:
    """Absolute names of the modules an rl file imports (relative imports resolved inside rl/)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "benchbox_plugins.rl" if node.level == 1 else ("benchbox_plugins" if node.level == 2 else "")
            module = ".".join(p for p in (base, node.module or "") if p)
            names.append(module if node.level <= 2 else "." * node.level + (node.module or ""))
    return names


def test_the_check_sees_what_it_must_refuse(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import benchbox.errors\nfrom benchbox import registry\nfrom ..policies import x\n"
                   "def f():\n    from benchbox_plugins.common import y\n")
    assert imported_modules(bad) == ["benchbox.errors", "benchbox", "benchbox_plugins.policies",
                                     "benchbox_plugins.common"]


def test_every_rl_file_imports_nothing_from_benchbox():
    assert {"ppo.py", "ddpg.py", "dqn.py", "latent_env.py"} <= {p.name for p in FILES}
    offenders = []
    for path in FILES:
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top == "benchbox" or module.startswith(".") or (
                    top == "benchbox_plugins" and not (module + ".").startswith("benchbox_plugins.rl.")):
                offenders.append(f"{path.name}: {module}")
    assert offenders == []


def test_importing_rl_loads_no_benchbox_module():
    modules = [f"benchbox_plugins.rl.{p.stem}" for p in FILES if p.stem != "__init__"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m == 'benchbox' or m.startswith('benchbox.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
