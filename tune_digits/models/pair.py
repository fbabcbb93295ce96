"""From one-digit backbones to pair models: how the two digits are combined (docs/protocol.md §7).

Strategies:
- `digits`: classify each digit, compare the argmax predictions (the paper's way).
- `prob`: same training; compare with probabilities, P(d1 <= d2) = Σ_{i<=j} p1(i)·p2(j) >= 0.5.
- `pair`: a learned head on the two branches' logits predicts the target; digit loss weighted by digit_loss_weight.
- `two_channel`: one backbone on the (2, 14, 14) input predicts the target and, as auxiliary heads,
  both digits.
Weight sharing (the paper's setting) applies one trunk to both digits; `weight_sharing=False` builds two.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .common import check_choice
from .registry import create_backbone

STRATEGIES = ("digits", "prob", "pair", "two_channel")
# P(d1 <= d2) = p1ᵀ · LE · p2 with LE[i, j] = 1 when i <= j.
_LESS_EQUAL = torch.triu(torch.ones(10, 10))


class PairOutput(NamedTuple):
    digits: torch.Tensor | None  # (B, 2, 10) digit logits
    compare: torch.Tensor | None  # (B,) logit of P(target = 1), for strategies that learn it
    side: torch.Tensor | None  # (B, 2, 10) auxiliary-classifier logits (training only)
    members: tuple | None = None  # an ensemble's members' own outputs (training only, models/ensemble.py)


class PairNet(nn.Module):
    def __init__(self, network: str, strategy: str = "digits", weight_sharing: bool = True, **options):
        super().__init__()
        check_choice("strategy", strategy, STRATEGIES)
        self.strategy = strategy
        if strategy == "two_channel":
            # 1 comparison logit + 2 × 10 digit logits from one network on both images.
            self.trunks = nn.ModuleList([create_backbone(network, in_channels=2, num_classes=21, **options)])
        else:
            count = 1 if weight_sharing else 2
            self.trunks = nn.ModuleList([create_backbone(network, **options) for _ in range(count)])
        self.head = nn.Sequential(nn.Linear(20, 64), nn.ReLU(inplace=True), nn.Linear(64, 1)) \
            if strategy == "pair" else None
        self.register_buffer("less_equal", _LESS_EQUAL.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> PairOutput:  # x: (B, 2, 14, 14)
        b = x.shape[0]
        if self.strategy == "two_channel":
            out, _ = self.trunks[0](x)
            return PairOutput(out[:, 1:].reshape(b, 2, 10), out[:, 0], None)
        if len(self.trunks) == 1:
            # Weight sharing is reuse: one call on both digits stacked along the batch.
            logits, side = self.trunks[0](x.reshape(2 * b, 1, 14, 14))
            logits = logits.view(b, 2, 10)
            side = side.view(b, 2, 10) if side is not None else None
        else:
            outs = [trunk(x[:, i:i + 1]) for i, trunk in enumerate(self.trunks)]
            logits = torch.stack([o[0] for o in outs], 1)
            side = torch.stack([o[1] for o in outs], 1) if outs[0][1] is not None else None
        compare = self.head(logits.reshape(b, 20)).squeeze(1) if self.head is not None else None
        return PairOutput(logits, compare, side)

    @torch.no_grad()
    def predict(self, out: PairOutput) -> torch.Tensor:
        """(B,) int64 predicted target for the strategy."""
        if out.compare is not None:
            return (out.compare > 0).long()
        if self.strategy == "prob":
            p = out.digits.softmax(-1)
            p_le = torch.einsum("bi,ij,bj->b", p[:, 0], self.less_equal, p[:, 1])
            return (p_le >= 0.5).long()
        d = out.digits.argmax(-1)
        return (d[:, 0] <= d[:, 1]).long()
