"""Two trained networks in one model: one for low-density montages, one for the rest, chosen by channel count."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
        The members' hyper-parameters (both members are the same network);
        checked against the member's config class and stored complete, with
        its defaults filled in.
    sparse_max_channels : int
        EEG with at most this many channels goes to the ``sparse`` member,
        more to the ``dense`` member.
    """

    member: str = "cnn_transformer"
    member_params: dict[str, Any] = field(default_factory=dict)
    sparse_max_channels: int = 32

    def __post_init__(self) -> None:
        members = sorted(n for n, cls in MODELS.items() if cls.any_montage and n != ChannelCountRouter.name)
        if self.member not in MODELS:
            raise BrainForgeError(f"Unknown router member {self.member!r}; choose from {', '.join(members)}.")
        if self.member not in members:
            raise BrainForgeError(
                f"A channel-count router needs members that take any montage; {self.member} does not "
                f"(choose from {', '.join(members)})."
            )
        if self.sparse_max_channels < 1:
            raise BrainForgeError(f"sparse_max_channels must be at least 1, got {self.sparse_max_channels}.")
        # One form whatever the source (keyword, JSON lists or tuples): the member's full config as a dict.
        member_config = config_from_dict(MODELS[self.member].config_class, dict(self.member_params))
        object.__setattr__(self, "member_params", asdict(member_config))


@register
class ChannelCountRouter(SourceModel):
    """Apply one of two networks by the montage's channel count.

    Training draws random channel subsets so that one network serves every
    montage; a copy fine-tuned on low-density subsets only (16-32 channels)
    can do better there at a cost on dense caps. This model holds both,
    trained separately (``brainforge train --init``), and sends EEG with at
    most ``sparse_max_channels`` channels to ``sparse``, the rest to
    ``dense``. Each call runs one member, so inference costs what one network
    costs; the weights are the two members' (prefixed ``dense.`` and
    ``sparse.``), and ``n_parameters`` counts both. Build one from two trained
    models with :func:`combine_by_channel_count` (from two folders:
    ``scripts/combine_by_channel_count.py``).

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
    dense_params, sparse_params = dense.hyper_parameters(), sparse.hyper_parameters()
    differences = {
        "network": f"{dense.name} against {sparse.name}" if dense.name != sparse.name else None,
        "hyper-parameters": ", ".join(sorted(k for k in dense_params if dense_params[k] != sparse_params.get(k)))
        if dense_params != sparse_params
        else None,
        "number of regions": f"{dense.n_regions} against {sparse.n_regions}"
        if dense.n_regions != sparse.n_regions
        else None,
        "training montage": f"{dense.n_channels} against {sparse.n_channels} channels"
        if dense.montage.ch_names != sparse.montage.ch_names
        else None,
    }
    for label, detail in differences.items():
        if detail is not None:
            raise BrainForgeError(
                f"The two networks differ in their {label} ({detail}); a router needs one network and a "
                "fine-tune of it (brainforge train --init)."
            )
    config = ChannelCountRouterConfig(dense.name, dense_params, sparse_max_channels)
    router = ChannelCountRouter(config, dense.n_regions, dense.montage)
    router.dense.load_state_dict(dense.state_dict())
    router.sparse.load_state_dict(sparse.state_dict())
    return router.eval()
