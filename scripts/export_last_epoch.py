"""Export a training run's last epoch as its model, in place of the monitor's best.

Usage: python scripts/export_last_epoch.py RUN_DIR OUT_DIR

``brainforge train`` exports the epoch with the best monitored metric; when a
run followed one metric but another one decides (for example a run that
monitored ``val_peak_patch_error_mm`` and is judged on
``val_peak_centre_error_mm``), this writes the weights of the last completed
epoch (``checkpoints/last.ckpt``) to OUT_DIR as ``model.safetensors`` +
``config.json``, with that epoch's validation metrics from the run's log.
OUT_DIR may be RUN_DIR itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(run_dir: str, out_dir: str) -> None:
    """Write the last epoch's model and print its validation metrics."""
    import pandas as pd

    from brainforge.models import load_model, save_model
    from brainforge.training import load_training_state

    run = Path(run_dir)
    state = load_training_state(run / "checkpoints" / "last.ckpt")
    model, _ = load_model(run)  # the architecture, from the run's exported config
    weights = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(weights)
    epoch = int(state["epoch"])
    logs = pd.concat(pd.read_csv(path) for path in sorted(run.glob("logs/version_*/metrics.csv")))
    rows = logs[(logs.epoch == epoch) & logs.val_loss.notna()]
    if rows.empty:
        raise SystemExit(f"No validation row for epoch {epoch} in {run}/logs.")
    metrics = {k: float(v) for k, v in rows.iloc[-1].items() if k.startswith("val_") and pd.notna(v)}
    metrics.update(epoch=epoch, global_step=int(state["global_step"]), exported="last epoch")
    # run.json is the run's export info plus the two keys train() adds to it; save_model writes the rest.
    run_info = json.loads((run / "run.json").read_text())
    info = {k: v for k, v in run_info.items() if k not in ("model", "model_params")}
    save_model(model, out_dir, {**info, "metrics": metrics})
    print(json.dumps(metrics))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.splitlines()[2])
    main(sys.argv[1], sys.argv[2])
