"""Electrode positions for localization: the standard 10-05 ones, a recording's, or a separate file's.

:func:`read_positions` reads a digitization or montage file (``localize
--positions``) into MNE's head frame (+x towards the right ear, +y towards the
nasion, +z up; origin between the ears), with the checks that keep a wrong
unit or frame from passing silently.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .._errors import BrainForgeError

#: Fewest positions a file must hold.
MIN_POSITIONS = 8
#: Files ``--positions`` reads (MNE's readers, BIDS ``electrodes.tsv``, Polhemus ``.elp``, EGI
#: ``coordinates.xml``), by file ending.
POSITION_FILE_FORMATS = (
    ".sfp", ".elc", ".xyz", ".csv", ".tsv", ".hpts", ".fif", ".bvct", ".xml", ".dat", ".loc", ".locs", ".eloc",
    ".txt", ".elp", ".csd", ".bvef",
)  # fmt: skip
#: Formats that store directions on a sphere, not measured positions (a ``.elp`` unless it is Polhemus's).
SPHERICAL_POSITION_FORMATS = (".loc", ".locs", ".eloc", ".txt", ".elp", ".csd", ".bvef")
#: Row names (lower case) of a position table that are fiducials, and their DigMontage keywords.
TABLE_FIDUCIALS = {"nas": "nasion", "nasion": "nasion", "lpa": "lpa", "rpa": "rpa"}
#: Formats of measured positions that do not state their unit (m, cm or mm is chosen by the head's size);
#: a Polhemus ``.elp`` is one too.
UNITLESS_POSITION_FORMATS = (".sfp", ".xyz", ".csv", ".tsv", ".hpts", ".dat")
#: Endings of files that hold no electrode positions, and what to give instead.
NOT_POSITION_FILES = {
    ".hsp": "a Polhemus head-shape file (points without electrode names); give the .elp of the same digitization",
}
#: Names of the fiducials in an EGI ``coordinates.xml``, and their DigMontage keywords.
EGI_FIDUCIALS = {"Nasion": "nasion", "Left periauricular point": "lpa", "Right periauricular point": "rpa"}
#: The unit of an EGI ``coordinates.xml``, in m (cm, as MNE's MFF reader reads it).
EGI_UNIT_M = 1e-2
#: Codes of a Neuroscan ``.dat`` row that are not electrodes: centroid, nasion, LPA, RPA.
DAT_NON_ELECTRODE_CODES = ("67", "78", "76", "82")
#: Fiducials closer than this to each other or to the line through the other two cannot define a frame, mm.
MIN_FIDUCIAL_SPREAD_MM = 10.0
#: BIDS coordinate systems that are MNE's head frame.
HEAD_FRAME_SYSTEMS = ("CapTrak", "ElektaNeuromag")
#: Sphere fitted to the standard 10-05 positions in MNE's head frame: centre and radius, mm.
STANDARD_HEAD_CENTRE_MM = np.array([-1.0, 14.9, 40.0])
STANDARD_HEAD_RADIUS_MM = 98.4
#: Positions whose fitted sphere is centred farther than this from the standard one are refused, mm.
HEAD_CENTRE_TOLERANCE_MM = 50.0
#: Head radii accepted, mm.
HEAD_RADIUS_RANGE_MM = (60.0, 140.0)
#: A cap whose positions span less than this share of their largest extent in one direction is flat.
MIN_FLATNESS = 0.2
#: The rotation between a file's positions and the standard ones of the same names above which they are
#: taken to be in other axes, degrees (a cap slid 30 mm along the scalp is about 18 degrees; other axes 90-180).
MAX_ROTATION_DEG = 45.0
#: A path's unit name -> metres.
UNITS_M = {"m": 1.0, "cm": 1e-2, "mm": 1e-3}


def error_reason(err: Exception) -> str:
    """Return the first line of an exception's message, with its type when the message is short."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    return first if len(first) > 20 else f"{type(err).__name__}: {first}".rstrip(": ")


def file_positions_m(info) -> np.ndarray:
    """Channel positions stored in an ``mne.Info`` (head frame, m); NaN rows where absent."""
    positions = np.array([ch["loc"][:3] for ch in info["chs"]], float)
    missing = ~np.isfinite(positions).all(axis=1) | (np.abs(positions).sum(axis=1) == 0)
    positions[missing] = np.nan
    return positions


def standard_positions_m(names: list[str]) -> np.ndarray:
    """Positions of 10-05 names (any case) in MNE's head frame, m (NaN rows for unknown names)."""
    import mne

    info = mne.create_info(list(names), 1000.0, "eeg")
    info.set_montage("colin27_1005", match_case=False, on_missing="ignore")
    return file_positions_m(info)


def check_positions_file(path: Path) -> None:
    """Refuse a ``--positions`` path that is not a file or whose format is not read."""
    if not path.is_file():
        raise BrainForgeError(f"--positions {path}: {'a folder, not a file' if path.is_dir() else 'file not found'}.")
    if path.suffix.lower() in NOT_POSITION_FILES:
        raise BrainForgeError(f"--positions {path.name}: {NOT_POSITION_FILES[path.suffix.lower()]}.")
    if path.suffix.lower() not in POSITION_FILE_FORMATS:
        raise BrainForgeError(
            f"--positions {path.name}: unknown format {path.suffix or '(no ending)'!r}; electrode positions are read "
            f"from {', '.join(POSITION_FILE_FORMATS)} files (docs/localize.md, Positions)."
        )


def _fitted_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and radius of the sphere fitted to the finite rows of ``points``, in their unit (NaN below 4)."""
    from ..anatomy.bem import fit_sphere

    finite = points[np.isfinite(points).all(axis=1)]
    if len(finite) < 4:
        return np.full(3, np.nan), float("nan")
    return fit_sphere(finite)


def _bids_sidecar(path: Path) -> Path | None:
    """Return the BIDS ``*_coordsystem.json`` of an ``*_electrodes.tsv`` file, when it exists."""
    if not path.name.endswith("_electrodes.tsv"):
        return None
    sidecar = path.with_name(path.name[: -len("_electrodes.tsv")] + "_coordsystem.json")
    return sidecar if sidecar.is_file() else None


def _read_bids_sidecar(path: Path, sidecar: Path) -> float | None:
    """Check a BIDS coordinate-system sidecar names MNE's head frame; return its unit in m, if it states one."""
    try:
        description = json.loads(sidecar.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as err:
        raise BrainForgeError(f"--positions {path.name}: cannot read {sidecar.name} ({error_reason(err)}).") from err
    if not isinstance(description, dict):
        raise BrainForgeError(f"--positions {path.name}: {sidecar.name} is not a JSON object of BIDS fields.")
    system = description.get("EEGCoordinateSystem")
    if system is not None and system not in HEAD_FRAME_SYSTEMS:
        raise BrainForgeError(
            f"--positions {path.name}: {sidecar.name} puts the positions in the {system} coordinate system; "
            f"BrainForge reads {' or '.join(HEAD_FRAME_SYSTEMS)} (MNE's head frame): convert them, e.g. with mne-bids."
        )
    return UNITS_M.get(str(description.get("EEGCoordinateUnits", "")).strip())


def _read_position_table(path: Path):
    """Read a ``.tsv``/``.csv`` table of name, x, y, z (a header row optional; BIDS ``electrodes.tsv``).

    Columns are found by a header naming ``name``, ``x``, ``y``, ``z``, else the first four are used.
    Rows whose coordinates are not numbers (BIDS writes ``n/a``) are left out. Rows named ``NAS``
    (``nasion``), ``LPA`` and ``RPA`` (any case) are the fiducials, not electrodes; with LPA and RPA
    but no nasion row, the 10-05 electrode ``Nz`` (at the nasion) gives the nasion too.
    """
    import mne

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8-sig") as file:
        rows = [row for row in csv.reader(file, delimiter=delimiter) if any(cell.strip() for cell in row)]
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if {"name", "x", "y", "z"} <= set(header):
        columns, rows = [header.index(key) for key in ("name", "x", "y", "z")], rows[1:]
    else:
        columns = [0, 1, 2, 3]
    positions: dict[str, np.ndarray] = {}
    for row in rows:
        try:
            name, position = row[columns[0]].strip(), np.array([float(row[c]) for c in columns[1:]])
        except (ValueError, IndexError):
            continue  # a header without the names above, "n/a", or a short row
        if not name:
            continue  # a row without a name places no electrode
        if name in positions:
            raise BrainForgeError(f"--positions {path.name}: {name} has two rows; keep one.")
        positions[name] = position
    fiducials: dict[str, np.ndarray] = {}
    for name in [name for name in positions if name.lower() in TABLE_FIDUCIALS]:
        key = TABLE_FIDUCIALS[name.lower()]
        if key in fiducials:
            raise BrainForgeError(f"--positions {path.name}: two rows give the {key} ({name} and another); keep one.")
        fiducials[key] = positions.pop(name)
    if "nasion" not in fiducials and {"lpa", "rpa"} <= set(fiducials):
        nz = next((name for name in positions if name.lower() == "nz"), None)
        if nz is not None:
            fiducials["nasion"] = positions[nz]
    if not positions:
        raise BrainForgeError(f"--positions {path.name}: no rows of name, x, y, z with numbers.")
    return mne.channels.make_dig_montage(positions, coord_frame="unknown", **fiducials)


def _is_polhemus_elp(path: Path) -> bool:
    """Whether a ``.elp`` file is a Polhemus Isotrak digitization, not BESA's spherical one.

    Polhemus files have ``%`` lines (fiducials, names) and ``//`` comments; BESA's rows never start so.
    """
    with path.open(encoding="utf-8", errors="replace") as file:
        return any(line.lstrip().startswith(("%", "//")) for line in file)


def _read_polhemus_elp(path: Path):
    """Read a Polhemus Isotrak ``.elp``: named, measured electrode positions and the fiducials, unit as stored.

    After a header, three ``%F`` lines give the nasion, LPA and RPA (the file's "X+, Y+, Y-"); then each
    electrode is a ``%N`` line with its name followed by a line of x, y, z. ``%N`` lines before the
    fiducials name the probe, and other ``%`` lines (sensor type) and ``//`` comments are skipped.
    :func:`mne.channels.read_dig_polhemus_isotrak` reads the same points but not their names.
    """
    import mne

    fiducials: list[np.ndarray] = []
    positions: dict[str, np.ndarray] = {}
    name = None
    with path.open(encoding="utf-8", errors="replace") as file:
        lines = [line.strip() for line in file]
    for number, line in enumerate(lines, start=1):
        if not line or line.startswith("//"):
            continue
        if line.startswith("%F"):
            fiducials.append(np.array(line[2:].split()[:3], float))
        elif line.startswith("%N"):
            if name is not None:
                raise ValueError(f"line {number}: {name} has no line of x, y, z")
            name = line[2:].strip() if len(fiducials) >= 3 else None
            if name == "":
                raise ValueError(f"line {number}: %N without a name")
        elif name is not None and not line.startswith("%"):
            values = line.split()
            if len(values) < 3:
                raise ValueError(f"line {number}: {name} has {len(values)} coordinate(s), not x, y, z")
            if name in positions:
                raise BrainForgeError(f"--positions {path.name}: {name} is named twice; keep one.")
            positions[name] = np.array(values[:3], float)
            name = None
    if name is not None:
        raise ValueError(f"{name}, the last electrode, has no line of x, y, z")
    if len(fiducials) != 3:
        raise ValueError(f"{len(fiducials)} fiducial (%F) line(s), not the nasion, LPA and RPA")
    if not positions:
        raise ValueError("no electrode (a %N name line followed by x, y, z)")
    nasion, lpa, rpa = fiducials
    return mne.channels.make_dig_montage(positions, nasion=nasion, lpa=lpa, rpa=rpa, coord_frame="unknown")


def _read_egi_coordinates(path: Path):
    """Read an EGI ``coordinates.xml`` (an MFF's, or a net's exported on its own) into a DigMontage, m.

    Sensors of type 0 (EEG) and 1 (the reference) are electrodes, named as MNE's MFF reader names them:
    their ``name`` when given, else ``E`` and their number. Sensors of type 2 named ``Nasion``, ``Left
    periauricular point`` and ``Right periauricular point`` are the fiducials; other sensors are skipped.
    Coordinates are in cm.
    """
    import defusedxml.ElementTree
    import mne

    def field(sensor, tag: str) -> str:
        found = next((child for child in sensor if child.tag.rsplit("}", 1)[-1] == tag), None)
        return (found.text or "").strip() if found is not None else ""

    root = defusedxml.ElementTree.parse(path).getroot()
    sensors = [element for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "sensor"]
    if not sensors:
        raise BrainForgeError(f"--positions {path.name}: no <sensor> elements; .xml is read as an EGI coordinates.xml.")
    positions: dict[str, np.ndarray] = {}
    fiducials: dict[str, np.ndarray] = {}
    for sensor in sensors:
        kind, name, number = field(sensor, "type"), field(sensor, "name"), field(sensor, "number")
        fiducial = kind == "2" and name in EGI_FIDUCIALS
        if not fiducial and kind not in ("0", "1"):
            continue
        try:
            position = np.array([float(field(sensor, axis)) for axis in "xyz"]) * EGI_UNIT_M
        except ValueError as err:
            raise ValueError(f"sensor {name or number}: {err}") from err
        if fiducial:
            fiducials[EGI_FIDUCIALS[name]] = position
            continue
        name = name if name and name != "None" else f"E{int(number)}"
        if name in positions:
            raise BrainForgeError(f"--positions {path.name}: two sensors are named {name}; keep one.")
        positions[name] = position
    return mne.channels.make_dig_montage(positions, coord_frame="unknown", **fiducials)


def _refuse_repeated_dat_names(path: Path) -> None:
    """Refuse a Neuroscan ``.dat`` naming an electrode twice (MNE's reader warns and keeps the last)."""
    seen: set[str] = set()
    with path.open(encoding="utf-8", errors="replace") as file:
        for line in file:
            items = line.split()
            if len(items) < 2 or items[1] in DAT_NON_ELECTRODE_CODES:
                continue
            if items[0] in seen:
                raise BrainForgeError(f"--positions {path.name}: {items[0]} has two rows; keep one.")
            seen.add(items[0])


def _read_montage(path: Path, polhemus: bool = False):
    """Read a DigMontage with the reader for the file's ending (lower-case); measured positions keep their scale.

    ``polhemus`` says that a ``.elp`` is Polhemus's (:func:`_is_polhemus_elp`), not BESA's.
    """
    import mne

    suffix = path.suffix.lower()
    if suffix == ".fif":
        return mne.channels.read_dig_fif(path)
    if suffix == ".bvct":
        # MNE imports the package only, and its parser needs the submodule loaded.
        import defusedxml.ElementTree  # noqa: F401

        return mne.channels.read_dig_captrak(path)
    if suffix == ".xml":
        return _read_egi_coordinates(path)
    if suffix == ".dat":
        _refuse_repeated_dat_names(path)
        return mne.channels.read_dig_dat(path)
    if suffix == ".hpts":
        return mne.channels.read_dig_hpts(path, unit="m")  # the unit is chosen afterwards, by the head's size
    if suffix in (".tsv", ".csv"):
        return _read_position_table(path)
    if suffix == ".elp" and polhemus:
        return _read_polhemus_elp(path)
    spherical = suffix in SPHERICAL_POSITION_FORMATS
    return mne.channels.read_custom_montage(path, head_size=STANDARD_HEAD_RADIUS_MM * 1e-3 if spherical else None)


def _scale(montage, to_m: float) -> None:
    """Multiply every point of a DigMontage (channels, fiducials, head shape) by ``to_m``."""
    for point in montage.dig:
        point["r"] = point["r"] * to_m


def _choose_unit(montage, path: Path, stated_m: float | None) -> list[str]:
    """Scale a montage of unit-less coordinates to m: the stated unit, else the one that makes a head-sized sphere."""
    if stated_m is not None:
        _scale(montage, stated_m)
        return []
    channel_pos = np.array(list(montage.get_positions()["ch_pos"].values()), float)
    radius = _fitted_sphere(channel_pos)[1]  # in the file's units
    low, high = HEAD_RADIUS_RANGE_MM
    for unit, to_m in UNITS_M.items():
        if low <= radius * to_m * 1e3 <= high:
            _scale(montage, to_m)
            return [f"{path.name} states no unit; its coordinates were read as {unit} (the head's size)."]
    return []


def _place_spherical(positions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Place the directions of a spherical format (m, head frame).

    10-05 names go to their standard positions; others onto the standard positions' sphere, in their
    direction from the centre of the sphere fitted to the file's points (its fiducials may have moved
    the origin off that centre).
    """
    names = list(positions)
    placed_m = np.array(list(positions.values()))
    centre_m = _fitted_sphere(placed_m)[0]
    directions = (placed_m - centre_m) / np.linalg.norm(placed_m - centre_m, axis=1, keepdims=True)
    on_sphere_m = (STANDARD_HEAD_CENTRE_MM + STANDARD_HEAD_RADIUS_MM * directions) * 1e-3
    standard_m = standard_positions_m(names)
    known = np.isfinite(standard_m).all(axis=1)
    return dict(zip(names, np.where(known[:, None], standard_m, on_sphere_m), strict=True))


def _readable_copy(path: Path, folder: str) -> Path:
    """``path`` itself, or a copy in ``folder`` with a lower-case ending (MNE's readers check endings by case)."""
    if path.suffix == path.suffix.lower():
        return path
    return Path(shutil.copy(path, Path(folder) / (path.stem + path.suffix.lower())))


def _check_fiducials(nasion_m: np.ndarray, lpa_m: np.ndarray, rpa_m: np.ndarray, path: Path) -> None:
    """Refuse fiducials that cannot define a frame: LPA on RPA, or the nasion on the line through them."""
    ears_m = rpa_m - lpa_m
    ears_mm = float(np.linalg.norm(ears_m)) * 1e3
    axis = ears_m / max(ears_mm * 1e-3, 1e-12)
    offset = nasion_m - lpa_m
    nasion_off_mm = float(np.linalg.norm(offset - (offset @ axis) * axis)) * 1e3
    if min(ears_mm, nasion_off_mm) < MIN_FIDUCIAL_SPREAD_MM:
        raise BrainForgeError(
            f"--positions {path.name}: its fiducials cannot define the head frame (LPA to RPA {ears_mm:.0f} mm, "
            f"nasion {nasion_off_mm:.0f} mm off the line through them; placeholders?); give the digitized "
            "nasion, LPA and RPA."
        )


def _head_frame_positions(montage, path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Positions of a montage's channels in MNE's head frame, m, through its fiducials; and notes."""
    import mne

    found = montage.get_positions()
    not_finite = [name for name, pos in found["ch_pos"].items() if not np.isfinite(pos).all()]
    fiducials = [key for key in ("nasion", "lpa", "rpa") if found[key] is not None]
    not_finite += [key for key in fiducials if not np.isfinite(found[key]).all()]
    if not_finite:
        raise BrainForgeError(
            f"--positions {path.name}: {', '.join(not_finite[:5])}{' ...' if len(not_finite) > 5 else ''} "
            "has coordinates that are not finite numbers (NaN or inf); give numbers, or leave the row out."
        )
    notes = []
    if found["coord_frame"] != "head" and any(found[key] is None for key in ("nasion", "lpa", "rpa")):
        notes.append(
            f"{path.name} lacks the nasion, LPA or RPA: its coordinates were taken as MNE head coordinates "
            "(+x right ear, +y nasion, +z up)."
        )
    elif found["coord_frame"] != "head":
        _check_fiducials(found["nasion"], found["lpa"], found["rpa"], path)
    names = list(montage.ch_names)
    info = mne.create_info(names, 1000.0, "eeg")
    with warnings.catch_warnings():  # MNE warns when it assumes the identity transform without fiducials
        warnings.simplefilter("ignore", RuntimeWarning)
        info.set_montage(montage, on_missing="ignore")
    positions = file_positions_m(info)
    return {name: pos for name, pos in zip(names, positions, strict=True) if np.isfinite(pos).all()}, notes


def _check_on_a_head(positions_m: np.ndarray, path: Path) -> None:
    """Refuse positions that are flat, or whose fitted sphere is not a head around the standard centre."""
    centred = positions_m - positions_m.mean(axis=0)
    spread = np.linalg.svd(centred, compute_uv=False)
    if spread[-1] < MIN_FLATNESS * spread[0]:
        raise BrainForgeError(
            f"--positions {path.name}: the positions lie nearly in a plane (a 2-D layout?); give 3-D positions."
        )
    centre_mm, radius_mm = _fitted_sphere(positions_m * 1e3)
    off_mm = float(np.linalg.norm(centre_mm - STANDARD_HEAD_CENTRE_MM))
    low, high = HEAD_RADIUS_RANGE_MM
    if not (low <= radius_mm <= high and off_mm <= HEAD_CENTRE_TOLERANCE_MM):
        raise BrainForgeError(
            f"--positions {path.name}: the positions do not lie on a head in MNE's head frame (fitted sphere: "
            f"radius {radius_mm:.0f} mm, centre {off_mm:.0f} mm from the standard one); check the file's units "
            "and that it holds the fiducials (nasion, LPA, RPA) of the digitization."
        )


def read_positions(path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read electrode positions from a digitization or montage file into MNE's head frame.

    The file's fiducials (nasion, LPA, RPA) define the head frame, as in
    :meth:`mne.Info.set_montage`; a file without them is taken to be in head
    coordinates already (a note says so). Where a format states no unit
    (``.sfp``, ``.xyz``, ``.csv``, ``.tsv``, ``.hpts``, Neuroscan ``.dat``, a
    Polhemus ``.elp``), the unit of a BIDS sidecar is used, else m, cm or mm,
    whichever makes the fitted sphere head-sized; an EGI ``coordinates.xml``
    is in cm. Spherical formats (``.loc``, ``.txt``, BESA's ``.elp``, ...)
    hold directions, not where the cap sat: 10-05 names are placed at their
    standard positions, others on the standard positions' sphere.
    Positions that lie nearly in a plane, or whose fitted sphere has a radius
    outside 60-140 mm or a centre more than 50 mm from that of the standard
    positions, are refused.

    Parameters
    ----------
    path : path
        Any format in :data:`POSITION_FILE_FORMATS`.

    Returns
    -------
    positions : dict of str to array, shape (3,)
        Position of each named electrode, m, MNE head frame.
    notes : list of str
        How the file was read, for the output's notes.
    """
    path = Path(path)
    check_positions_file(path)
    suffix = path.suffix.lower()
    sidecar = _bids_sidecar(path)
    stated_m = _read_bids_sidecar(path, sidecar) if sidecar is not None else None
    try:
        polhemus = suffix == ".elp" and _is_polhemus_elp(path)
        spherical = suffix in SPHERICAL_POSITION_FORMATS and not polhemus
        with tempfile.TemporaryDirectory() as folder:
            montage = _read_montage(_readable_copy(path, folder), polhemus)
        notes = _choose_unit(montage, path, stated_m) if suffix in UNITLESS_POSITION_FORMATS or polhemus else []
        positions, frame_notes = _head_frame_positions(montage, path)
    except BrainForgeError:
        raise
    except Exception as err:  # MNE's readers raise many types for malformed files
        raise BrainForgeError(
            f"--positions {path.name}: cannot read electrode positions ({error_reason(err)})."
        ) from err
    if len(positions) < MIN_POSITIONS:
        raise BrainForgeError(
            f"--positions {path.name}: {len(positions)} electrode position(s) in the file; at least {MIN_POSITIONS} "
            "are needed."
        )
    if spherical:
        positions = _place_spherical(positions)
        frame_notes = [
            f"{path.name} holds directions on a sphere, not measured positions: 10-05 names were placed at their "
            "standard positions, others on the standard positions' sphere; not co-registered."
        ]
    _check_on_a_head(np.array(list(positions.values())), path)
    return positions, notes + frame_notes


def rotation_deg(source_m: np.ndarray, target_m: np.ndarray) -> float:
    """Angle of the rotation of the best rigid fit (Kabsch) of ``source_m`` onto ``target_m``, degrees."""
    source = source_m - source_m.mean(axis=0)
    target = target_m - target_m.mean(axis=0)
    u, _, vt = np.linalg.svd(source.T @ target)
    sign = 1.0 if np.linalg.det(vt.T @ u.T) >= 0 else -1.0
    rotation = vt.T @ np.diag([1.0, 1.0, sign]) @ u.T
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))
