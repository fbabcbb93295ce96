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
    An ensemble's loss is the sum of its members' own: each member's gradient is that of its own loss.
    `label_smoothing` ε smooths every term: the comparison target y → y(1 - ε) + ε/2 (toward 1/2), the digit and
    side classifiers' labels → (1 - ε)·one-hot + ε/10 (spread over the 10 classes)."""
    if out.members is not None:
        return sum(pair_loss(member, classes, target, config) for member in out.members)
    # Losses in float32 whatever the logits' precision (`.float()` is the tensor itself when already float32).
    smoothing = config.label_smoothing
    digit_loss = _digit_loss(out.digits, classes, smoothing) if out.digits is not None else 0
    if out.compare is not None:
        target = target.float()
        if smoothing:  # left as it was at 0: the exact path stays bit for bit
            target = target * (1 - smoothing) + smoothing / 2
        loss = F.binary_cross_entropy_with_logits(out.compare.float(), target) + config.digit_loss_weight * digit_loss
    else:
        loss = digit_loss
    if out.side is not None and config.side_loss_weight:
        loss = loss + config.side_loss_weight * _digit_loss(out.side, classes, smoothing)
    return loss


def _digit_loss(logits: torch.Tensor, classes: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy of (B, 2, 10) digit logits against (B, 2) classes, over the 2B digits."""
    return F.cross_entropy(logits.reshape(-1, 10).float(), classes.reshape(-1), label_smoothing=smoothing)
