"""One training step of the bundled default model: the output smoothing's hand-written backward against autograd.

Run: ``.venv/bin/python benchmarks/training_step.py [--batch 64] [--steps 6]``

The bundled default (CNN-Transformer, ``output_smoothing_samples=2``: a
13-tap Gaussian along time over a (batch, 500, 1014) output) takes training
steps of 1-s, 64-channel segments: forward, the mean squared output as loss,
backward and an AdamW step. Two ways of differentiating the smoothing, and
the step without it, are timed in the same run, alternating, on the same
batch:

- ``autograd``: the reference, autograd through the shifted views (what
  ``smooth_time`` did before it had its own backward);
- ``hand-written``: ``smooth_time`` as shipped (``_SmoothTime``);
- ``none``: no low-pass at all (a different output), for the low-pass's share
  of a step.

The first two give the same gradients: the script stops if they differ by
more than 1e-5 relative (``tests/test_models.py::
test_smooth_time_gradient_is_that_of_the_convolution`` checks the backward
by ``gradcheck``). Prints the median seconds per step (the gradient copy for
that check is outside the timing), samples per second, the speed-up and the
low-pass's share of a step with each backward, with the CPU count, torch's
threads and the load average before and after; the last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch


def smooth_time_autograd(activity: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
    """The reference: the same padding and shifted sum as ``smooth_time``, differentiated by autograd."""
    from brainforge.models.cnn_transformer import _replicate_pad, _shifted_sum

    return _shifted_sum(_replicate_pad(activity, len(weights) // 2), weights, activity.shape[1])


def main() -> None:
    """Time both ways and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch",
        type=int,
        default=64,
        help="segments per step (the bundled model's CPU runs used 64; `brainforge train` defaults to 32)",
    )
    parser.add_argument("--steps", type=int, default=6, help="timed steps per way")
    args = parser.parse_args()

    from brainforge import set_log_level
    from brainforge.models import cnn_transformer, default_model_dir, load_model
    from brainforge.synthesis.normalize import normalize_eeg

    set_log_level("warning")
    torch.manual_seed(0)
    model, _ = load_model(default_model_dir())
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    eeg = normalize_eeg(torch.randn(args.batch, 500, model.montage.n_channels))
    shipped = cnn_transformer.smooth_time
    ways = {"autograd": smooth_time_autograd, "hand-written": shipped, "none": lambda activity, weights: activity}

    def step(way: str, update: bool = True) -> float:
        cnn_transformer.smooth_time = ways[way]
        try:
            torch.manual_seed(1)  # the same dropout masks for every way
            optimizer.zero_grad()
            start = time.perf_counter()
            model(eeg).pow(2).mean().backward()
            if update:
                optimizer.step()
            return time.perf_counter() - start
        finally:
            cnn_transformer.smooth_time = shipped

    def gradients(way: str) -> list[torch.Tensor]:
        step(way, update=False)  # the same weights for both: no update in between
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    pairs = zip(gradients("autograd"), gradients("hand-written"), strict=True)
    max_difference = max(float((a - b).abs().max() / (a.abs().max() + 1e-30)) for a, b in pairs)
    if max_difference > 1e-5:
        raise SystemExit(f"The two backward passes differ: largest relative gradient difference {max_difference:.1e}.")
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(args.steps):
        for way in ways:
            times[way].append(step(way))
    load_after = os.getloadavg()[0]
    medians = {way: float(np.median(t)) for way, t in times.items()}
    print(
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, batch {args.batch}, {args.steps} steps per "
        f"way (alternating); load average {load_before:.2f} before, {load_after:.2f} after"
    )
    print(f"{'low-pass backward':<20} {'s per step':>10} {'samples/s':>10}")
    for way, seconds in medians.items():
        print(f"{way:<20} {seconds:>10.2f} {args.batch / seconds:>10.1f}")
    ratio = medians["autograd"] / medians["hand-written"]
    share = {way: 1 - medians["none"] / medians[way] for way in ("autograd", "hand-written")}
    print(
        f"hand-written is {ratio:.2f}x as fast; the low-pass is {share['autograd']:.0%} of a step with autograd, "
        f"{share['hand-written']:.0%} hand-written; largest relative gradient difference {max_difference:.1e}"
    )
    result = {
        "batch": args.batch,
        "steps": args.steps,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [load_before, load_after],
        "seconds_per_step": medians,
        "speedup": ratio,
        "lowpass_share": share,
        "max_relative_gradient_difference": max_difference,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
