"""Head models: sources, parcellation, electrodes, conductor models and leadfields."""

from .connectivity import Connectivity, read_connectivity
from .cortex import load_fsaverage5_cortex
from .deepsif import fetch_deepsif_anatomy, load_deepsif_anatomy
from .forward_bank import ForwardBank, ForwardBankConfig, make_forward_bank, read_forward_bank
from .head_model import HeadModel, HeadModelConfig, make_head_model, read_head_model
from .labels import region_labels
from .montage import CHANNEL_SUBSETS, available_montages, get_electrodes

__all__ = [
    "CHANNEL_SUBSETS",
    "Connectivity",
    "ForwardBank",
    "ForwardBankConfig",
    "HeadModel",
    "HeadModelConfig",
    "available_montages",
    "fetch_deepsif_anatomy",
    "get_electrodes",
    "load_deepsif_anatomy",
    "load_fsaverage5_cortex",
    "make_forward_bank",
    "make_head_model",
    "read_connectivity",
    "read_forward_bank",
    "read_head_model",
    "region_labels",
]
