"""Run ``brainforge train`` on the device until a wall-clock deadline.

``python train_gpu.py START_EPOCH_S BUDGET_S OUT_DIR HEAD_NPZ``: trains until
``START + BUDGET`` (``WORKERS`` and ``ACCEL`` override 14 workers on the GPU;
``EXTRA`` appends options, for example ``EXTRA="--target-centre-half-mm 12
--monitor centre"``).
"""

import os
import sys
import time

import torch

from brainforge.cli import main


def run(start: float, budget: float, out: str, head: str) -> None:
    """Build the ``brainforge train`` command line for the time left and run it."""
    torch.set_float32_matmul_precision("high")
    left = int(start + budget - time.time())
    max_time = f"00:00:{left // 60:02d}:{left % 60:02d}"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    print("max_time", max_time, "cuda", torch.cuda.is_available(), device, flush=True)
    sys.argv = [
        "brainforge", "train", "--out", out, "--head", head, "--forward-bank",
        "--montage-subsets", "16,64", "--sources", "1,3", "--snr", "5,20", "--deep-share", "0.3",
        "--background-share", "0.1", "--seed", "13", "--loss", "relative_mse_cosine", "--lr", "0.001",
        "--param", "samples_per_token=10", "--samples-per-epoch", "65536", "--val-samples", "1024",
        "--batch-size", "256", "--patience", "9", "--workers", os.environ.get("WORKERS", "14"), "--no-progress",
        "--accelerator", os.environ.get("ACCEL", "gpu"), "--devices", "1", "--max-time", max_time,
        *os.environ.get("EXTRA", "").split(),
    ]  # fmt: skip
    print(" ".join(sys.argv), flush=True)
    began = time.time()
    try:
        main()
    finally:
        print(f"train wall {time.time() - began:.1f} s", flush=True)


if __name__ == "__main__":
    run(float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4])
