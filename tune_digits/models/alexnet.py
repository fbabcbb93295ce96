"""AlexNet (5 conv, 3 FC) adapted to 14×14: 3×3 kernels, two 2×2 poolings (14 → 7 → 3).

`variant="authors"`: the authors' AlexNet — 32-64-128-256-256 channels, no ReLU after the third and fourth
convs, three poolings (14 → 7 → 3 → 1), FC 256→1024→512→10, no batch norm and no dropout."""
import torch
from torch import nn

from .common import VARIANTS, ModelOptionError, check_choice, maybe_bn2d, maybe_dropout
from .registry import register_model


def _conv(c_in, c_out, batch_norm):
    return [nn.Conv2d(c_in, c_out, 3, padding=1), maybe_bn2d(c_out, batch_norm), nn.ReLU(inplace=True)]


class AlexNet(nn.Module):
    def __init__(self, in_channels, num_classes, batch_norm, dropout, dropout_rate):
        super().__init__()
        self.features = nn.Sequential(
            *_conv(in_channels, 64, batch_norm), nn.MaxPool2d(2),  # (B, 64, 7, 7)
            *_conv(64, 128, batch_norm), nn.MaxPool2d(2),  # (B, 128, 3, 3)
            *_conv(128, 256, batch_norm), *_conv(256, 192, batch_norm), *_conv(192, 128, batch_norm))
        drop = maybe_dropout(dropout, dropout_rate)
        self.classifier = nn.Sequential(
            nn.Flatten(), drop, nn.Linear(128 * 3 * 3, 512), nn.ReLU(inplace=True),
            drop, nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor):
        return self.classifier(self.features(x)), None


class AuthorsAlexNet(nn.Module):
    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # (B, 32, 7, 7)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # (B, 64, 3, 3)
            nn.Conv2d(64, 128, 3, padding=1), nn.Conv2d(128, 256, 3, padding=1),  # no ReLU between, as theirs
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))  # (B, 256, 1, 1)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(256, 1024), nn.ReLU(inplace=True), nn.Linear(1024, 512), nn.ReLU(inplace=True),
            nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor):
        return self.classifier(self.features(x)), None


@register_model()
def alexnet(in_channels=1, num_classes=10, batch_norm=False, dropout=True, dropout_rate=0.5, variant="ours"):
    """AlexNet's layout (with its FC dropout) shrunk to 14×14; the paper searched no options (≈ 1.8 M parameters)."""
    check_choice("variant", variant, VARIANTS)
    if variant == "ours":
        return AlexNet(in_channels, num_classes, batch_norm, dropout, dropout_rate)
    if batch_norm or dropout:  # refused rather than ignored: the authors' AlexNet has neither
        raise ModelOptionError("the authors' AlexNet has no batch norm and no dropout: "
                               "set batch_norm: false and dropout: false")
    return AuthorsAlexNet(in_channels, num_classes)
