"""Electrode positions from a separate file (``localize --positions``): reading, units, errors, co-registration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest

from brainforge import BrainForgeError
from brainforge.anatomy import CHANNEL_SUBSETS
from brainforge.localization import (
    PreprocessingConfig,
    localize_prepared,
    prepare_recording,
    read_positions,
    simulate_recording,
    source_errors_mm,
)
from brainforge.localization.core import head_model_for
from brainforge.localization.positions import standard_positions_m

NAMES = CHANNEL_SUBSETS["1010-32"]
#: How far the simulated cap sat below the template's, m (the head frame's z axis).
LOWERED_M = 0.025


def _fiducials_m() -> dict[str, np.ndarray]:
    """Nasion, LPA and RPA of the standard montage in MNE's head frame, m."""
    info = mne.create_info(["Cz"], 500.0, "eeg")
    info.set_montage("colin27_1005")
    names = {1: "lpa", 2: "nasion", 3: "rpa"}
    return {names[d["ident"]]: d["r"] for d in info["dig"] if d["kind"] == mne.io.constants.FIFF.FIFFV_POINT_CARDINAL}


def _write_sfp(path: Path, names, positions_m, to_unit: float, fiducials: bool = True, transform=None) -> Path:
    """Write an .sfp file (name x y z, no unit stated) of head-frame positions (m) times ``to_unit``.

    ``transform`` (rotation, shift in m) moves every point, fiducials included, into another frame first.
    """
    rows = list(zip(names, positions_m, strict=True))
    if fiducials:
        found = _fiducials_m()
        rows = [("FidNz", found["nasion"]), ("FidT9", found["lpa"]), ("FidT10", found["rpa"]), *rows]
    if transform is not None:
        rotation, shift = transform
        rows = [(name, rotation @ pos + shift) for name, pos in rows]
    path.write_text(
        "".join(f"{name}\t{x * to_unit:.5f}\t{y * to_unit:.5f}\t{z * to_unit:.5f}\n" for name, (x, y, z) in rows)
    )
    return path


def _raw(names, n_times=1000):
    data = np.random.default_rng(0).normal(scale=1e-5, size=(len(names), n_times))
    return mne.io.RawArray(data, mne.create_info(list(names), 500.0, "eeg"), verbose="error")


def _lowered_m() -> np.ndarray:
    return standard_positions_m(NAMES) + np.array([0.0, 0.0, -LOWERED_M])


def _rotation_z(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    return np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize(("to_unit", "unit"), [(1.0, "m"), (100.0, "cm"), (1000.0, "mm")])
def test_positions_are_read_in_the_head_frame_whatever_the_unit_and_frame(tmp_path, to_unit, unit):
    """A digitizer's own frame (rotated 70 degrees, shifted 0.3 m) is undone through the file's fiducials."""
    path = tmp_path / "cap.sfp"
    _write_sfp(path, NAMES, _lowered_m(), to_unit, transform=(_rotation_z(70.0), np.array([0.3, -0.1, 0.05])))
    positions, notes = read_positions(path)
    np.testing.assert_allclose(np.array([positions[n] for n in NAMES]), _lowered_m(), atol=1e-4)  # 0.1 mm
    assert any(f"read as {unit}" in note for note in notes)
    assert not any("lacks the nasion" in note for note in notes)


def _easycap_copy(path: Path, renamed: int, fiducials: bool) -> tuple[Path, dict[str, str]]:
    """MNE's spherical easycap-M1.txt (theta/phi), its first ``renamed`` sites renamed Custom1, ...; optionally
    with Nz, LPA and RPA at MNE's angles (which move the head frame's origin off the sphere's centre)."""
    source = Path(mne.__file__).parent / "channels" / "data" / "montages" / "easycap-M1.txt"
    lines = source.read_text().splitlines()
    originals = {}
    for index in range(1, renamed + 1):
        site, rest = lines[index].split("\t", 1)
        originals[f"Custom{index}"] = site
        lines[index] = f"Custom{index}\t{rest}"
    if fiducials:
        lines += ["Nz\t 115\t 90", "LPA\t-115\t 0", "RPA\t 115\t 0"]
    path.write_text("\n".join(lines) + "\n")
    return path, originals


@pytest.mark.parametrize("fiducials", [False, True])
def test_a_spherical_file_puts_standard_names_at_their_standard_positions(tmp_path, fiducials):
    path, originals = _easycap_copy(tmp_path / "easycap.txt", 8, fiducials)
    positions, notes = read_positions(path)
    known = [n for n in positions if n not in originals and np.isfinite(standard_positions_m([n])).all()]
    assert len(known) >= 40
    np.testing.assert_allclose(np.array([positions[n] for n in known]), standard_positions_m(known), atol=1e-9)
    # Names the 10-05 system lacks go onto the standard sphere in their direction: near the same site's standard
    # position, and not moved up (the fiducials once lifted them about 28 mm).
    custom = np.array([positions[n] for n in originals])
    offset_mm = (custom - standard_positions_m(list(originals.values()))) * 1e3
    assert np.median(np.linalg.norm(offset_mm, axis=1)) < 20.0 and abs(offset_mm[:, 2].mean()) < 8.0, offset_mm
    assert any("directions on a sphere" in note for note in notes)


def test_preparation_uses_the_positions_file_instead_of_the_standard_positions(tmp_path):
    raw = _raw([f"EEG {n}-REF" for n in NAMES])  # file names differ from the positions file's 10-05 names
    path = _write_sfp(tmp_path / "cap.sfp", NAMES, _lowered_m(), 100.0)
    prepared = prepare_recording(raw, 500.0, PreprocessingConfig(positions=str(path), l_freq=None))
    found = prepared.montage.get_positions()["ch_pos"]
    np.testing.assert_allclose(np.array([found[f"EEG {n}-REF"] for n in NAMES]), _lowered_m(), atol=1e-5)
    assert "Electrode positions from cap.sfp, projected onto the template head." in prepared.notes
    assert not any("not co-registered" in note for note in prepared.notes)
    assert prepared.preprocessing["requested"]["positions_file"] == str(path)
    # Standard positions in the file (no fiducials, mm): the cached standard head serves, and the notes say so.
    standard = _write_sfp(tmp_path / "standard.sfp", NAMES, standard_positions_m(NAMES), 1000.0, fiducials=False)
    prepared = prepare_recording(_raw(NAMES), 500.0, PreprocessingConfig(positions=str(standard), l_freq=None))
    assert prepared.montage is None
    assert any("standard.sfp lacks the nasion, LPA or RPA" in note for note in prepared.notes)
    assert any("from standard.sfp lie within 10 mm" in note for note in prepared.notes)


def test_bad_positions_files_get_one_line_errors(tmp_path):
    with pytest.raises(BrainForgeError, match="file not found"):
        PreprocessingConfig(positions=str(tmp_path / "missing.sfp"))
    unknown = tmp_path / "cap.pos"
    unknown.write_text("Fp1 0 0 0\n")
    with pytest.raises(BrainForgeError, match=r"unknown format '\.pos'"):
        PreprocessingConfig(positions=str(unknown))
    broken = tmp_path / "broken.elc"
    broken.write_text("not an ASA electrode file\n")
    with pytest.raises(BrainForgeError, match=r"broken\.elc: cannot read electrode positions"):
        read_positions(broken)
    device_frame = _write_sfp(
        tmp_path / "device.sfp", NAMES, _lowered_m() + np.array([0.3, 0.0, 0.0]), 1.0, fiducials=False
    )
    with pytest.raises(BrainForgeError, match="do not lie on a head"):
        read_positions(device_frame)
    partial = _write_sfp(tmp_path / "partial.sfp", NAMES[:-2], _lowered_m()[:-2], 100.0)
    with pytest.raises(BrainForgeError, match=f"no position for channel.*--exclude {NAMES[-2]},{NAMES[-1]}"):
        prepare_recording(_raw(NAMES), 500.0, PreprocessingConfig(positions=str(partial), l_freq=None))
    # The command line stops on one line before any work.
    result = subprocess.run(
        [sys.executable, "-m", "brainforge.cli", "localize", str(partial), "--positions", str(unknown), "--out",
         str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.returncode == 2 and len(lines) == 1 and "unknown format '.pos'" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_a_positions_file_co_registers_a_cap_that_sat_lower(spike_library, tmp_path):
    """EEG from a cap 25 mm below the template's: with the file's positions sLORETA finds the sources, without
    them (standard positions of the names) it misses them."""
    path = _write_sfp(tmp_path / "cap.sfp", NAMES, _lowered_m(), 100.0)
    head = head_model_for(prepare_recording(_raw(NAMES), 500.0, PreprocessingConfig(positions=str(path))))
    raw, truth = simulate_recording(head, spike_library, ("cortical",) * 6, snr_db=15.0, seed=7)
    errors = {}
    for label, positions in (("positions", str(path)), ("standard", None)):
        # The simulated file carries the standard positions of the names, as many recordings do.
        prepared = prepare_recording(raw, 500.0, PreprocessingConfig(positions=positions))
        errors[label] = np.array(source_errors_mm(localize_prepared(prepared, "sloreta"), truth))
    assert np.median(errors["positions"]) <= 5.0, errors
    assert errors["standard"].mean() >= errors["positions"].mean() + 5.0, errors


def test_a_bids_electrodes_table_is_read_and_its_coordinate_system_checked(tmp_path):
    """BIDS ``electrodes.tsv``: named columns, ``n/a`` rows left out, the sidecar's unit and system used."""
    table = tmp_path / "sub-01_electrodes.tsv"
    rows = [
        f"{x * 1e2:.4f}\t{n}\t{y * 1e2:.4f}\t{z * 1e2:.4f}" for n, (x, y, z) in zip(NAMES, _lowered_m(), strict=True)
    ]
    table.write_text("\n".join(["x\tname\ty\tz", *rows, "n/a\tREF\tn/a\tn/a"]) + "\n")
    sidecar = tmp_path / "sub-01_coordsystem.json"
    sidecar.write_text('{"EEGCoordinateSystem": "CapTrak", "EEGCoordinateUnits": "cm"}')
    (tmp_path / "sub-02_coordsystem.json").write_text('{"EEGCoordinateSystem": "MNI305"}')  # another subject's
    positions, notes = read_positions(table)
    assert sorted(positions) == sorted(NAMES)  # REF (n/a) left out
    np.testing.assert_allclose(np.array([positions[n] for n in NAMES]), _lowered_m(), atol=1e-5)
    assert not any("states no unit" in note for note in notes)  # the sidecar states it
    sidecar.write_text('{"EEGCoordinateSystem": "EEGLAB", "EEGCoordinateUnits": "mm"}')
    with pytest.raises(BrainForgeError, match="EEGLAB coordinate system; BrainForge reads CapTrak"):
        read_positions(table)
    sidecar.write_text('{"EEGCoordinateSystem": "ElektaNeuromag", "EEGCoordinateUnits": "cm"}')  # the head frame too
    assert sorted(read_positions(table)[0]) == sorted(NAMES)
    # A table without a header keeps its first row.
    headerless = tmp_path / "cap.csv"
    headerless.write_text("".join(f"{n},{x},{y},{z}\n" for n, (x, y, z) in zip(NAMES, _lowered_m(), strict=True)))
    assert sorted(read_positions(headerless)[0]) == sorted(NAMES)


def test_fiducial_rows_of_a_table_define_the_frame_and_are_not_electrodes(tmp_path):
    """NAS/LPA/RPA rows (any case) are fiducials: a table in a digitizer's frame comes back in the head frame."""
    rotation, shift = _rotation_z(70.0), np.array([0.3, -0.1, 0.05])
    fiducials = _fiducials_m()
    rows = [("nas", fiducials["nasion"]), ("LPA", fiducials["lpa"]), ("RPA", fiducials["rpa"])]
    rows += list(zip(NAMES, _lowered_m(), strict=True))
    table = tmp_path / "cap.tsv"
    moved = [(name, rotation @ pos + shift) for name, pos in rows]
    table.write_text("name\tx\ty\tz\n" + "".join(f"{n}\t{x:.6f}\t{y:.6f}\t{z:.6f}\n" for n, (x, y, z) in moved))
    positions, notes = read_positions(table)
    assert sorted(positions) == sorted(NAMES)
    np.testing.assert_allclose(np.array([positions[n] for n in NAMES]), _lowered_m(), atol=1e-4)
    assert not any("lacks the nasion" in note for note in notes)
    # No nasion row: the electrode Nz (at the nasion) gives it, and stays an electrode.
    with_nz = [("Nz", fiducials["nasion"]), *moved[1:]]
    with_nz = [(name, rotation @ pos + shift) if name == "Nz" else (name, pos) for name, pos in with_nz]
    table.write_text("name\tx\ty\tz\n" + "".join(f"{n}\t{x:.6f}\t{y:.6f}\t{z:.6f}\n" for n, (x, y, z) in with_nz))
    positions, notes = read_positions(table)
    assert "Nz" in positions and not any("lacks the nasion" in note for note in notes)
    np.testing.assert_allclose(np.array([positions[n] for n in NAMES]), _lowered_m(), atol=1e-4)
    # A row without a name is no electrode; two rows for one fiducial are refused.
    rows = "".join(f"{n}\t{x:.6f}\t{y:.6f}\t{z:.6f}\n" for n, (x, y, z) in moved)
    table.write_text("name\tx\ty\tz\n" + rows + "\t0.01\t0.02\t0.09\n")
    assert sorted(read_positions(table)[0]) == sorted(NAMES)
    table.write_text("name\tx\ty\tz\n" + rows + rows.splitlines()[0].replace("nas", "Nasion") + "\n")
    with pytest.raises(BrainForgeError, match="two rows give the nasion"):
        read_positions(table)
    # A coordinate that is not a number is refused by name (a NaN nasion once left the frame silently wrong).
    for name in ("nas", NAMES[3]):
        broken = [(n, np.full(3, np.nan) if n == name else pos) for n, pos in moved]
        table.write_text("name\tx\ty\tz\n" + "".join(f"{n}\t{x}\t{y}\t{z}\n" for n, (x, y, z) in broken))
        label = "nasion" if name == "nas" else name
        with pytest.raises(BrainForgeError, match=f"{label} has coordinates that are not finite numbers"):
            read_positions(table)


def test_positions_match_channel_names_without_case_or_spaces(tmp_path):
    """An old digitization names EEG points EEG001; a recording's EEG 001 finds its position there."""
    file_names = [f"EEG{i:03d}" for i in range(1, len(NAMES) + 1)]
    path = _write_sfp(tmp_path / "cap.sfp", file_names, _lowered_m(), 1.0)
    raw = _raw([f"EEG {i:03d}" for i in range(1, len(NAMES) + 1)])
    prepared = prepare_recording(raw, 500.0, PreprocessingConfig(positions=str(path), l_freq=None))
    found = prepared.montage.get_positions()["ch_pos"]
    np.testing.assert_allclose(np.array([found[f"EEG {i:03d}"] for i in range(1, 33)]), _lowered_m(), atol=1e-5)


def test_names_that_differ_only_in_case_or_spaces_are_refused_where_ambiguous(tmp_path):
    """EEG001 and eeg001 in one file: a recording's EEG 001 could mean either, so it is refused, not guessed."""
    file_names = [f"EEG{i:03d}" for i in range(1, len(NAMES) + 1)]
    file_names[1] = "eeg001"  # clashes with EEG001 once case is ignored
    path = _write_sfp(tmp_path / "cap.sfp", file_names, _lowered_m(), 1.0)
    raw = _raw([f"EEG {i:03d}" for i in range(1, len(NAMES) + 1)])
    with pytest.raises(BrainForgeError, match=r"cap.sfp: EEG 001 could be any of EEG001, eeg001") as info:
        prepare_recording(raw, 500.0, PreprocessingConfig(positions=str(path), l_freq=None))
    assert "\n" not in str(info.value)
    # In a recording: the exact name is never ambiguous; a name that only matches without case or spaces is.
    clashing = _raw([*NAMES[:-1], "EEG1", "eeg 1"])
    with pytest.raises(BrainForgeError, match=r"--exclude: Eeg1 could be any of EEG1, eeg 1"):
        prepare_recording(clashing, 500.0, PreprocessingConfig(exclude=("Eeg1",), l_freq=None))
    prepared = prepare_recording(clashing, 500.0, PreprocessingConfig(exclude=("EEG1", "eeg 1"), l_freq=None))
    assert prepared.ch_names == NAMES[:-1]


def test_an_upper_case_ending_and_a_cap_slid_along_the_scalp_are_accepted(tmp_path):
    # MNE's readers check endings by case; the file is read as .sfp.
    upper = _write_sfp(tmp_path / "CAP.SFP", NAMES, _lowered_m(), 100.0)
    np.testing.assert_allclose(np.array([read_positions(upper)[0][n] for n in NAMES]), _lowered_m(), atol=1e-4)
    # A cap slid about 30 mm forward along the scalp: an 18-degree pitch about the head's centre.
    angle = np.radians(18.0)
    pitch = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(angle), -np.sin(angle)], [0.0, np.sin(angle), np.cos(angle)]])
    centre = np.array([-1.0, 14.9, 40.0]) * 1e-3
    slid = (standard_positions_m(NAMES) - centre) @ pitch.T + centre
    path = _write_sfp(tmp_path / "slid.sfp", NAMES, slid, 1000.0)
    prepared = prepare_recording(_raw(NAMES), 500.0, PreprocessingConfig(positions=str(path), l_freq=None))
    assert prepared.montage is not None  # individual positions, not refused and not the standard ones


def test_positions_in_other_axes_flat_or_too_few_are_refused(tmp_path):
    lowered = _lowered_m()
    # EEGLAB's axes (+x nasion, +y left ear) without fiducials: a 90-degree rotation about z.
    eeglab_axes = _write_sfp(tmp_path / "eeglab.sfp", NAMES, lowered @ _rotation_z(90.0).T, 1000.0, fiducials=False)
    with pytest.raises(BrainForgeError, match="rotated 90 degrees"):
        prepare_recording(_raw(NAMES), 500.0, PreprocessingConfig(positions=str(eeglab_axes), l_freq=None))
    # Left and right swapped (a mirror, which no rotation undoes).
    mirrored = _write_sfp(
        tmp_path / "mirrored.sfp", NAMES, lowered * np.array([-1.0, 1.0, 1.0]), 1000.0, fiducials=False
    )
    with pytest.raises(BrainForgeError, match=r"rotated 1[5-8][0-9] degrees"):
        prepare_recording(_raw(NAMES), 500.0, PreprocessingConfig(positions=str(mirrored), l_freq=None))
    flat = lowered * np.array([1.0, 1.0, 0.0]) + np.array([0.0, 0.0, 0.05])
    with pytest.raises(BrainForgeError, match="nearly in a plane"):
        read_positions(_write_sfp(tmp_path / "flat.sfp", NAMES, flat, 1000.0, fiducials=False))
    with pytest.raises(BrainForgeError, match="4 electrode position"):
        read_positions(_write_sfp(tmp_path / "few.sfp", NAMES[:4], lowered[:4], 1000.0))
    with pytest.raises(BrainForgeError, match="a folder, not a file"):
        PreprocessingConfig(positions=str(tmp_path))


def _digitizer_rows(names) -> tuple[list[tuple[str, np.ndarray]], dict[str, np.ndarray]]:
    """The lowered cap and the fiducials, m, moved into a digitizer's own frame (rotated 70 degrees, shifted)."""
    rotation, shift = _rotation_z(70.0), np.array([0.3, -0.1, 0.05])
    electrodes = [(name, rotation @ pos + shift) for name, pos in zip(names, _lowered_m(), strict=True)]
    fiducials = {key: rotation @ pos + shift for key, pos in _fiducials_m().items()}
    return electrodes, fiducials


def _write_captrak(path: Path, names) -> Path:
    """A BrainVision CapTrak ``.bvct`` (XML, mm) with Nasion, LPA and RPA."""
    electrodes, fiducials = _digitizer_rows(names)
    rows = [("Nasion", fiducials["nasion"]), ("LPA", fiducials["lpa"]), ("RPA", fiducials["rpa"]), *electrodes]
    body = "".join(
        f"<CapTrakElectrode><Name>{name}</Name><X>{x * 1e3:.4f}</X><Y>{y * 1e3:.4f}</Y><Z>{z * 1e3:.4f}</Z>"
        "</CapTrakElectrode>\n"
        for name, (x, y, z) in rows
    )
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<BrainVisionCapTrak><CapTrakElectrodeList>\n{body}'
                    "</CapTrakElectrodeList></BrainVisionCapTrak>\n")  # fmt: skip
    return path


def _write_polhemus_elp(path: Path, names, fiducials_lines: int = 3) -> Path:
    """A Polhemus Isotrak ``.elp`` (m): header with the probe's %N name, %F fiducials, then %N name and x y z."""
    electrodes, fiducials = _digitizer_rows(names)
    lines = ["3\t2", "//Probe file", "//Minor revision number", "1", "//ProbeName", "%N\tName", "//Probe type, "
             "number of sensors", f"0\t{len(names)}", "//Position of fiducials X+, Y+, Y- on the subject"]  # fmt: skip
    for key in ("nasion", "lpa", "rpa")[:fiducials_lines]:
        lines.append("%F\t" + "\t".join(f"{v:.5f}" for v in fiducials[key]))
    for index, (name, pos) in enumerate(electrodes, start=1):
        lines += ["//Sensor type", "%S\tc000", f"//Sensor name and data for sensor # {index}", f"%N\t{name}\t"]
        lines.append("\t".join(f"{v:.5f}" for v in pos))
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_neuroscan_dat(path: Path, names) -> Path:
    """A Neuroscan 3DSpace ``.dat`` (cm): name, code, x, y, z; codes 78/76/82 the fiducials, 67 the centroid."""
    electrodes, fiducials = _digitizer_rows(names)
    rows = [("Nasion", 78, fiducials["nasion"]), ("Left", 76, fiducials["lpa"]), ("Right", 82, fiducials["rpa"])]
    rows += [(name, 69, pos) for name, pos in electrodes] + [("Centroid", 67, np.zeros(3))]
    path.write_text("".join(f"{name}\t{code}\t{x * 1e2:.4f}\t{y * 1e2:.4f}\t{z * 1e2:.4f}\n"
                            for name, code, (x, y, z) in rows))  # fmt: skip
    return path


def _write_egi_coordinates(path: Path, n_electrodes: int) -> tuple[Path, list[str]]:
    """An EGI ``coordinates.xml`` (cm): unnamed EEG sensors (E1, ...), a VREF reference (type 1), fiducials."""
    electrodes, fiducials = _digitizer_rows(NAMES[:n_electrodes])
    names = [f"E{number}" for number in range(1, n_electrodes)] + ["VREF"]
    sensors = [("" if name != "VREF" else name, number, 0 if name != "VREF" else 1, pos)
               for number, (name, (_, pos)) in enumerate(zip(names, electrodes, strict=True), start=1)]  # fmt: skip
    sensors += [
        (label, n_electrodes + i, 2, fiducials[key])
        for i, (label, key) in enumerate(
            [("Nasion", "nasion"), ("Left periauricular point", "lpa"), ("Right periauricular point", "rpa")], start=1
        )
    ]
    body = "".join(
        f"<sensor><name>{name}</name><number>{number}</number><type>{kind}</type><x>{x * 1e2:.4f}</x>"
        f"<y>{y * 1e2:.4f}</y><z>{z * 1e2:.4f}</z></sensor>\n"
        for name, number, kind, (x, y, z) in sensors
    )
    namespace = "http://www.egi.com/coordinates_mff"
    path.write_text(f"<?xml version='1.0' encoding='UTF-8'?>\n<coordinates xmlns=\"{namespace}\"><sensorLayout>"
                    f"<name>test net</name><sensors>\n{body}</sensors></sensorLayout></coordinates>\n")  # fmt: skip
    return path, names


@pytest.mark.parametrize("fmt", ["bvct", "polhemus_elp", "dat", "egi_xml"])
def test_digitizer_files_are_read_by_name_in_the_head_frame(tmp_path, fmt):
    """CapTrak (mm), Polhemus (m), Neuroscan (cm) and EGI (cm) digitizations, each in a digitizer's own frame."""
    if fmt == "egi_xml":
        path, names = _write_egi_coordinates(tmp_path / "coordinates.xml", len(NAMES))
    else:
        names = list(NAMES)
        writer = {"bvct": _write_captrak, "polhemus_elp": _write_polhemus_elp, "dat": _write_neuroscan_dat}[fmt]
        path = writer(tmp_path / f"cap.{fmt.split('_')[-1]}", names)
    positions, notes = read_positions(path)
    assert list(positions) == names  # fiducials, the centroid and the probe's name are not electrodes
    np.testing.assert_allclose(np.array([positions[n] for n in names]), _lowered_m(), atol=1e-4)  # 0.1 mm
    assert not any("lacks the nasion" in note or "directions on a sphere" in note for note in notes)
    if fmt in ("polhemus_elp", "dat"):  # no stated unit: chosen by the head's size
        assert any(f"read as {'m' if fmt == 'polhemus_elp' else 'cm'} (the head's size)" in note for note in notes)


def test_a_besa_elp_is_still_read_as_directions_on_a_sphere(tmp_path):
    """Without Polhemus's %F lines, a .elp is BESA's spherical format: standard names at standard positions."""
    theta_phi = {"Fp1": (-92, -72), "Fp2": (92, 72), "F7": (-92, -36), "F8": (92, 36), "Cz": (0, 0), "T7": (-92, 0),
                 "T8": (92, 0), "O1": (-92, 72), "O2": (92, -72), "Pz": (46, 90), "Fz": (46, -90)}  # fmt: skip
    path = tmp_path / "besa.elp"
    path.write_text("".join(f"EEG\t{name}\t{theta}\t{phi}\t100\n" for name, (theta, phi) in theta_phi.items()))
    positions, notes = read_positions(path)
    names = list(theta_phi)
    np.testing.assert_allclose(np.array([positions[n] for n in names]), standard_positions_m(names), atol=1e-9)
    assert any("directions on a sphere" in note for note in notes)


def test_digitizer_files_that_cannot_serve_get_one_line_errors(tmp_path):
    headshape = tmp_path / "cap.hsp"
    headshape.write_text("3\t200\n")
    with pytest.raises(BrainForgeError, match=r"cap\.hsp: a Polhemus head-shape file .* give the \.elp"):
        read_positions(headshape)
    for lines in (2, 0):  # without %F lines at all, a Polhemus file is still told from BESA's by its % and // lines
        with pytest.raises(BrainForgeError, match=rf"cap\.elp: cannot read electrode positions \({lines} fiducial"):
            read_positions(_write_polhemus_elp(tmp_path / "cap.elp", NAMES, fiducials_lines=lines))
    unnamed = _write_polhemus_elp(tmp_path / "unnamed.elp", NAMES)
    unnamed.write_text(unnamed.read_text().replace(f"%N\t{NAMES[3]}\t", "%N\t"))
    with pytest.raises(BrainForgeError, match=r"unnamed\.elp: cannot read electrode positions \(line \d+: %N without"):
        read_positions(unnamed)
    placeholders = _write_polhemus_elp(tmp_path / "placeholders.elp", NAMES)  # a writer's %F 0 0 0, three times
    text = placeholders.read_text().splitlines()
    placeholders.write_text("\n".join("%F\t0\t0\t0" if line.startswith("%F") else line for line in text) + "\n")
    with pytest.raises(BrainForgeError, match=r"placeholders\.elp: its fiducials cannot define the head frame"):
        read_positions(placeholders)
    twice = _write_neuroscan_dat(tmp_path / "twice.dat", [*NAMES[:-1], NAMES[0]])
    with pytest.raises(BrainForgeError, match=rf"twice\.dat: {NAMES[0]} has two rows; keep one"):
        read_positions(twice)
    # An EGI sensor of another type is skipped, coordinates or none; a kept one without them stops on one line.
    egi, _ = _write_egi_coordinates(tmp_path / "coordinates.xml", len(NAMES))
    other = "<sensor><name>misc</name><number>99</number><type>3</type></sensor>\n"
    egi.write_text(egi.read_text().replace("</sensors>", other + "</sensors>"))
    assert len(read_positions(egi)[0]) == len(NAMES)
    egi.write_text(egi.read_text().replace("<type>3</type>", "<type>0</type>"))
    with pytest.raises(
        BrainForgeError, match=r"coordinates\.xml: cannot read electrode positions \(sensor misc: could"
    ):
        read_positions(egi)
    not_egi = tmp_path / "layout.xml"
    not_egi.write_text("<layout><item>Fp1</item></layout>\n")
    with pytest.raises(BrainForgeError, match=r"layout\.xml: no <sensor> elements; .xml is read as an EGI"):
        read_positions(not_egi)
    broken = tmp_path / "broken.bvct"
    broken.write_text("<BrainVisionCapTrak><CapTrakElectrodeList>")
    with pytest.raises(BrainForgeError, match=r"broken\.bvct: cannot read electrode positions"):
        read_positions(broken)
