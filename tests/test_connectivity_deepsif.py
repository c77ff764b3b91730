import zipfile

import numpy as np
import pytest

from brainforge import BrainForgeError
from brainforge.anatomy import get_electrodes, load_deepsif_anatomy, read_connectivity
from brainforge.anatomy.bem import make_template_bem
from brainforge.anatomy.deepsif import deepsif_region_node
from brainforge.anatomy.forward import compute_leadfield
from brainforge.anatomy.head_model import region_sum
from brainforge.anatomy.montage import Electrodes, project_to_scalp

from .conftest import correlation


def test_tvb_data_connectomes():
    conn = read_connectivity("tvb76")
    assert conn.n_nodes == 76 and conn.weights.shape == (76, 76)
    assert (conn.tract_lengths >= 0).all() and conn.centres.shape == (76, 3)
    conn192 = read_connectivity("tvb192")  # the one with subcortical nuclei (files in a sub-folder)
    assert conn192.n_nodes == 192 and conn192.cortical is not None and not conn192.cortical.all()


def test_connectivity_errors(tmp_path):
    with pytest.raises(BrainForgeError, match="not found"):
        read_connectivity(tmp_path / "missing.zip")
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    with pytest.raises(BrainForgeError, match="not a valid zip"):
        read_connectivity(bad)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "nothing")
    with pytest.raises(BrainForgeError, match=r"weights\.txt"):
        read_connectivity(empty)
    # Comma-separated numbers with a header line, as a spreadsheet exports them.
    csv = tmp_path / "csv.zip"
    with zipfile.ZipFile(csv, "w") as z:
        z.writestr("weights.txt", "a,b\n0,1\n1,0\n")
        z.writestr("tract_lengths.txt", "a,b\n0,9\n9,0\n")
        z.writestr("centres.txt", "A 0 0 0\nB 1 1 1\n")
    with pytest.raises(BrainForgeError, match=r"csv.zip is not in TVB's connectivity format"):
        read_connectivity(csv)


def test_deepsif_node_mapping():
    node = deepsif_region_node()
    assert node.shape == (994,)
    assert node[7] == 994 and node[325] == 997 and node[921] == 996 and node[949] == 995
    assert len(np.unique(node)) == 994


@pytest.fixture(scope="module")
def deepsif(deepsif_dir):
    return load_deepsif_anatomy(deepsif_dir)


def test_load_deepsif_anatomy(deepsif):
    assert deepsif.n_regions == 994 and deepsif.n_channels == 75
    assert deepsif.region_leadfield.shape == (75, 994) and deepsif.leadfield is None
    assert deepsif.n_sources == 20484
    adjacency = deepsif.region_adjacency.toarray()
    np.testing.assert_array_equal(adjacency, adjacency.T)
    assert adjacency.sum(axis=1).min() > 0
    assert deepsif.connectivity.n_nodes == 998
    # Region centres ~7.4 mm from the nearest other centre (shared/data README).
    distance = deepsif.region_distance_mm + np.eye(994) * 1e9
    assert 6 < np.median(distance.min(axis=1)) < 9


def test_our_bem_matches_the_published_leadfield(deepsif, surfaces):
    """Our independent BEM vs DeepSIF's 75x994 leadfield, region by region."""
    names = [n for n in deepsif.ch_names if n not in ("Nz", "TP11", "TP12")]
    assert len(names) == 72
    electrodes = get_electrodes(names)
    on_scalp = project_to_scalp(electrodes.pos, surfaces.centre, surfaces.outer_skin, surfaces.outer_skin_tris)
    leadfield = compute_leadfield(
        deepsif.source_pos_mm, deepsif.source_nn, Electrodes(names, on_scalp), make_template_bem(surfaces=surfaces)
    )
    ours = region_sum(leadfield, deepsif.source_region, deepsif.n_regions)
    published = deepsif.pick_channels(names).region_leadfield
    corr = correlation(ours, published)
    print(f"median topography correlation with the published leadfield: {np.median(corr):.3f}")
    assert np.median(corr) > 0.88


def test_deepsif_errors(tmp_path):
    with pytest.raises(BrainForgeError, match="folder not found"):
        load_deepsif_anatomy(tmp_path / "nope")
    with pytest.raises(BrainForgeError, match=r"fs_cortex_20k\.mat"):
        load_deepsif_anatomy(tmp_path)


def test_fetch_deepsif_anatomy_from_local_files(tmp_path):
    from brainforge.anatomy.deepsif import DEEPSIF_EXTRA_FILES, DEEPSIF_FILES, fetch_deepsif_anatomy

    source = tmp_path / "mirror"
    source.mkdir()
    for i, name in enumerate(DEEPSIF_FILES + DEEPSIF_EXTRA_FILES):
        (source / name).write_bytes(bytes([i]) * (100 + i))
    dest = fetch_deepsif_anatomy(tmp_path / "anatomy", base_url=source.as_uri())
    for i, name in enumerate(DEEPSIF_FILES + DEEPSIF_EXTRA_FILES):
        assert (dest / name).read_bytes() == bytes([i]) * (100 + i)
    # Existing files are kept; a missing one fails with a clear error and leaves no partial file.
    (source / "fs_cortex_20k.mat").write_bytes(b"changed")
    fetch_deepsif_anatomy(dest, base_url=source.as_uri())
    assert (dest / "fs_cortex_20k.mat").read_bytes() != b"changed"
    (source / "electrode_75.mat").unlink()
    with pytest.raises(BrainForgeError, match="Could not download"):
        fetch_deepsif_anatomy(tmp_path / "other", base_url=source.as_uri())
    assert not (tmp_path / "other" / "electrode_75.mat").exists()
    assert not [p for p in (tmp_path / "other").iterdir() if p.name.startswith(".")]


def test_tvb_data_centres_are_ras():
    conn = read_connectivity("tvb76")
    centre = dict(zip(conn.labels, conn.centres, strict=True))
    assert centre["rV1"][0] > 0 > centre["lV1"][0]  # right is +x
    assert centre["rPFCORB"][1] > 0 > centre["rV1"][1]  # anterior is +y
    assert centre["rM1"][2] > centre["rAMYG"][2]  # up is +z


def test_nearest_centre_mapping_reproduces_the_published_one(deepsif):
    from brainforge.anatomy.connectivity import map_regions_to_nodes

    node = map_regions_to_nodes(deepsif.connectivity, deepsif.region_centres_mm)
    agree = np.mean(node == deepsif.region_node)
    print(f"nearest-centre mapping agrees with DeepSIF's region -> node rule for {agree:.1%} of regions")
    assert agree > 0.8


def test_template_regions_map_to_tvb76_by_hemisphere(head64):
    from brainforge.anatomy.connectivity import map_regions_to_nodes

    conn = read_connectivity("tvb76")
    node = map_regions_to_nodes(conn, head64.region_centres_mm)
    region_side = np.sign(head64.region_centres_mm[:, 0])
    node_side = np.array([1 if conn.labels[n].startswith("r") else -1 for n in node])
    assert np.mean(region_side == node_side) > 0.9
    assert len(np.unique(node)) > 60  # most nodes drive some region
