"""An ensemble inside one trial: k pair models with their own initial weights, trained side by side on the same
pairs (each member's own loss, train/loss.py), predicting from their averaged probabilities."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from .pair import PairNet, PairOutput


class Ensemble(nn.Module):
    """Members of one network and options. In training mode the output holds each member's own (`members`);
    in eval mode it is one averaged PairOutput (`mean_output`), so `predict` compares as the strategy does."""

    def __init__(self, members: list[PairNet]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> PairOutput:
        outs = tuple(member(x) for member in self.members)
        if self.training:
            return PairOutput(None, None, None, members=outs)
        return mean_output(outs)

    @torch.no_grad()
    def predict(self, out: PairOutput) -> torch.Tensor:
        return self.members[0].predict(out)


def mean_output(outs: Sequence[PairOutput]) -> PairOutput:
    """One output from several of the same pairs (an ensemble's members, the views of test-time augmentation),
    their probabilities averaged:
    - `digits`: log of the mean digit softmax (its softmax is the mean, its argmax the most probable);
    - `compare`: logit of the mean P(target = 1), for the strategies that learn the comparison."""
    log_k = math.log(len(outs))
    digits = compare = None
    if outs[0].digits is not None:
        digits = torch.logsumexp(torch.stack([F.log_softmax(o.digits.float(), -1) for o in outs]), 0) - log_k
    if outs[0].compare is not None:
        z = torch.stack([o.compare.float() for o in outs])  # logit(mean σ(z)) = log mean σ(z) − log mean σ(−z)
        compare = torch.logsumexp(F.logsigmoid(z), 0) - torch.logsumexp(F.logsigmoid(-z), 0)
    return PairOutput(digits, compare, None)
