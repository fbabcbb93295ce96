"""Per-epoch changes to the training pairs, drawn from a replica's own data-order generator."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data import compare_target


def random_shift(x: torch.Tensor, pixels: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each digit of (B, 2, 14, 14) independently by up to `pixels`: `random_affine` without rotation."""
    return random_affine(x, generator, shift=pixels)


def random_affine(x: torch.Tensor, generator: torch.Generator, shift: float = 0.0, rotate: float = 0.0
                  ) -> torch.Tensor:
    """Move each digit of (B, 2, 14, 14) independently: translated by up to `shift` pixels along each axis, then
    turned about the image centre by up to `rotate` degrees either way, in one affine grid (one bilinear resampling;
    zero padding in standardised units is the background's value, so borders stay background-like). Offsets are
    drawn first, then angles, each only when asked for: a shift alone draws and computes exactly what it always did."""
    b = x.shape[0]
    digits = x.reshape(2 * b, 1, 14, 14)
    theta = torch.zeros(2 * b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if shift:
        theta[:, :, 2] = (torch.rand(2 * b, 2, generator=generator) * 2 - 1) * (2 * shift / 14)  # [-1, 1] grid units
    if rotate:
        angle = (torch.rand(2 * b, generator=generator) * 2 - 1) * math.radians(rotate)  # (2B,)
        # A square image's grid units are the same along both axes, so this is a true rotation about the centre.
        theta[:, 0, 0] = theta[:, 1, 1] = angle.cos()
        theta[:, 0, 1], theta[:, 1, 0] = -angle.sin(), angle.sin()
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
