"""A notebook-style study with the Python API: does latent augmentation beat no augmentation?

Six cells on the bundled digits data (policies none / random / mixup x seeds 0, 1; a small
autoencoder generator and detector), their results as a DataFrame, Δ image AUROC of each policy vs
`none` paired by seed, and a bar plot. Run it as a script (each `# %%` block is a notebook cell):

    python examples/study.py [OUT_DIR]

Tests run it (tests/test_examples.py) with tiny budgets; raise `EPOCHS` for a real study.
"""

# %% setup
import sys
import tempfile
from pathlib import Path

import benchbox

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="study-"))
EPOCHS = 3

# %% run the grid: 1 dataset x 1 generator x 3 policies x 1 detector x 2 seeds = 6 cells
study = benchbox.grid(
    {"datasets": ["digits"], "generators": ["ae"], "policies": ["none", "random", "mixup"], "detectors": ["ae"],
     "seeds": [0, 1], "device": "cpu", "threads": 1, "augment": {"ratio": 1.0},
     "options": {"dataset": {"train_limit": 200}, "generator": {"epochs": EPOCHS, "latent_dim": 8},
                 "detector": {"epochs": EPOCHS}}},
    results=OUT / "results.jsonl", write_runs=False, cache=OUT / "cache")
print(f"{study.ok} cells ok, {study.failed} failed, {study.skipped} already there ({study.seconds:.1f} s)")

# %% the results as a DataFrame: one row per cell, config flattened into columns
df = benchbox.load_results(study.results, status="ok")
print(df[["policy", "seed", "image_auroc", "generator.epochs", "time.total"]].to_string(index=False))

# %% Δ image AUROC vs none, paired by seed
wide = df.pivot_table(index="seed", columns="policy", values="image_auroc")
delta = wide.drop(columns="none").sub(wide["none"], axis=0)
table = delta.agg(["mean", "min", "max"]).T.rename_axis("policy")
print("\nΔ image AUROC vs none (paired by seed)")
print(table.to_string(float_format=lambda v: f"{v:+.4f}"))

# %% plot
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(4, 3))
ax.bar(table.index, table["mean"], yerr=[table["mean"] - table["min"], table["max"] - table["mean"]], capsize=4)
ax.axhline(0, color="k", lw=0.8)
ax.set_ylabel("Δ image AUROC vs none")
ax.set_title("digits / ae / ae, 2 seeds")
fig.tight_layout()
fig.savefig(OUT / "delta_auroc.png", dpi=120)
print(f"\nwrote {OUT / 'delta_auroc.png'}")

# %% the leaderboard of the same rows (mean ± CI, paired test, verdict)
board = benchbox.leaderboard(df)
print(board[["policy", "image_auroc_mean", "delta", "n_pairs", "verdict"]].to_string(index=False))
