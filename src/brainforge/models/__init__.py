"""Source-imaging networks: the CNN-Transformer and the published DeepSIF, ConvDip and dual-path GRU."""

from .base import MODELS, SourceModel, build_model, normalise_batch
from .cnn_transformer import CNNTransformer, CNNTransformerConfig
from .convdip import ConvDip, ConvDipConfig
from .deepsif import DeepSIF, DeepSIFConfig
from .gru import DualPathGRU, GRUConfig
from .io import load_model, load_weights, save_model

__all__ = [
    "MODELS",
    "CNNTransformer",
    "CNNTransformerConfig",
    "ConvDip",
    "ConvDipConfig",
    "DeepSIF",
    "DeepSIFConfig",
    "DualPathGRU",
    "GRUConfig",
    "SourceModel",
    "build_model",
    "load_model",
    "load_weights",
    "normalise_batch",
    "save_model",
]
