"""Source-imaging networks: the CNN-Transformer and the published DeepSIF, ConvDip and dual-path GRU."""

from .base import MODELS, SourceModel, build_model
from .cnn_transformer import CNNTransformer, CNNTransformerConfig
from .convdip import ConvDip, ConvDipConfig
from .deepsif import DeepSIF, DeepSIFConfig
from .gru import DualPathGRU, GRUConfig
from .io import default_model_dir, load_model, load_weights, save_model

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
    "default_model_dir",
    "load_model",
    "load_weights",
    "save_model",
]
