"""Reference networks: plain ``nn.Module`` classes that work with every lightkit task."""

from lightkit.models.backbones import backbone
from lightkit.models.convnet import ConvNet
from lightkit.models.mlp import MLP
from lightkit.models.recording import record_init_args
from lightkit.models.unet import UNet

__all__ = ["MLP", "ConvNet", "UNet", "backbone", "record_init_args"]
