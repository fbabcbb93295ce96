"""LeNet adapted to 14×14: 2 conv + pooling, 3 FC, ReLU, optional batch norm, dropout and a
GoogLeNet-style auxiliary classifier on the first conv block's feature map.

`variant="authors"`: the authors' LeNet (conv 1→6, 6→16, then 16→120 acting as a fully connected layer,
120→84→10; the auxiliary classifier one linear layer on the second conv block's output)."""
import torch
from torch import nn

from .common import VARIANTS, ModelOptionError, check_choice, maybe_bn2d, maybe_dropout
from .registry import register_model


class LeNet(nn.Module):
    def __init__(self, in_channels, num_classes, batch_norm, dropout, kernel_size, aux_loss, dropout_rate, width=1):
        super().__init__()
        check_choice("kernel_size", kernel_size, (3, 5))
        pad = kernel_size // 2  # "same" convs: 14 → pool 7 → pool 3
        c1, c2 = 16 * width, 32 * width  # `width` multiplies the conv channels; the classifier's layers stay
        self.block1 = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size, padding=pad), maybe_bn2d(c1, batch_norm),
            nn.ReLU(inplace=True), nn.MaxPool2d(2))  # (B, c1, 7, 7)
        self.block2 = nn.Sequential(
            nn.Conv2d(c1, c2, kernel_size, padding=pad), maybe_bn2d(c2, batch_norm),
            nn.ReLU(inplace=True), nn.MaxPool2d(2))  # (B, c2, 3, 3)
        drop = maybe_dropout(dropout, dropout_rate)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * 3 * 3, 120), nn.ReLU(inplace=True), drop,
            nn.Linear(120, 84), nn.ReLU(inplace=True), drop, nn.Linear(84, num_classes))
        # The side classifier predicts the same label from an intermediate map (Szegedy et al.);
        # it only adds a loss term and is ignored at prediction time.
        self.side = nn.Sequential(
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(c1 * 4, 64), nn.ReLU(inplace=True),
            nn.Linear(64, num_classes)) if aux_loss else None

    def forward(self, x: torch.Tensor):
        h = self.block1(x)
        side = self.side(h) if self.side is not None and self.training else None
        return self.classifier(self.block2(h)), side


class AuthorsLeNet(nn.Module):
    """The authors' layers. k=5: 14 → conv (pad 2) 14 → conv 10 → pool 5 → conv 1; k=3: 14 → conv (pad 2)
    16 → pool 8 → conv 6 → pool 3 → conv 1. Their dropout (rate 0.5 there) follows every block and both
    outputs, logits included."""

    def __init__(self, in_channels, num_classes, batch_norm, dropout, kernel_size, aux_loss, dropout_rate):
        super().__init__()
        check_choice("kernel_size", kernel_size, (3, 5))
        pool1 = [nn.MaxPool2d(2)] if kernel_size == 3 else []
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, 6, kernel_size, padding=2), maybe_bn2d(6, batch_norm),
                                    nn.ReLU(inplace=True), *pool1)
        self.block2 = nn.Sequential(nn.Conv2d(6, 16, kernel_size), maybe_bn2d(16, batch_norm),
                                    nn.ReLU(inplace=True), nn.MaxPool2d(2))  # (B, 16, k, k)
        self.block3 = nn.Sequential(nn.Conv2d(16, 120, kernel_size), maybe_bn2d(120, batch_norm),
                                    nn.ReLU(inplace=True))  # (B, 120, 1, 1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), nn.ReLU(inplace=True),
                                        nn.Linear(84, num_classes))
        self.side = nn.Sequential(nn.Flatten(), nn.Linear(16 * kernel_size ** 2, num_classes)) if aux_loss else None
        self.drop = maybe_dropout(dropout, dropout_rate)

    def forward(self, x: torch.Tensor):
        h = self.drop(self.block2(self.drop(self.block1(x))))
        side = self.drop(self.side(h)) if self.side is not None and self.training else None
        return self.drop(self.classifier(self.drop(self.block3(h)))), side


@register_model()
def lenet(in_channels=1, num_classes=10, batch_norm=True, dropout=False, kernel_size=5, aux_loss=True,
          dropout_rate=0.5, variant="ours", width=1):
    """LeNet-5 style; the paper's best is k=5 with batch norm and the auxiliary loss (≈ 60 k parameters)."""
    check_choice("variant", variant, VARIANTS)
    check_choice("width", width, (1, 2, 3, 4))
    if variant == "authors":
        if width != 1:
            raise ModelOptionError("width is an option of our LeNet; the authors' has its own channel counts")
        return AuthorsLeNet(in_channels, num_classes, batch_norm, dropout, kernel_size, aux_loss, dropout_rate)
    return LeNet(in_channels, num_classes, batch_norm, dropout, kernel_size, aux_loss, dropout_rate, width)
