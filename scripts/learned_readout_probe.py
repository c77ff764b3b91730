"""Probe whether a network's output map holds more about the patch centre than its argmax: a learned read-out.

Usage:
    BRAINFORGE_CACHE=... python scripts/learned_readout_probe.py collect RUN_DIR MODEL_DIR SEED N OUT.pt
    BRAINFORGE_CACHE=... python scripts/learned_readout_probe.py fit RUN_DIR TRAIN.pt VAL.pt[,VAL.pt...] \
        [time] [static] [epochs=N]

``collect`` draws N samples of RUN_DIR's recipe (its ``run.json``: synthesis,
forward bank, 64 channels, as its validation set) with the validation seed
of SEED (so SEED 23 gives the fresh validation set of
``score_validation.py --val-seed 23``), applies the frozen MODEL_DIR and
keeps, for every sample with sources, |estimate| at the true peak time and
its means over +-5 and +-25 samples (float16), with the patch-centre masks.

``fit`` trains a read-out on TRAIN.pt and scores it on each VAL.pt: one small
MLP (64-64, GELU) shared by all regions maps each region's features to a
logit, and a softmax over regions is fitted to the patch centres by cross
entropy (Adam 1e-3, cosine, batch 256, 15 epochs by default). Features: the
map divided by its maximum, its means over the rings 0-10, 10-20, 20-30 and
30-45 mm around the region, and the region's value minus its first ring's;
``time`` adds the same for the +-5 and +-25-sample means, ``static`` the
region's position (mm / 80) and a deep-region flag. The read-out's pick is
scored like the argmax: the distance to the nearest patch centre (the
peak-centre error). A read-out that beats the argmax only by noise means the
map, not how it is read, limits the error. The plain argmax of each map is
printed first for reference.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HALF_WINDOWS = (0, 5, 25)
RING_BANDS_MM = ((0.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 45.0))


def _generator(run_dir: str):
    from brainforge._config import config_from_dict
    from brainforge.cli import training_generator
    from brainforge.synthesis import SynthesisConfig

    run = json.loads(Path(run_dir, "run.json").read_text())
    return training_generator(run["cli"], config_from_dict(SynthesisConfig, run["data"]["synthesis"]))


def collect(run_dir: str, model_dir: str, seed: int, n_samples: int, out: str) -> None:
    """Cache MODEL_DIR's |estimate| around each sample's true peak (see the module docstring)."""
    import torch

    from brainforge.models import load_model
    from brainforge.synthesis import SyntheticEEGDataset
    from brainforge.training.data import collate_validation, validation_seed
    from brainforge.training.metrics import has_sources, peak_times

    generator = _generator(run_dir)
    model = load_model(model_dir)[0].eval()
    dataset = SyntheticEEGDataset(generator, n_samples, validation_seed(seed), compact_targets=True)
    maps: dict[int, list] = {h: [] for h in HALF_WINDOWS}
    centres, items, start = [], [], time.time()

    def flush(items: list[dict]) -> None:
        batch = collate_validation(items)
        keep = has_sources(batch["active"])
        with torch.inference_mode():
            estimate = model(batch["eeg"])[keep].abs()
        peak, n_times = peak_times(batch["sources"][keep]), estimate.shape[1]
        for h in HALF_WINDOWS:
            spans = [(max(0, t - h), min(n_times, t + h + 1)) for t in peak.tolist()]
            rows = [estimate[i, a:b].mean(dim=0) for i, (a, b) in enumerate(spans)]
            maps[h].append(torch.stack(rows).half())
        centres.append(batch["centre"][keep])

    for k, item in enumerate(dataset):
        items.append(item)
        if len(items) == 64:
            flush(items)
            items = []
            if (k + 1) % 1024 == 0:
                print(f"{k + 1} samples, {time.time() - start:.0f} s", flush=True)
    if items:
        flush(items)
    torch.save({**{f"map{h}": torch.cat(maps[h]) for h in HALF_WINDOWS}, "centre": torch.cat(centres)}, out)
    print(f"done {time.time() - start:.0f} s")


def fit(run_dir: str, train_file: str, val_files: list[str], options: list[str]) -> None:
    """Train the read-out on ``train_file`` and print its peak-centre error on each of ``val_files``."""
    import torch

    torch.manual_seed(0)
    use_static = "static" in options
    windows = HALF_WINDOWS if "time" in options else (0,)
    epochs = int(next((a[7:] for a in options if a.startswith("epochs=")), 15))
    head = _generator(run_dir).head
    distance = torch.as_tensor(head.region_distance_mm, dtype=torch.float32)
    positions = torch.as_tensor(head.region_centres_mm, dtype=torch.float32)
    deep = torch.zeros(len(distance))
    deep[len(distance) - head.n_deep_regions :] = 1.0
    rings = []
    for low, high in RING_BANDS_MM:
        ring = ((distance > low) & (distance <= high)).float()
        rings.append(ring / ring.sum(dim=1, keepdim=True).clamp_min(1.0))
    rings = torch.stack(rings)  # (K, R, R): row r averages the regions in ring k around r
    static = torch.cat([positions / 80.0, deep[:, None]], dim=1)

    def features(data: dict, rows: torch.Tensor) -> torch.Tensor:
        parts = []
        scale = data["map0"][rows].float().amax(dim=1, keepdim=True).clamp_min(1e-12)
        for h in windows:
            m = data[f"map{h}"][rows].float() / scale
            ring_means = torch.einsum("krs,bs->brk", rings, m)  # (B, R, K)
            parts.extend([m[..., None], ring_means, (m - ring_means[..., 0])[..., None]])
        x = torch.cat(parts, dim=2)
        return torch.cat([x, static.expand(len(x), -1, -1)], dim=2) if use_static else x

    def centre_error(scores: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        return distance[scores.argmax(dim=1)].masked_fill(~centre, float("inf")).amin(dim=1)

    def describe(errors: torch.Tensor) -> str:
        on_centre = (errors == 0).float().mean()
        return f"mean {errors.mean():.2f} median {errors.median():.2f} on centre {on_centre:.3f}"

    train, vals = torch.load(train_file), {f: torch.load(f) for f in val_files}
    n_features = features(train, torch.arange(2)).shape[2]
    linear, gelu = torch.nn.Linear, torch.nn.GELU
    net = torch.nn.Sequential(linear(n_features, 64), gelu(), linear(64, 64), gelu(), linear(64, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    n = len(train["centre"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * (n // 256))
    for name, val in vals.items():
        for h in HALF_WINDOWS:
            errors = centre_error(val[f"map{h}"].float(), val["centre"])
            print(f"{Path(name).stem} argmax of map{h}: {describe(errors)}")
    for epoch in range(epochs):
        order, total = torch.randperm(n), 0.0
        for start in range(0, n - 255, 256):
            rows = order[start : start + 256]
            logits = net(features(train, rows))[..., 0]
            centre = train["centre"][rows]
            loss = (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~centre, -1e9), 1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        line = [f"epoch {epoch} loss {total / (n // 256):.3f}"]
        with torch.no_grad():
            for name, val in vals.items():
                rows = torch.arange(len(val["centre"])).split(256)
                errors = torch.cat([centre_error(net(features(val, r))[..., 0], val["centre"][r]) for r in rows])
                line.append(f"{Path(name).stem}: {describe(errors)}")
        print(" | ".join(line), flush=True)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(2)
    if len(sys.argv) >= 7 and sys.argv[1] == "collect":
        collect(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif len(sys.argv) >= 5 and sys.argv[1] == "fit":
        fit(sys.argv[2], sys.argv[3], sys.argv[4].split(","), sys.argv[5:])
    else:
        raise SystemExit("\n".join(__doc__.splitlines()[2:6]))
