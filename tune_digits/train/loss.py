"""The training objective of every engine and strategy: one function, so a new loss term is one edit."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import PairOutput
from .config import TrainConfig


def pair_loss(out: PairOutput, classes: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Scalar loss of one replica's batch: `classes` (B, 2) digit labels, `target` (B,) comparison labels.

    The comparison loss when the strategy learns the comparison (plus `digit_loss_weight` × the digit loss), else the
    digit loss alone; plus `side_loss_weight` × the side classifier's digit loss when the network has one.
    An ensemble's loss is the sum of its members' own: each member's gradient is that of its own loss."""
    if out.members is not None:
        return sum(pair_loss(member, classes, target, config) for member in out.members)
    # Losses in float32 whatever the logits' precision (`.float()` is the tensor itself when already float32).
    digit_loss = F.cross_entropy(out.digits.reshape(-1, 10).float(), classes.reshape(-1)) \
        if out.digits is not None else 0
    if out.compare is not None:
        loss = F.binary_cross_entropy_with_logits(out.compare.float(), target.float()) \
            + config.digit_loss_weight * digit_loss
    else:
        loss = digit_loss
    if out.side is not None and config.side_loss_weight:
        loss = loss + config.side_loss_weight * F.cross_entropy(out.side.reshape(-1, 10).float(), classes.reshape(-1))
    return loss
