"""Encoder: ResNet-18 with the CIFAR stem, pre-feature layer and projector (docs/METHOD.md 1.2).

The paper's sizes are width 64, [2, 2, 2, 2] blocks, 4096-d pre-feature and hidden layer, z of 1024
(SimCLR: 128). Tests use the same topology narrower (``width``, ``blocks_per_stage``, dims).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class EncoderOutput(NamedTuple):
    z: torch.Tensor  # (N, z_dim), L2-normalised projection
    feature: torch.Tensor  # (N, feature_dim), the linear probe's representation


class BasicBlock(nn.Module):
    """torchvision's ResNet ``BasicBlock`` (same layers, names, construction order and forward).

    Written here so that importing the trainable does not import torchvision (whose package import
    pulls in torch._dynamo, about a second per trial worker; BENCHMARKS.md item 4).
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNetCifar(nn.Module):
    """ResNet with a 3x3 stride-1 stem and no max-pool; 4 BasicBlock stages, strides 1, 2, 2, 2; GAP.

    Input (N, 3, H, W) in [0, 1] (no normalisation layer: epsilon is in pixel units). Output (N, 8*width).
    """

    def __init__(self, width: int = 64, blocks_per_stage: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages = []
        in_planes = width
        for i in range(4):
            planes = width * 2**i
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(blocks_per_stage):
                downsample = None
                if j == 0 and (stride != 1 or in_planes != planes):
                    downsample = nn.Sequential(
                        nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                        nn.BatchNorm2d(planes),
                    )
                blocks.append(BasicBlock(in_planes, planes, stride if j == 0 else 1, downsample))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_dim = in_planes
        for m in self.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.stages(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class Encoder(nn.Module):
    """backbone -> pre-feature Linear->BN->ReLU (probe features) -> projector Linear->BN->ReLU->Linear -> L2."""

    def __init__(
        self,
        width: int = 64,
        blocks_per_stage: int = 2,
        feature_dim: int = 4096,
        hidden_dim: int = 4096,
        z_dim: int = 1024,
    ) -> None:
        super().__init__()
        self.backbone = ResNetCifar(width, blocks_per_stage)
        self.pre_feature = nn.Sequential(
            nn.Linear(self.backbone.out_dim, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU()
        )
        self.projector = nn.Sequential(
            nn.Linear(feature_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, z_dim)
        )
        self.feature_dim = feature_dim
        self.z_dim = z_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, feature_dim): the representation every linear evaluation uses."""
        return self.pre_feature(self.backbone(x))

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        feature = self.features(x)
        # Under bf16 autocast the projection comes out in bf16: normalise (and everything after it,
        # i.e. the losses) in float32. A no-op in float32.
        z = F.normalize(self.projector(feature).float(), p=2, dim=1)
        return EncoderOutput(z=z, feature=feature)


def build_encoder(config) -> Encoder:
    """The encoder a `TrialConfig` describes."""
    return Encoder(
        width=config.width,
        blocks_per_stage=config.blocks_per_stage,
        feature_dim=config.feature_dim,
        hidden_dim=config.hidden_dim,
        z_dim=config.effective_z_dim,
    )
