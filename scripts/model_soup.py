"""Average the weights of fine-tuned relatives of one network (a "model soup", Wortsman et al. 2022).

Usage: python scripts/model_soup.py OUT_DIR MODEL_DIR MODEL_DIR [MODEL_DIR ...]

Every model must be the same network trained for the same input (same name,
hyper-parameters, regions, montage, head model, sampling rate, segment length
and crop; the output low-pass ``output_smoothing_samples`` may differ and is
taken from the first). Each floating-point tensor of the soup is the mean of
the models' tensors (BatchNorm running statistics included); integer tensors
(BatchNorm's batch counter) are the first model's. Averaging only makes sense
for models fine-tuned from one another, which share a basin of the loss.
The soup is written with ``save_model`` (``OUT_DIR/model.safetensors`` and
``config.json``, a new folder): its config keeps the first model's head model,
data and training records, which inference reads, and lists its ingredients
under ``soup_of``.
"""

from __future__ import annotations

import sys


def make_soup(out_dir: str, model_dirs: list[str]) -> None:
    """Write the weight average of ``model_dirs`` to ``out_dir``."""
    from pathlib import Path

    import torch

    from brainforge import BrainForgeError
    from brainforge.models import load_model, save_model
    from brainforge.models.io import training_input

    if Path(out_dir).exists():
        raise BrainForgeError(f"{out_dir} exists; give a new folder for the soup (the inputs stay as they are).")
    loaded = [load_model(d) for d in model_dirs]
    models, configs = [m for m, _ in loaded], [c for _, c in loaded]
    first = models[0]

    def signature(model, config: dict) -> tuple:
        params = {k: v for k, v in model.hyper_parameters().items() if k != "output_smoothing_samples"}
        return model.name, params, model.n_regions, tuple(model.montage.ch_names), training_input(config)

    for directory, model, config in zip(model_dirs[1:], models[1:], configs[1:], strict=True):
        if signature(model, config) != signature(first, configs[0]):
            raise BrainForgeError(
                f"{directory} is another network, or one trained for other input, than {model_dirs[0]}; "
                "a soup needs one network."
            )
    states = [m.state_dict() for m in models]
    soup = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            soup[key] = torch.stack([s[key].double() for s in states]).mean(dim=0).to(value.dtype)
        else:
            soup[key] = value
    first.load_state_dict(soup)
    kept = {"format", "format_version", "brainforge_version", "model", "n_regions", "montage", "metrics"}
    info = {k: v for k, v in configs[0].items() if k not in kept}
    save_model(first, out_dir, info={**info, "soup_of": list(model_dirs)})
    print(f"{out_dir}: mean of {len(models)} models ({', '.join(model_dirs)})")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__.splitlines()[2])
    from brainforge import BrainForgeError

    try:
        make_soup(sys.argv[1], sys.argv[2:])
    except BrainForgeError as err:
        raise SystemExit(f"error: {err}") from None
