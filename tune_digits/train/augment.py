"""Per-epoch changes to the training pairs, drawn from a replica's own data-order generator."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import compare_target


def random_shift(x: torch.Tensor, pixels: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each digit of (B, 2, 14, 14) independently by up to `pixels` (bilinear, zero padding
    in standardised units is the background's value, so borders stay background-like)."""
    b = x.shape[0]
    digits = x.reshape(2 * b, 1, 14, 14)
    offsets = (torch.rand(2 * b, 2, generator=generator) * 2 - 1) * (2 * pixels / 14)  # in [-1, 1] grid units
    theta = torch.zeros(2 * b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = offsets
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(digits.shape), align_corners=False)
    background = x.min()
    shifted = F.grid_sample(digits - background, grid, padding_mode="zeros", align_corners=False) + background
    return shifted.reshape(b, 2, 14, 14)


def repair(x: torch.Tensor, c: torch.Tensor, generator: torch.Generator):
    """New partners for the training digits of (N, 2, 14, 14), classes (N, 2): (x, c, target), targets
    recomputed (ties stay 1)."""
    n = len(x)
    perm = torch.randperm(2 * n, generator=generator).to(x.device)
    x = x.reshape(2 * n, 14, 14)[perm].reshape(n, 2, 14, 14)
    c = c.reshape(2 * n)[perm].reshape(n, 2)
    return x, c, compare_target(c)


def random_swap(x: torch.Tensor, c: torch.Tensor, generator: torch.Generator):
    """Each pair of (N, 2, 14, 14), classes (N, 2), swapped to (b, a) with probability 1/2: (x, c, target), the
    labels swapped with their digits and the targets recomputed from them (ties stay 1)."""
    flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)  # (N,)
    x = torch.where(flip[:, None, None, None], x.flip(1), x)
    c = torch.where(flip[:, None], c.flip(1), c)
    return x, c, compare_target(c)
