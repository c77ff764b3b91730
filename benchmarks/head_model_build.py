"""Time the template head model: first build from an empty cache, then cached loads.

Run: ``.venv/bin/python benchmarks/head_model_build.py [--montage biosemi64]``

Prints a table of stage timings, the cached ``brainforge head info`` wall
time (a fresh process, imports included) and their ratio; the last line is
one JSON object with the figures. Uses a temporary cache folder, so the
first build really starts from nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--montage", default="biosemi64")
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="brainforge-bench-") as cache:
        os.environ["BRAINFORGE_CACHE"] = cache
        from brainforge.anatomy import get_electrodes, load_fsaverage5_cortex, make_head_model
        from brainforge.anatomy.bem import make_template_bem, make_template_bem_surfaces
        from brainforge.anatomy.cortex import make_parcellation
        from brainforge.anatomy.forward import compute_leadfield

        rows = []
        surfaces, t = _timed(make_template_bem_surfaces)
        rows.append(("BEM surfaces (inner skull ico-4, pushed outer skull, scalp)", t))
        _, t = _timed(make_template_bem, surfaces=surfaces)
        rows.append(("BEM solution (MNE, 3 layers)", t))
        cortex, t = _timed(load_fsaverage5_cortex)
        rows.append(("fsaverage5 cortex (nilearn)", t))
        _, t = _timed(make_parcellation, cortex, 1000)
        rows.append(("parcellation, 1000 regions", t))
        electrodes = get_electrodes(args.montage)
        _, t = _timed(compute_leadfield, cortex.pos, cortex.nn, electrodes, make_template_bem(surfaces=surfaces))
        rows.append((f"cortical leadfield alone ({len(electrodes)} ch x {len(cortex.pos)})", t))
        # The whole first build, from an empty cache.
        for sub in ("bem", "parcellation", "leadfield", "head"):
            subprocess.run(["rm", "-rf", os.path.join(cache, sub)], check=True)
        head, first = _timed(make_head_model, args.montage, n_jobs=args.n_jobs)
        rows.append((f"first build, whole head model ({head.n_channels} ch, {head.n_sources} sources)", first))
        _, cached_call = _timed(make_head_model, args.montage)
        rows.append(("cached make_head_model (in process)", cached_call))
        cli = [sys.executable, "-m", "brainforge.cli", "head", "info", "--montage", args.montage, "--json"]
        _, cli_time = _timed(subprocess.run, cli, check=True, capture_output=True)
        rows.append(("cached `brainforge head info --json` (new process)", cli_time))

    width = max(len(name) for name, _ in rows)
    print(f"{'stage'.ljust(width)}  seconds")
    print(f"{'-' * width}  -------")
    for name, seconds in rows:
        print(f"{name.ljust(width)}  {seconds:7.2f}")
    print(f"first build / cached CLI call: {first / cli_time:.0f}x")
    print(
        json.dumps(
            {
                "montage": args.montage,
                "n_channels": head.n_channels,
                "n_sources": head.n_sources,
                "n_regions": head.n_regions,
                "first_build_s": round(first, 2),
                "cached_cli_s": round(cli_time, 2),
                "cached_in_process_s": round(cached_call, 3),
                "speedup": round(first / cli_time, 1),
                "stages_s": {name: round(seconds, 2) for name, seconds in rows},
            }
        )
    )


if __name__ == "__main__":
    main()
