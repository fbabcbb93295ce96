"""The paper's ResNet: 1 conv, `blocks` residual blocks of 2 convs (identity shortcuts), 1 FC.

`variant="authors"`: the authors' layers — every conv with a bias, and their dropout placement (after each
block conv's batch norm, and before the first conv's batch norm) instead of ours (before the FC layer)."""
import torch
from torch import nn

from .common import VARIANTS, check_choice, check_range, maybe_bn2d, maybe_dropout
from .registry import register_model


class ResidualBlock(nn.Module):
    def __init__(self, channels, kernel_size, batch_norm, authors=False, drop: nn.Module | None = None):
        super().__init__()
        pad = kernel_size // 2
        bias = authors or not batch_norm  # a bias before batch norm is redundant; the authors kept it
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=bias)
        self.bn1 = maybe_bn2d(channels, batch_norm)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=bias)
        self.bn2 = maybe_bn2d(channels, batch_norm)
        self.relu = nn.ReLU(inplace=True)
        self.drop = drop if drop is not None else nn.Identity()

    def forward(self, x):
        y = self.relu(self.drop(self.bn1(self.conv1(x))))
        return self.relu(x + self.drop(self.bn2(self.conv2(y))))


class ResNet(nn.Module):
    def __init__(self, in_channels, num_classes, batch_norm, dropout, blocks, channels, kernel_size,
                 dropout_rate, variant="ours"):
        super().__init__()
        check_range("blocks", blocks, 1, 16)
        check_range("channels", channels, 1, 256)
        check_choice("kernel_size", kernel_size, (3, 5, 7))
        check_choice("variant", variant, VARIANTS)
        authors = variant == "authors"
        pad = kernel_size // 2
        drop = maybe_dropout(dropout, dropout_rate)
        # The authors' first conv drops out before its batch norm, and not at all without batch norm.
        stem_drop = [drop] if authors and batch_norm and dropout else []
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size, padding=pad, bias=authors or not batch_norm),
            *stem_drop, maybe_bn2d(channels, batch_norm), nn.ReLU(inplace=True))  # (B, C, 14, 14)
        self.blocks = nn.Sequential(*[ResidualBlock(channels, kernel_size, batch_norm, authors,
                                                    drop if authors else None) for _ in range(blocks)])
        # Global average pooling keeps the single FC layer small (the paper's best has ≈ 50 k parameters).
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Identity() if authors else drop,
                                  nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor):
        return self.head(self.blocks(self.stem(x))), None


@register_model()
def resnet(in_channels=1, num_classes=10, batch_norm=True, dropout=False, blocks=2, channels=16, kernel_size=7,
           dropout_rate=0.5, variant="ours"):
    """Residual CNN; the paper's best: batch norm, no dropout, 2 blocks, 16 channels, k=7 (≈ 50 k parameters)."""
    return ResNet(in_channels, num_classes, batch_norm, dropout, blocks, channels, kernel_size, dropout_rate,
                  variant)
