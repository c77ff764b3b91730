"""Run ``brainforge train`` on a lent GPU machine until a wall-clock deadline.

``python scripts/device/train.py START_EPOCH_S BUDGET_S OUT_DIR HEAD_NPZ ARGS_FILE``: the
options in ARGS_FILE (:func:`read_options`), then ``--head HEAD_NPZ --out OUT_DIR``, one
GPU, ``WORKERS`` data workers (default 14) and a ``--max-time`` that ends the run at
``START + BUDGET``. ``ACCEL=cpu`` runs it on the CPU (the dry run of ``prepare.sh``).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

#: Options this kit sets itself; an arguments file that holds one is refused.
RESERVED = ("--out", "-o", "--accelerator", "--devices", "--workers", "--max-time", "--progress", "--no-progress")


def read_options(args_file: str | Path) -> list[str]:
    """Return the ``brainforge train`` options of an arguments file (shell words; ``#`` starts a comment)."""
    path = Path(args_file)
    if not path.is_file():
        raise SystemExit(f"no arguments file {path} (set aside by set_aside.sh?)")
    options = shlex.split(path.read_text(), comments=True)
    reserved = sorted({o.partition("=")[0] for o in options} & set(RESERVED))
    if reserved:
        raise SystemExit(f"{path}: drop {', '.join(reserved)}; the kit sets them")
    return options


def head_name(options: list[str]) -> str:
    """Return the ``--head`` the options ask for (the last one given), or the CLI's default, ``1010-64``."""
    name = "1010-64"
    for i, option in enumerate(options):
        if option == "--head" and i + 1 < len(options):
            name = options[i + 1]
        elif option.startswith("--head="):
            name = option.partition("=")[2]
    return name


def training_argv(start: float, budget: float, out: str, head: str, args_file: str) -> list[str]:
    """Return the ``brainforge train`` command line for the time left (the head file's ``--head`` last, so it wins)."""
    options = read_options(args_file)
    left = int(start + budget - time.time())
    if left < 60:
        raise SystemExit(f"only {left} s of the budget left; nothing started")
    accelerator = os.environ.get("ACCEL", "gpu")
    return [
        "brainforge", "train", *options, "--head", head, "--out", out,
        "--accelerator", accelerator, "--devices", "1", "--workers", os.environ.get("WORKERS", "14"),
        "--max-time", f"00:{left // 3600:02d}:{left % 3600 // 60:02d}:{left % 60:02d}", "--no-progress",
    ]  # fmt: skip


def run(start: float, budget: float, out: str, head: str, args_file: str) -> None:
    """Build the command line and run it in this process."""
    import torch

    from brainforge.cli import main

    torch.set_float32_matmul_precision("high")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    sys.argv = training_argv(start, budget, out, head, args_file)
    print(device, "|", " ".join(sys.argv), flush=True)
    began = time.time()
    try:
        main()
    finally:
        print(f"train wall {time.time() - began:.1f} s", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 6:
        raise SystemExit("usage: python scripts/device/train.py START_EPOCH_S BUDGET_S OUT_DIR HEAD_NPZ ARGS_FILE")
    run(float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
