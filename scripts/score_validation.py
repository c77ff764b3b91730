"""Score trained models on a training run's own validation set: peak-patch and peak-centre error (mm).

Usage: BRAINFORGE_CACHE=... python scripts/score_validation.py RUN_DIR MODEL_DIR [MODEL_DIR ...]

Rebuilds the run's validation set from its ``run.json`` (head, spike library,
forward bank, synthesis settings, seed, size) with the code ``brainforge train``
uses, so exactly as training drew it, and prints both metrics for each model:
for example a fine-tuned run's starting model, which its log never scored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(run_dir: str, model_dirs: list[str]) -> None:
    """Print the validation metrics of each model."""
    import torch

    from brainforge._config import config_from_dict
    from brainforge.cli import training_generator
    from brainforge.models import load_model
    from brainforge.synthesis import SynthesisConfig
    from brainforge.training import SyntheticDataModule, TrainingConfig
    from brainforge.training.metrics import has_sources, peak_centre_error_mm, peak_patch_error_mm

    run = json.loads(Path(run_dir, "run.json").read_text())
    generator = training_generator(run["cli"], config_from_dict(SynthesisConfig, run["data"]["synthesis"]))
    data = SyntheticDataModule(generator, TrainingConfig.from_dict(run["training"]))
    distance = torch.as_tensor(generator.head.region_distance_mm, dtype=torch.float32)
    models = {name: load_model(name)[0].eval() for name in model_dirs}
    errors: dict[str, tuple[list, list]] = {name: ([], []) for name in models}
    with torch.inference_mode():
        for batch in data.val_dataloader():
            keep = has_sources(batch["active"])
            sources = batch["sources"][keep]
            for name, model in models.items():
                estimate = model(batch["eeg"])[keep]
                errors[name][0].append(peak_patch_error_mm(estimate, sources, batch["active"][keep], distance))
                errors[name][1].append(peak_centre_error_mm(estimate, sources, batch["centre"][keep], distance))
    for name, (patch, centre) in errors.items():
        patch, centre = torch.cat(patch), torch.cat(centre)
        print(
            f"{name}: val_peak_patch_error_mm {patch.mean():.2f}, val_peak_centre_error_mm {centre.mean():.2f} "
            f"(means over {len(centre)} samples with sources)"
        )


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__.splitlines()[2])
    main(sys.argv[1], sys.argv[2:])
