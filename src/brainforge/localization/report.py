"""The HTML report of a localization (``mne.Report``): brains at the peaks, time courses, topomap, caveats."""

from __future__ import annotations

import html

import numpy as np

#: Surface views in the brain figure: (hemisphere, view).
BRAIN_VIEWS = (("left", "lateral"), ("left", "medial"), ("right", "lateral"), ("right", "medial"))


def _figure(**kwargs):
    """Return a matplotlib Figure outside pyplot: no backend is chosen or changed (a notebook's stays inline)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def brain_figure(result, time_index: int, region_values=None, title: str | None = None, threshold: float = 0.25):
    """Cortical activity at one time (or ``region_values``) on nilearn's fsaverage5 pial surface, four views."""
    from nilearn import plotting

    from ..anatomy import load_fsaverage5_cortex

    head = result.head
    cortex = load_fsaverage5_cortex()
    cortical = head.source_region[: head.n_cortical_sources]
    if region_values is None:
        values = np.abs(result.region_data[cortical, time_index])
        top = values.max() if values.max() > 0 else 1.0
    else:
        values, top = np.asarray(region_values, float)[cortical], 1.0
    n_left = cortex.n_left
    meshes = {
        "left": (cortex.pos[:n_left], cortex.tris[(cortex.tris < n_left).all(axis=1)]),
        "right": (cortex.pos[n_left:], cortex.tris[(cortex.tris >= n_left).all(axis=1)] - n_left),
    }
    maps = {"left": values[:n_left] / top, "right": values[n_left:] / top}
    fig = _figure(figsize=(14, 3.6))
    axes = fig.subplots(1, 4, subplot_kw={"projection": "3d"})
    for axis, (hemi, view) in zip(axes, BRAIN_VIEWS, strict=True):
        plotting.plot_surf_stat_map(
            meshes[hemi], maps[hemi], hemi=hemi, view=view, axes=axis, figure=fig, cmap="hot", colorbar=False,
            vmin=0.0, vmax=1.0, threshold=threshold, title=f"{hemi} {view}",
        )  # fmt: skip
    fig.suptitle(title or f"|activity| / max at t = {result.times[time_index]:.3f} s (cortex)")
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=0.88, wspace=0.0)
    return fig


def peaks_figure(result):
    """Plot the peak regions, cortical and deep, as markers on a glass brain (template coordinates ~ MNI)."""
    from nilearn import plotting

    fig = _figure(figsize=(10, 3.4))
    peaks = result.peaks
    coords = np.array([[p["x_mm"], p["y_mm"], p["z_mm"]] for p in peaks])
    values = np.array([p["relative_amplitude"] for p in peaks])
    plotting.plot_markers(
        values, coords, node_cmap="hot", node_vmin=0.0, node_vmax=1.0, figure=fig,
        title="Peak regions (size and colour: relative amplitude)", node_size=40 + 160 * values,
    )  # fmt: skip
    return fig


def timecourse_figure(result, n_regions: int = 5):
    """Time courses of the peak regions."""
    fig = _figure(figsize=(9, 3.2))
    axis = fig.subplots()
    for peak in result.peaks[:n_regions]:
        label = f"{peak['name']}: {peak['label']}{' (deep)' if peak['deep'] else ''}"
        axis.plot(result.times, result.region_data[peak["region"]], label=label, lw=1)
    axis.set_xlabel("time (s)")
    axis.set_ylabel("activity (a.u.)")
    axis.legend(fontsize=7, loc="upper right")
    axis.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def topomap_figure(result, time_index: int):
    """Scalp map of the prepared EEG at one time."""
    import mne

    from ..inverse.forward import make_info

    info = make_info(result.head, result.prepared.sfreq)
    fig = _figure(figsize=(3.6, 3.6))
    axis = fig.subplots()
    mne.viz.plot_topomap(result.prepared.data[:, time_index], info, axes=axis, show=False, contours=6)
    axis.set_title(f"EEG at t = {result.times[time_index]:.3f} s")
    return fig


def _caveats_html(result) -> str:
    from .core import COORDINATE_FRAME

    prepared = result.prepared
    rows = [
        ("solver", result.solver),
        ("input", prepared.source),
        ("channels", f"{len(prepared.ch_names)}: {', '.join(prepared.ch_names)}"),
        ("dropped", ", ".join(prepared.dropped) or "none"),
        ("sampling rate", f"{prepared.sfreq:g} Hz"),
        ("head model", result.head.description),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    general = (
        "<li>Template anatomy (fsaverage), not the patient's own; positions are "
        f"{html.escape(COORDINATE_FRAME)}.</li>"
        f"<li>Values: {html.escape(result.outputs.get('values') or 'as the solver gives them')}. The tables' "
        "amplitudes are relative to the largest; compare regions within a run, not across runs.</li>"
    )
    return f"<table>{table}</table><h4>Caveats</h4><ul>{notes}{general}</ul>"


def _peaks_html(result) -> str:
    header = (
        "<tr><th>rank</th><th>region</th><th>anatomy</th><th>lobe</th><th>time (s)</th><th>relative</th>"
        "<th>x, y, z (mm)</th><th>deep</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{p['rank']}</td><td>{html.escape(p['name'])}</td><td>{html.escape(p['label'])} "
        f"({100 * p['label_share']:.0f} % of the region)</td><td>{p['lobe']}</td><td>{p['time_s']:.3f}</td>"
        f"<td>{p['relative_amplitude']:.2f}</td><td>{p['x_mm']}, {p['y_mm']}, {p['z_mm']}</td>"
        f"<td>{'yes' if p['deep'] else 'no'}</td></tr>"
        for p in result.peaks
    )
    from ..anatomy.labels import ATLAS

    return f"<table>{header}{rows}</table><p>Anatomy: {html.escape(ATLAS)}.</p>"


def make_report(result):
    """Build the ``mne.Report`` of a localization."""
    import mne

    report = mne.Report(title=f"BrainForge localization ({result.solver})")
    report.add_html(_caveats_html(result), title="Run and caveats")
    report.add_html(_peaks_html(result), title="Peak regions")
    peak_time = (
        result.peak_index if result.peak_index is not None else int(np.abs(result.region_data).max(axis=0).argmax())
    )
    for title, fig in (
        ("Brain at the peak", brain_figure(result, peak_time)),
        ("Peak regions, glass brain", peaks_figure(result)),
        ("Region time courses", timecourse_figure(result)),
        ("Topomap at the peak", topomap_figure(result, peak_time)),
    ):
        report.add_figure(fig, title=title, image_format="png")
    if result.confidence is not None:
        report.add_html(_confidence_html(result), title="Confidence per region")
        fig = confidence_figure(result)
        report.add_figure(fig, title="Confidence per region, brain", image_format="png")
    return report


def confidence_figure(result):
    """Plot the bootstrap confidence per region on the cortex (share of replicates peaking there)."""
    confidence = result.confidence
    return brain_figure(
        result, confidence.peak_time, confidence.confidence, threshold=1e-3,
        title=f"Confidence: share of {len(confidence.resample_peaks)} noise replicates peaking within "
        f"{confidence.margin_mm:g} mm of each region (cortex)",
    )  # fmt: skip


def _confidence_html(result) -> str:
    confidence, head = result.confidence, result.head
    names = ", ".join(html.escape(head.region_names[r]) for r in confidence.confidence_set[:30])
    more = len(confidence.confidence_set) - 30
    deep = [head.region_names[r] for r in confidence.confidence_set if head.region_is_deep[r]]
    return (
        f"<p>{100 * confidence.level:.0f} % confidence set: {len(confidence.confidence_set)} regions "
        f"({names}{f', and {more} more' if more > 0 else ''}){'; deep: ' + ', '.join(deep) if deep else ''}.</p>"
        f"<p>Noise-resampling bootstrap: {len(confidence.resample_peaks)} replicates of the segment with its own "
        f"noise added, margin {confidence.margin_mm:g} mm, {confidence.seconds:.1f} s. The spread of the "
        "estimate is in source_spread-stc.h5, the confidence per region in region_confidence.csv.</p>"
    )
