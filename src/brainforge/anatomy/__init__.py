"""Head models: sources, parcellation, electrodes, conductor models and leadfields."""

from .bem import (
    DEFAULT_CONDUCTIVITY,
    BemSurfaces,
    make_template_bem,
    make_template_bem_surfaces,
    make_template_sphere,
)
from .connectivity import TVB_DATA_CONNECTOMES, Connectivity, map_regions_to_nodes, read_connectivity
from .cortex import Cortex, load_fsaverage5_cortex, make_parcellation
from .deep import DeepSources, make_deep_sources, subcortical_roi_centres
from .deepsif import deepsif_region_node, fetch_deepsif_anatomy, load_deepsif_anatomy
from .forward import compute_leadfield
from .forward_bank import CapPlacement, ForwardBank, ForwardBankConfig, make_forward_bank, read_forward_bank
from .head_model import HeadModel, HeadModelConfig, make_head_model, read_head_model, region_sum
from .labels import RegionLabel, region_labels
from .montage import CHANNEL_SUBSETS, Electrodes, available_montages, dense_channel_names, get_electrodes

__all__ = [
    "CHANNEL_SUBSETS",
    "DEFAULT_CONDUCTIVITY",
    "TVB_DATA_CONNECTOMES",
    "BemSurfaces",
    "CapPlacement",
    "Connectivity",
    "Cortex",
    "DeepSources",
    "Electrodes",
    "ForwardBank",
    "ForwardBankConfig",
    "HeadModel",
    "HeadModelConfig",
    "RegionLabel",
    "available_montages",
    "compute_leadfield",
    "deepsif_region_node",
    "dense_channel_names",
    "fetch_deepsif_anatomy",
    "get_electrodes",
    "load_deepsif_anatomy",
    "load_fsaverage5_cortex",
    "make_deep_sources",
    "make_forward_bank",
    "make_head_model",
    "make_parcellation",
    "make_template_bem",
    "make_template_bem_surfaces",
    "make_template_sphere",
    "map_regions_to_nodes",
    "read_connectivity",
    "read_forward_bank",
    "read_head_model",
    "region_labels",
    "region_sum",
    "subcortical_roi_centres",
]
