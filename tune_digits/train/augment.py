"""Per-epoch changes to the training pairs, drawn from a replica's own data-order generator."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data import compare_target


def random_shift(x: torch.Tensor, pixels: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each digit of (B, 2, 14, 14) independently by up to `pixels`: `random_affine` without rotation."""
    return random_affine(x, generator, shift=pixels)


def random_affine(x: torch.Tensor, generator: torch.Generator, shift: float = 0.0, rotate: float = 0.0,
                  elastic: float = 0.0) -> torch.Tensor:
    """Move each digit of (B, 2, 14, 14) independently: translated by up to `shift` pixels along each axis, then
    turned about the image centre by up to `rotate` degrees either way, then bent by an elastic field of `elastic`
    pixels RMS (`elastic_field`), in one sampling grid (one bilinear resampling; zero padding in standardised units
    is the background's value, so borders stay background-like). Offsets are drawn first, then angles, then the
    field, each only when asked for: a shift alone draws and computes exactly what it always did."""
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
    if elastic:
        grid = grid + elastic_field(2 * b, elastic, generator).to(x.device, x.dtype)
    background = x.min()
    shifted = F.grid_sample(digits - background, grid, padding_mode="zeros", align_corners=False) + background
    return shifted.reshape(b, 2, 14, 14)


# Test-time augmentation (`tta`): each pair evaluated as is and moved one pixel up, down, left and right.
TEST_SHIFTS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))


def tta_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The views of (..., 2, 14, 14) pairs that `tta` averages: each digit moved by TEST_SHIFTS whole pixels (rows,
    columns) in its own frame, the uncovered edge the background's value. Deterministic, and plain tensor ops
    (the vectorized engine maps it over its replicas)."""
    background = x.amin()
    return [_moved(_moved(x, dr, -2, background), dc, -1, background) for dr, dc in TEST_SHIFTS]


def _moved(x: torch.Tensor, step: int, dim: int, background: torch.Tensor) -> torch.Tensor:
    """x moved `step` (-1, 0 or 1) pixels along `dim`, the edge it uncovers `background`."""
    if not step:
        return x
    edge = background.expand_as(x.narrow(dim, 0, 1))
    n = x.shape[dim]
    return torch.cat([x.narrow(dim, 1, n - 1), edge] if step < 0 else [edge, x.narrow(dim, 0, n - 1)], dim)


# Simard et al. (2003) smooth uniform noise with a Gaussian of σ = 4 pixels on 28 × 28 digits: 2 pixels on these.
ELASTIC_SIGMA = 2.0
_RADIUS = math.ceil(3 * ELASTIC_SIGMA)
_TAPS = torch.exp(-torch.arange(-_RADIUS, _RADIUS + 1, dtype=torch.float32) ** 2 / (2 * ELASTIC_SIGMA ** 2))
_KERNEL = _TAPS / _TAPS.sum()  # one axis of the separable Gaussian, unit sum
# White noise of variance 1/3 through the unit-sum 2-D kernel k ⊗ k keeps variance (1/3) (Σ k²)² per field axis.
_SPREAD = math.sqrt(_KERNEL.pow(2).sum().item() ** 2 / 3)


def elastic_field(n: int, rms: float, generator: torch.Generator) -> torch.Tensor:
    """(n, 14, 14, 2) displacements in grid units (2/14 per pixel): uniform noise in [-1, 1] per pixel and axis,
    smoothed by a Gaussian of ELASTIC_SIGMA pixels and scaled so that away from the borders each axis moves by
    `rms` pixels root-mean-square (Simard et al.'s elastic distortion, its α given as the displacement it makes)."""
    noise = torch.rand(n * 2, 1, 14, 14, generator=generator) * 2 - 1
    smooth = F.conv2d(noise, _KERNEL.view(1, 1, 1, -1), padding=(0, _RADIUS))
    smooth = F.conv2d(smooth, _KERNEL.view(1, 1, -1, 1), padding=(_RADIUS, 0))
    return (smooth * (rms / _SPREAD * 2 / 14)).reshape(n, 2, 14, 14).permute(0, 2, 3, 1)


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
