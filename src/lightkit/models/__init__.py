"""Reference networks: plain ``nn.Module`` classes that work with every lightkit task."""

from lightkit.models.convnet import ConvNet
from lightkit.models.mlp import MLP

__all__ = ["MLP", "ConvNet"]
