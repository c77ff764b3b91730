"""Source-imaging networks: the CNN-Transformer and the published DeepSIF, ConvDip and dual-path GRU.

A :class:`ChannelCountRouter` holds two trained relatives of one network and applies one by channel count.
"""

from .base import MODELS, SourceModel, build_model, check_model_params
from .cnn_transformer import CNNTransformer, CNNTransformerConfig
from .convdip import ConvDip, ConvDipConfig
from .deepsif import DeepSIF, DeepSIFConfig
from .gru import DualPathGRU, GRUConfig
from .io import default_model_dir, load_model, load_weights, save_model
from .router import ChannelCountRouter, ChannelCountRouterConfig, combine_by_channel_count

__all__ = [
    "MODELS",
    "CNNTransformer",
    "CNNTransformerConfig",
    "ChannelCountRouter",
    "ChannelCountRouterConfig",
    "ConvDip",
    "ConvDipConfig",
    "DeepSIF",
    "DeepSIFConfig",
    "DualPathGRU",
    "GRUConfig",
    "SourceModel",
    "build_model",
    "check_model_params",
    "combine_by_channel_count",
    "default_model_dir",
    "load_model",
    "load_weights",
    "save_model",
]
