"""Networks side by side: parameters, training samples/s, inference ms per 1-s segment, against MNE's sLORETA.

Run: ``.venv/bin/python benchmarks/models.py [--repeats 10] [--train-steps 3]``

For each model at its default hyper-parameters on the default head model
(64 channels, 1014 regions): the parameter count; training samples per second
(forward, backward and Adam step on batches of 1-s segments, 500 samples,
with the model's published loss; the network alone, data come from
``synthesis_throughput.py``); and the inference time of one 1-s 64-channel
segment (batch 1, median of ``--repeats``; evaluation mode with each
BatchNorm folded into its convolution, as ``LearnedSolver`` runs a network).
The reference, timed in the same
run: MNE-Python's ``apply_inverse`` (sLORETA, fixed orientation, 21,008 cortical
and deep sources, lambda2 = 1/9) on the same segment. GPU columns appear when
CUDA is available. The last line is one JSON object. Goals for the default
model: <= 50 ms per segment on this CPU (20x faster than real time), < 5 ms on
a GPU.

A last row times the bundled default model the way ``brainforge localize``
runs it (``LearnedSolver``: windows of its training length overlapping by a
tenth of a window, each normalized, blended back), on the same segment.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch


def _median_ms(fn, repeats: int, sync=lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _train_rate(model, montage, leadfield, device, batch: int, steps: int) -> float:
    from brainforge.training.losses import PUBLISHED_LOSS, compute_loss

    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    eeg = torch.randn(batch, 500, montage.n_channels, device=device)
    target = torch.randn(batch, 500, model.n_regions, device=device)
    lf = torch.as_tensor(leadfield, dtype=torch.float32, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step():
        optimizer.zero_grad()
        loss = compute_loss(PUBLISHED_LOSS[model.name], model(eeg, montage), target, eeg, lf)
        loss.backward()
        optimizer.step()

    step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - start)


def _sloreta_ms(head, segment: np.ndarray, repeats: int) -> tuple[float, int]:
    import mne

    from brainforge.anatomy.bem import make_template_bem

    identity = mne.transforms.Transform("head", "mri")
    montage = mne.channels.make_dig_montage(
        dict(zip(head.ch_names, head.ch_pos_mm * 1e-3, strict=True)), coord_frame="head"
    )
    info = mne.create_info(head.ch_names, 500.0, "eeg")
    info.set_montage(montage, verbose="error")
    src = mne.setup_volume_source_space(pos=dict(rr=head.source_pos_mm * 1e-3, nn=head.source_nn), verbose="error")
    fwd = mne.make_forward_solution(
        info, identity, src, make_template_bem(), meg=False, eeg=True, mindist=0.0, verbose="error"
    )
    fwd = mne.convert_forward_solution(fwd, surf_ori=True, verbose="error")
    evoked = mne.EvokedArray(segment.T * 1e-5, info, verbose="error").set_eeg_reference(
        "average", projection=True, verbose="error"
    )
    cov = mne.make_ad_hoc_cov(info, verbose="error")
    inverse = mne.minimum_norm.make_inverse_operator(info, fwd, cov, fixed=True, verbose="error")
    ms = _median_ms(
        lambda: mne.minimum_norm.apply_inverse(evoked, inverse, 1.0 / 9.0, "sLORETA", verbose="error"), repeats
    )
    return ms, fwd["nsource"]


def _deployed_default_ms(head, segment: np.ndarray, repeats: int) -> dict:
    """Time the bundled default model as ``brainforge localize`` runs it, on one (samples, channels) segment."""
    from brainforge.inverse import LearnedSolver
    from brainforge.localization import default_model_dir

    solver = LearnedSolver(default_model_dir()).fit(head)
    eeg = np.ascontiguousarray(segment.T, dtype=np.float64)
    starts, length = solver.window_starts(eeg.shape[1])
    ms = _median_ms(lambda: solver.apply_regions(eeg), repeats)
    parameters = solver.config["model"]["n_parameters"]  # as trained (solver.model_ has BatchNorm folded in)
    return {"ms": ms, "parameters": parameters, "windows": len(starts), "window_samples": length}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--models", default="cnn_transformer,deepsif,convdip,gru")
    parser.add_argument("--no-mne", action="store_true", help="Skip the sLORETA reference (its forward takes ~30 s).")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from brainforge.anatomy import make_head_model
    from brainforge.models import build_model
    from brainforge.models.base import inference_copy
    from brainforge.topomap import Montage

    head = make_head_model("1010-64")
    montage = Montage.from_head_model(head)
    segment = np.random.default_rng(0).standard_normal((500, head.n_channels)).astype(np.float32)
    segment -= segment.mean(axis=1, keepdims=True)
    cuda = torch.cuda.is_available()
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = build_model(name, head.n_regions, montage)
        row = {"model": name, "parameters": model.n_parameters}
        row["train_samples_per_s_cpu"] = _train_rate(model, montage, head.region_leadfield, torch.device("cpu"),
                                                     args.batch, args.train_steps)  # fmt: skip
        x = torch.from_numpy(segment)[None]
        inference = inference_copy(model)  # as LearnedSolver deploys it (eval mode, BatchNorm in the convolutions)
        with torch.inference_mode():
            row["inference_ms_cpu"] = _median_ms(lambda m=inference, x=x: m(x, montage), args.repeats)
        if cuda:
            gpu = torch.device("cuda")
            row["train_samples_per_s_gpu"] = _train_rate(model, montage, head.region_leadfield, gpu, 32,
                                                         args.train_steps)  # fmt: skip
            inference = inference.to(gpu)
            xg = x.to(gpu)
            with torch.inference_mode():
                row["inference_ms_gpu"] = _median_ms(lambda m=inference, x=xg: m(x, montage), args.repeats,
                                                     torch.cuda.synchronize)  # fmt: skip
        rows.append(row)
        print(f"  {model.summary()}", flush=True)
    deployed = _deployed_default_ms(head, segment, args.repeats)
    reference = {}
    if not args.no_mne:
        ms, n_sources = _sloreta_ms(head, segment, args.repeats)
        reference = {"method": "mne.minimum_norm.apply_inverse sLORETA", "ms": ms, "n_sources": n_sources}
    device = f", CUDA: {torch.cuda.get_device_name()}" if cuda else ""
    print(f"\nOne 1-s segment, {head.n_channels} channels x 500 samples, {head.n_regions} regions; "
          f"{torch.get_num_threads()} CPU threads{device}")  # fmt: skip
    header = f"{'model':16s} {'parameters':>11s} {'train/s CPU':>12s} {'infer ms CPU':>13s} {'x real time':>12s}"
    header += f" {'vs sLORETA':>11s}" if reference else ""
    header += f" {'train/s GPU':>12s} {'infer ms GPU':>13s}" if cuda else ""
    print(header)
    for r in rows:
        line = (
            f"{r['model']:16s} {r['parameters']:11,d} {r['train_samples_per_s_cpu']:12.1f} "
            f"{r['inference_ms_cpu']:13.1f} {1000 / r['inference_ms_cpu']:11.0f}x"
        )
        if reference:
            r["speedup_vs_sloreta"] = reference["ms"] / r["inference_ms_cpu"]
            line += f" {r['speedup_vs_sloreta']:10.1f}x"
        if cuda:
            line += f" {r['train_samples_per_s_gpu']:12.1f} {r['inference_ms_gpu']:13.2f}"
        print(line)
    deployed_line = f"{'bundled default':16s} {deployed['parameters']:11,d} {'-':>12s} {deployed['ms']:13.1f} "
    deployed_line += f"{1000 / deployed['ms']:11.0f}x"
    if reference:
        deployed["speedup_vs_sloreta"] = reference["ms"] / deployed["ms"]
        deployed_line += f" {deployed['speedup_vs_sloreta']:10.1f}x"
    print(deployed_line + f"   ({deployed['windows']} windows of {deployed['window_samples']} samples)")
    if reference:
        print(f"{'MNE sLORETA':16s} {'-':>11s} {'-':>12s} {reference['ms']:13.1f} {1000 / reference['ms']:11.0f}x"
              f"   ({reference['n_sources']} sources)")  # fmt: skip
    print(json.dumps({"benchmark": "models", "rows": rows, "reference": reference, "bundled_default": deployed,
                      "cuda": cuda, "goals": {"cnn_transformer_cpu_ms": 50, "cnn_transformer_gpu_ms": 5}}))  # fmt: skip


if __name__ == "__main__":
    main()
