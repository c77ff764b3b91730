"""Two trained networks in one model: one for low-density montages, one for the rest, chosen by channel count."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .._config import config_from_dict
from .._errors import BrainForgeError
from ..topomap import Montage
from .base import MODELS, SourceModel, register


@dataclass(frozen=True)
class ChannelCountRouterConfig:
    """Hyper-parameters of :class:`ChannelCountRouter`.

    Parameters
    ----------
    member : str
        Registered name of both member networks; it must take any montage
        (``cnn_transformer``, ``convdip``).
    member_params : dict
        The members' hyper-parameters (both members are the same network).
    sparse_max_channels : int
        EEG with at most this many channels goes to the ``sparse`` member,
        more to the ``dense`` member.
    """

    member: str = "cnn_transformer"
    member_params: dict = field(default_factory=dict)
    sparse_max_channels: int = 32

    def __post_init__(self) -> None:
        if self.member not in MODELS or self.member == ChannelCountRouter.name:
            known = ", ".join(sorted(n for n in MODELS if n != ChannelCountRouter.name))
            raise BrainForgeError(f"Unknown router member {self.member!r}; choose from {known}.")
        if not MODELS[self.member].any_montage:
            raise BrainForgeError(
                f"A channel-count router needs members that take any montage; {self.member} does not."
            )
        if self.sparse_max_channels < 1:
            raise BrainForgeError(f"sparse_max_channels must be at least 1, got {self.sparse_max_channels}.")


@register
class ChannelCountRouter(SourceModel):
    """Apply one of two networks by the montage's channel count.

    Training draws random channel subsets so that one network serves every
    montage, but a network fine-tuned on low-density subsets only (16-32
    channels) localizes better there and worse on dense caps. This model
    holds both, trained separately (``brainforge train --init``), and sends
    EEG with at most ``sparse_max_channels`` channels to ``sparse``, the rest
    to ``dense``. Each call uses one member, so inference costs what one
    network costs; the weights are the two members' (prefixed ``dense.`` and
    ``sparse.``). Build one from two trained folders with
    :func:`combine_by_channel_count`.

    Parameters
    ----------
    config : ChannelCountRouterConfig
        Member network, its hyper-parameters and the channel threshold.
    n_regions : int
        Output regions.
    montage : Montage
        The training montage (both members').
    """

    name = "channel_count_router"
    config_class = ChannelCountRouterConfig
    any_montage = True

    def __init__(self, config: ChannelCountRouterConfig, n_regions: int, montage: Montage):
        super().__init__(config, n_regions, montage)
        cls = MODELS[config.member]
        member_config = config_from_dict(cls.config_class, config.member_params)
        self.dense = cls(member_config, n_regions, montage)
        self.sparse = cls(member_config, n_regions, montage)

    def member_for(self, montage: Montage | None = None) -> SourceModel:
        """Return the member that EEG recorded with ``montage`` (None: the training montage) goes to."""
        n_channels = (montage or self.montage).n_channels
        return self.sparse if n_channels <= self.config.sparse_max_channels else self.dense

    def forward(self, eeg: torch.Tensor, montage: Montage | None = None) -> torch.Tensor:
        """Source activity (B, T, R) from the member that fits the montage's channel count."""
        return self.member_for(montage)(eeg, montage)


def combine_by_channel_count(
    dense: SourceModel, sparse: SourceModel, sparse_max_channels: int = 32
) -> ChannelCountRouter:
    """Put two trained relatives of one network into a :class:`ChannelCountRouter`.

    Parameters
    ----------
    dense : SourceModel
        The network for montages with more than ``sparse_max_channels`` channels.
    sparse : SourceModel
        The same network (same hyper-parameters, regions and training
        montage) fine-tuned for low-density montages.
    sparse_max_channels : int
        Channel counts up to this go to ``sparse``.

    Returns
    -------
    router : ChannelCountRouter
        In eval mode, holding copies of both members' weights.
    """
    if isinstance(dense, ChannelCountRouter) or isinstance(sparse, ChannelCountRouter):
        raise BrainForgeError("Combine two plain networks, not a router.")
    for label, (a, b) in {
        "network": (dense.name, sparse.name),
        "hyper-parameters": (dense.hyper_parameters(), sparse.hyper_parameters()),
        "number of regions": (dense.n_regions, sparse.n_regions),
        "training montage": (dense.montage.ch_names, sparse.montage.ch_names),
    }.items():
        if a != b:
            raise BrainForgeError(f"The two networks differ in their {label}; a router needs one network twice.")
    config = ChannelCountRouterConfig(dense.name, dense.hyper_parameters(), sparse_max_channels)
    router = ChannelCountRouter(config, dense.n_regions, dense.montage)
    router.dense.load_state_dict(dense.state_dict())
    router.sparse.load_state_dict(sparse.state_dict())
    return router.eval()
