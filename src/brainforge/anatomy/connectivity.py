"""Structural connectomes in The Virtual Brain's zip format."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import BrainForgeError

#: Connectomes that the ``tvb-data`` package ships, by short name.
TVB_DATA_CONNECTOMES = {
    "tvb66": "connectivity_66.zip",
    "tvb68": "connectivity_68.zip",
    "tvb76": "connectivity_76.zip",
    "tvb96": "connectivity_96.zip",
    "tvb192": "connectivity_192.zip",
}


@dataclass(frozen=True)
class Connectivity:
    """A structural connectome.

    Attributes
    ----------
    weights : array, shape (n_nodes, n_nodes)
        Connection strengths (TVB convention: ``weights[i, j]`` is the
        connection from node ``j`` to node ``i``).
    tract_lengths : array, shape (n_nodes, n_nodes)
        Tract lengths, mm.
    centres : array, shape (n_nodes, 3)
        Node positions, mm, with RAS axes (x right, y anterior, z up).
        tvb-data's files list (anterior, left, superior); the reader turns
        them to RAS. Other zips are taken as RAS.
    labels : list of str
        Node names.
    areas : array, shape (n_nodes,) | None
        Node areas, mm^2, when the file has them.
    cortical : array of bool, shape (n_nodes,) | None
        Which nodes are cortical, when the file says.
    """

    weights: np.ndarray
    tract_lengths: np.ndarray
    centres: np.ndarray
    labels: list[str]
    areas: np.ndarray | None = None
    cortical: np.ndarray | None = None

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.labels)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Fields as arrays (for ``.npz`` files)."""
        out = {
            "weights": self.weights,
            "tract_lengths": self.tract_lengths,
            "centres": self.centres,
            "labels": np.array(self.labels),
        }
        if self.areas is not None:
            out["areas"] = self.areas
        if self.cortical is not None:
            out["cortical"] = self.cortical
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Connectivity:
        """Inverse of :meth:`to_arrays`."""
        return cls(
            weights=arrays["weights"],
            tract_lengths=arrays["tract_lengths"],
            centres=arrays["centres"],
            labels=[str(n) for n in arrays["labels"]],
            areas=arrays.get("areas"),
            cortical=arrays.get("cortical"),
        )


def _tvb_data_to_ras(centres: np.ndarray) -> np.ndarray:
    """tvb-data's centres list (anterior, left, superior); return (right, anterior, superior)."""
    return np.c_[-centres[:, 1], centres[:, 0], centres[:, 2]]


def _tvb_data_zip(name: str) -> Path:
    try:
        import tvb_data
    except ImportError as err:  # pragma: no cover - tvb-data is a dependency
        raise BrainForgeError("The tvb-data package is not installed; `pip install tvb-data`.") from err
    return Path(tvb_data.__file__).parent / "connectivity" / TVB_DATA_CONNECTOMES[name]


def read_connectivity(source: str | Path) -> Connectivity:
    """Read a TVB connectivity zip (weights, tract lengths, centres, labels).

    Parameters
    ----------
    source : str | Path
        A path to a TVB zip (files may sit in a sub-folder of the zip), or
        the name of a connectome that ``tvb-data`` ships: ``"tvb66"``,
        ``"tvb68"``, ``"tvb76"``, ``"tvb96"``, ``"tvb192"``.

    Returns
    -------
    connectivity : Connectivity
    """
    from_tvb_data = isinstance(source, str) and source in TVB_DATA_CONNECTOMES
    path = _tvb_data_zip(source) if from_tvb_data else Path(source)
    if not path.is_file():
        names = ", ".join(TVB_DATA_CONNECTOMES)
        raise BrainForgeError(f"Connectivity file not found: {path}. Give a TVB zip or one of: {names}.")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {Path(n).name: n for n in archive.namelist() if not n.endswith("/")}

            def read(name: str) -> bytes | None:
                member = members.get(name)
                return None if member is None else archive.read(member)

            weights, lengths, centres = read("weights.txt"), read("tract_lengths.txt"), read("centres.txt")
            if weights is None or lengths is None or centres is None:
                raise BrainForgeError(
                    f"{path.name} is not a TVB connectivity zip: "
                    "it needs weights.txt, tract_lengths.txt and centres.txt."
                )
            areas, cortical = read("areas.txt"), read("cortical.txt")
    except zipfile.BadZipFile as err:
        raise BrainForgeError(f"{path} is not a valid zip file ({err}).") from err
    try:
        weights_arr = np.loadtxt(io.BytesIO(weights))
        lengths_arr = np.loadtxt(io.BytesIO(lengths))
        rows = [line.split() for line in centres.decode().splitlines() if line.strip()]
        labels = [row[0] for row in rows]
        centres_arr = np.array([[float(v) for v in row[1:4]] for row in rows])
        if centres_arr.shape != (len(rows), 3):
            raise ValueError("each line of centres.txt needs a label and three coordinates")
        conn = Connectivity(
            weights=weights_arr,
            tract_lengths=lengths_arr,
            centres=_tvb_data_to_ras(centres_arr) if from_tvb_data else centres_arr,
            labels=labels,
            areas=None if areas is None else np.loadtxt(io.BytesIO(areas)),
            cortical=None if cortical is None else np.loadtxt(io.BytesIO(cortical)).astype(bool),
        )
    except (ValueError, IndexError, UnicodeDecodeError) as err:
        raise BrainForgeError(
            f"{path.name} is not in TVB's connectivity format ({err}): weights.txt and tract_lengths.txt hold "
            "whitespace-separated numbers, one row per region, and centres.txt a label and x y z per line."
        ) from err
    n = len(labels)
    if conn.weights.shape != (n, n) or conn.tract_lengths.shape != (n, n):
        raise BrainForgeError(
            f"{path.name}: weights {conn.weights.shape} and tract lengths {conn.tract_lengths.shape} "
            f"do not match {n} centres."
        )
    return conn


def is_connectome_file(source) -> bool:
    """Whether ``source`` names a connectome file (a name that tvb-data ships never does, whatever is here)."""
    return not (isinstance(source, str) and source in TVB_DATA_CONNECTOMES) and Path(source).is_file()


def map_regions_to_nodes(conn: Connectivity, region_centres_mm: np.ndarray) -> np.ndarray:
    """Connectome node that drives each head-model region: the nearest centre.

    Both point sets are centred on their means and scaled to the same RMS
    radius before matching, since connectome and head model need not share
    an origin or a scale (their axes must both be RAS).

    Parameters
    ----------
    conn : Connectivity
        The connectome.
    region_centres_mm : array, shape (n_regions, 3)
        Head-model region centres, mm (RAS).

    Returns
    -------
    node : array of int, shape (n_regions,)
    """
    from scipy.spatial import cKDTree

    def normalize(points: np.ndarray) -> np.ndarray:
        centred = points - points.mean(axis=0)
        return centred / np.sqrt((centred**2).sum(axis=1).mean())

    return cKDTree(normalize(np.asarray(conn.centres, float))).query(normalize(region_centres_mm))[1]
