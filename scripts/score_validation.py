"""Score trained models on a training run's own validation set: peak-patch and peak-centre error (mm).

Usage: BRAINFORGE_CACHE=... python scripts/score_validation.py RUN_DIR MODEL_DIR [MODEL_DIR ...]

Rebuilds the run's validation set from its ``run.json`` (synthesis settings,
forward bank, seed, size), exactly as training drew it, and prints both
metrics for each model: for example a fine-tuned run's starting model, which
its log never scored. Runs made with ``--head 1010-64`` (the template) only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(run_dir: str, model_dirs: list[str]) -> None:
    """Print the validation metrics of each model."""
    import torch

    from brainforge._config import config_from_dict
    from brainforge.anatomy import ForwardBankConfig, make_forward_bank, make_head_model
    from brainforge.models import load_model
    from brainforge.nmm import default_spike_library, read_spike_library
    from brainforge.synthesis import SampleGenerator, SynthesisConfig
    from brainforge.training import SyntheticDataModule, TrainingConfig
    from brainforge.training.metrics import has_sources, peak_centre_error_mm, peak_patch_error_mm

    run = json.loads(Path(run_dir, "run.json").read_text())
    if run["cli"]["head"] != "1010-64":
        raise SystemExit(f"{run_dir} was trained on --head {run['cli']['head']}; this script rebuilds 1010-64 only.")
    head = make_head_model("1010-64")
    bank_config = run["cli"].get("forward_bank")
    bank = make_forward_bank(head, config_from_dict(ForwardBankConfig, bank_config)) if bank_config else None
    synthesis = config_from_dict(SynthesisConfig, run["data"]["synthesis"])
    generator = SampleGenerator(head, read_spike_library(default_spike_library()), synthesis, forward_bank=bank)
    data = SyntheticDataModule(generator, TrainingConfig.from_dict(run["training"]))
    distance = torch.as_tensor(head.region_distance_mm, dtype=torch.float32)
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
