"""Plot a training run's validation curve (peak-patch and peak-centre error, loss per epoch) from its CSV log.

Usage: python scripts/plot_training_log.py RUN_DIR OUT.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd


def main(run_dir: str, out: str) -> None:
    """Read every ``logs/version_*/metrics.csv`` of the run and plot validation metrics against samples seen."""
    logs = sorted(Path(run_dir).glob("logs/version_*/metrics.csv"))
    if not logs:
        raise SystemExit(f"No logs/version_*/metrics.csv under {run_dir}.")
    table = pd.concat([pd.read_csv(p) for p in logs], ignore_index=True)
    val = table.dropna(subset=["val_peak_patch_error_mm"]).drop_duplicates("epoch", keep="last").sort_values("epoch")
    train = table.dropna(subset=["train_loss"]).groupby("epoch").train_loss.mean()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(val.epoch + 1, val.val_peak_patch_error_mm, marker="o", ms=3, label="peak-patch error")
    if "val_peak_centre_error_mm" in val:  # logged since 2026-12-05
        left.plot(val.epoch + 1, val.val_peak_centre_error_mm, marker="s", ms=3, label="peak-centre error")
        left.legend()
    left.set_xlabel("epoch")
    left.set_ylabel("validation error (mm)")
    left.grid(alpha=0.3)
    right.plot(train.index + 1, train.values, label="training (epoch mean)")
    right.plot(val.epoch + 1, val.val_loss, label="validation")
    right.set_xlabel("epoch")
    right.set_ylabel("loss")
    right.legend()
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    best = val.loc[val.val_peak_patch_error_mm.idxmin()]
    epoch = int(best.epoch) + 1
    print(f"{len(val)} epochs; best validation peak-patch error {best.val_peak_patch_error_mm:.2f} mm at epoch {epoch}")
    if "val_peak_centre_error_mm" in val:
        centre = val.loc[val.val_peak_centre_error_mm.idxmin()]
        value, at = centre.val_peak_centre_error_mm, int(centre.epoch) + 1
        print(f"best validation peak-centre error {value:.2f} mm at epoch {at}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
