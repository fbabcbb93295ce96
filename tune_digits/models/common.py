"""Small building blocks shared by the backbones."""
from torch import nn

from ..errors import UserError


# `variant`: our reading of the paper, or the layers of the authors' published code
# (github.com/Arturjssln/DeepLearningProject, Proj1/src/net.py), rebuilt here in our style.
VARIANTS = ("ours", "authors")


class ModelOptionError(UserError, ValueError):
    """A model option the architecture cannot use."""


def maybe_bn2d(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


def maybe_dropout(dropout: bool, rate: float) -> nn.Module:
    return nn.Dropout(rate) if dropout else nn.Identity()


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ModelOptionError(f"{name} must be one of {list(allowed)}, got {value!r}")


def check_range(name: str, value, low, high) -> None:
    if isinstance(value, bool) or not low <= value <= high:
        raise ModelOptionError(f"{name} must be between {low} and {high}, got {value!r}")
