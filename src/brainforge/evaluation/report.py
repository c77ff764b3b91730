"""The benchmark's Markdown report and plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._cache import atomic_path
from .benchmark_config import CONDITIONS, HEADLINE_METRICS, BenchmarkConfig


def _cell(row) -> str:
    return f"{row['mean']:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}]" if row["n"] else "-"


def markdown_report(summary, timing, config: BenchmarkConfig, test_sets: list[str], skipped: list[str]) -> str:
    """Write the Markdown report: overall metrics, one table per condition, timings."""
    level = round(config.confidence * 100)
    lines = [
        "# BrainForge benchmark",
        "",
        f"Test sets: {', '.join(test_sets)}. Scored on +-{config.half_window_ms:g} ms around each spike peak; "
        "`segment_*` metrics over the whole segment. "
        f"Cells: mean [{level}% bootstrap interval of the mean, {config.n_bootstrap} resamples]. "
        "Lower is better for errors (mm), dispersion, HD95 and nMSE; higher for AUC, Dice, precision, recall "
        "and correlation. Per-sample values: `samples.csv`; medians: `summary.csv`.",
        "",
        "## All samples",
        "",
    ]
    overall = summary[summary.condition == "all"]
    metrics = list(dict.fromkeys(overall.metric))
    solvers = list(dict.fromkeys(overall.solver))
    lines += ["| metric | " + " | ".join(solvers) + " |", "| --- |" + " --- |" * len(solvers)]
    for metric in metrics:
        cells = []
        for solver in solvers:
            row = overall[(overall.solver == solver) & (overall.metric == metric)]
            cells.append(_cell(row.iloc[0]) if len(row) else "-")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Failures (counted, never dropped from this count; ghost: peak > {config.ghost_mm:g} mm from every "
        "true patch region; non-finite: NaN or inf estimate, left out of the means above):",
        "",
    ]
    for solver in solvers:
        counts = {}
        for metric in ("failed", "failed_ghost", "failed_nonfinite"):
            row = overall[(overall.solver == solver) & (overall.metric == metric)]
            counts[metric] = (
                (round(row["mean"].iloc[0] * row["n"].iloc[0]), int(row["n"].iloc[0])) if len(row) else (0, 0)
            )
        failed, n = counts["failed"]
        lines.append(
            f"- {solver}: {failed} of {n} "
            f"({counts['failed_ghost'][0]} ghost, {counts['failed_nonfinite'][0]} non-finite)"
        )
    for condition in CONDITIONS:
        part = summary[(summary.condition == condition) & summary.metric.isin(HEADLINE_METRICS)]
        values = sorted(set(part.value), key=_sort_key)
        if len(values) < 2 and condition != "n_channels":
            continue
        lines += [
            "",
            f"## By {condition}",
            "",
            "| solver | " + condition + " | n | " + " | ".join(HEADLINE_METRICS) + " |",
        ]
        lines.append("| --- | --- | --- |" + " --- |" * len(HEADLINE_METRICS))
        for solver in solvers:
            for value in values:
                rows = part[(part.solver == solver) & (part.value == value)]
                if not len(rows):
                    continue
                cells = [
                    _cell(rows[rows.metric == m].iloc[0]) if (rows.metric == m).any() else "-" for m in HEADLINE_METRICS
                ]
                lines.append(f"| {solver} | {value} | {int(rows.n.max())} | " + " | ".join(cells) + " |")
    lines += ["", "## Time", "", "| solver | channels | fit (s) | ms per segment (mean) | median | segments |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for _, row in timing.iterrows():
        lines.append(
            f"| {row.solver} | {row.n_channels} | {row.fit_s:.2f} | {row.ms_per_segment_mean:.2f} | "
            f"{row.ms_per_segment_median:.2f} | {row.segments} |"
        )
    if skipped:
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in skipped]
    return "\n".join(lines) + "\n"


def _sort_key(value):
    return (0, float(value), "") if isinstance(value, int | float | np.number) else (1, 0.0, str(value))


def plot_against(
    summary, condition: str, path: Path, metrics: Sequence[str] = ("loc_error_mm", "peak_centre_error_mm")
):
    """PNG of each metric's mean (with its interval) against ``condition``, one line per solver."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    part = summary[summary.condition == condition]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        for solver, rows in part[part.metric == metric].groupby("solver", sort=True):
            rows = rows.assign(x=rows.value.astype(float)).sort_values("x")
            errors = np.vstack([rows["mean"] - rows.ci_low, rows.ci_high - rows["mean"]])
            axis.errorbar(rows.x, rows["mean"], yerr=np.clip(errors, 0, None), marker="o", capsize=3, label=solver)
        axis.set_xlabel({"snr_db": "sensor SNR (dB)", "n_channels": "channels"}.get(condition, condition))
        axis.set_ylabel(metric.replace("_mm", " (mm)"))
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
