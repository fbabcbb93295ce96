"""The paper's linear network: `layers` fully connected hidden layers of `nodes` units each (MLP)."""
import torch
from torch import nn

from .common import VARIANTS, check_choice, check_range, maybe_dropout
from .registry import register_model


class Linear(nn.Module):
    def __init__(self, in_channels, num_classes, layers, nodes, dropout, dropout_rate, variant="ours"):
        super().__init__()
        check_range("layers", layers, 1, 20)
        check_range("nodes", nodes, 1, 4096)
        check_choice("variant", variant, VARIANTS)
        widths = [in_channels * 14 * 14] + [nodes] * layers
        blocks = []
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            # The authors' code drops out after hidden layers 2…L only, ours after every one.
            drop = dropout and (variant == "ours" or i > 0)
            blocks += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True), maybe_dropout(drop, dropout_rate)]
        self.body = nn.Sequential(nn.Flatten(), *blocks)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor):
        return self.head(self.body(x)), None


@register_model(train_defaults={"optimizer": "adam", "lr": 2.0e-3, "weight_decay": 1.0e-4, "batch_size": 25})
def linear(in_channels=1, num_classes=10, layers=2, nodes=128, dropout=False, dropout_rate=0.5, variant="ours"):
    """MLP; the paper's best is 2 layers × 128 nodes without dropout (≈ 43 k parameters)."""
    return Linear(in_channels, num_classes, layers, nodes, dropout, dropout_rate, variant)
