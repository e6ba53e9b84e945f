"""benchbox: does learned latent augmentation beat no augmentation and random dz?

Run a cell, a grid, and read the results in pandas (:mod:`benchbox.api`)::

    import benchbox
    r = benchbox.run(dataset="digits", generator="ae", policy="random", detector="ae", detector_epochs=3)
    r.metrics["image_auroc"], r.path
    g = benchbox.grid("benchmarks/default_grid.toml", results="grid-results/default.jsonl")
    df = benchbox.load_results(g.results)          # one row per cell, config flattened into columns
    board = benchbox.leaderboard(df, out="leaderboard")

timm-style plugin entry points::

    benchbox.list_plugins("detectors")
    det = benchbox.create_detector("transformer", epochs=5)
"""

from .api import GridRun, Result, load_results, run  # noqa: F401
from .registry import (  # noqa: F401
    create,
    create_dataset,
    create_detector,
    create_generator,
    create_policy,
    list_plugins,
)

__version__ = "0.1.0"


def __getattr__(name: str):  # benchbox.grid / benchbox.leaderboard: the submodules, callable as the API functions
    if name in ("grid", "leaderboard"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'benchbox' has no attribute {name!r}")
