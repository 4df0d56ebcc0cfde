"""dlib's face-recognition ResNet as a torch module: the same network, batched, on any device.

The weights are read at load time from the `dlib_face_recognition_resnet_model_v1.dat` that
face-recognition-models ships, by facecluster's own reader of dlib's format (udfs/dlib_format.py);
no converted file exists anywhere. The architecture is dlib's `dnn_face_recognition_ex.cpp`:
a 7x7 convolution, max pooling, then residual blocks at 32, 64, 128 and 256 filters (two 3x3
convolutions each, an affine layer after each convolution; a block that halves the size takes
an average-pooled shortcut), global average pooling and a 128-d fully connected layer without
bias. Two details of dlib matter for equal outputs:
- an input pixel becomes (value - channel mean) / 256;
- dlib's add_prev adds tensors of different sizes by padding the smaller with zeros at the end
  (more channels, or one more row and column where a 3x3 stride-2 convolution and a 2x2
  stride-2 pool round differently), so the shortcut is padded, not projected.
Each affine layer is folded into the convolution before it (exact in real arithmetic).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecluster.udfs.dlib_format import DlibLayer, DlibNet, read_dlib_net

SOURCE = "dlib_face_recognition_resnet_model_v1.dat from face-recognition-models (read by udfs/dlib_format.py)"


def _conv_affine(conv: DlibLayer, affine: DlibLayer) -> nn.Conv2d:
    if conv.kind != "con" or affine.kind != "affine":
        raise ValueError(f"expected a convolution and its affine layer, found {conv.kind}, {affine.kind}")
    weights = torch.from_numpy(conv.params.copy())
    gamma = torch.from_numpy(affine.settings["gamma"].copy())
    beta = torch.from_numpy(affine.settings["beta"].copy())
    layer = nn.Conv2d(weights.shape[1], weights.shape[0], conv.settings["kernel"], stride=conv.settings["stride"],
                      padding=conv.settings["padding"], bias=True)
    with torch.no_grad():
        layer.weight.copy_(weights * gamma.view(-1, 1, 1, 1))
        layer.bias.copy_(torch.from_numpy(conv.settings["bias"].copy()) * gamma + beta)
    return layer


def _pad_to(x: torch.Tensor, channels: int, rows: int, cols: int) -> torch.Tensor:
    return F.pad(x, (0, cols - x.shape[3], 0, rows - x.shape[2], 0, channels - x.shape[1]))


class ResidualBlock(nn.Module):
    """relu(block(x) + shortcut(x)); the shortcut is x, or x average-pooled where the block halves
    the size; the sum padded with zeros to the larger of the two, as dlib's add_prev does."""

    def __init__(self, first: nn.Conv2d, second: nn.Conv2d, pool: DlibLayer | None):
        super().__init__()
        self.first, self.second = first, second
        self.pool = None if pool is None else (pool.settings["kernel"], pool.settings["stride"], pool.settings["padding"])
        self.size: tuple[int, int, int] | None = None  # the padded sum's (channels, rows, cols): set by fit_to

    def _paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.second(F.relu(self.first(x)))
        return y, (x if self.pool is None else F.avg_pool2d(x, *self.pool, count_include_pad=True))

    def fit_to(self, x: torch.Tensor) -> torch.Tensor:
        """Record the sizes the sum is padded to for inputs shaped like x (fixed by the chip size,
        so the traced network holds no shape tests); returns the block's output."""
        y, shortcut = self._paths(x)
        self.size = None if y.shape[1:] == shortcut.shape[1:] else \
            tuple(max(a, b) for a, b in zip(y.shape[1:], shortcut.shape[1:]))
        return self(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, shortcut = self._paths(x)
        if self.size is not None:
            y, shortcut = _pad_to(y, *self.size), _pad_to(shortcut, *self.size)
        return F.relu(y + shortcut)


def network_input(chips: list[np.ndarray] | np.ndarray, means: tuple[float, float, float]) -> torch.Tensor:
    """uint8 RGB chips (N x 150 x 150 x 3, dlib's aligned chips) as dlib's input layer makes them:
    N x 3 x 150 x 150, (value - channel mean) / 256."""
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(chips))).permute(0, 3, 1, 2).float()
    return (batch - torch.tensor(means, dtype=torch.float32).view(1, 3, 1, 1)) / 256.0


class DlibResNet(nn.Module):
    """network_input(chips) -> N x 128 descriptors, the values dlib's compute_face_descriptor
    returns (not normalised)."""

    def __init__(self, net: DlibNet):
        super().__init__()
        layers = list(net.layers)
        self.input_means = net.input_means
        kinds = [layer.kind for layer in layers]
        if kinds[:4] != ["con", "affine", "relu", "max_pool"] or kinds[-2:] != ["avg_pool", "fc"]:
            raise ValueError(f"not dlib's face-recognition ResNet: {kinds[:4]} ... {kinds[-2:]}")
        self.stem = _conv_affine(layers[0], layers[1])
        pool = layers[3].settings
        self.stem_pool = (pool["kernel"], pool["stride"], pool["padding"])
        blocks, at = [], 4
        while kinds[at] == "con":
            if kinds[at + 2] != "relu":
                raise ValueError(f"layer {at + 2}: expected relu, found {kinds[at + 2]}")
            first, second = _conv_affine(layers[at], layers[at + 1]), _conv_affine(layers[at + 3], layers[at + 4])
            at += 5
            shortcut_pool = None
            if kinds[at] == "avg_pool":
                shortcut_pool, at = layers[at], at + 1
            if kinds[at:at + 2] != ["add_prev", "relu"]:
                raise ValueError(f"layer {at}: expected add_prev and relu, found {kinds[at:at + 2]}")
            at += 2
            blocks.append(ResidualBlock(first, second, shortcut_pool))
        self.blocks = nn.Sequential(*blocks)
        with torch.no_grad():
            x = F.max_pool2d(F.relu(self.stem(torch.zeros(1, 3, *net.input_size))), *self.stem_pool)
            for block in blocks:
                x = block.fit_to(x)
        if layers[at].settings["kernel"] != (0, 0) or at + 2 != len(layers):
            raise ValueError("expected global average pooling, then the fully connected layer")
        fc = layers[at + 1]
        self.fc = nn.Linear(fc.params.shape[0], fc.params.shape[1], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(fc.params.T.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.max_pool2d(x, *self.stem_pool)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def load_dlib_resnet_torch(device: torch.device | str = "cpu") -> DlibResNet:
    """dlib's ResNet with the weights of face-recognition-models' file, in eval mode."""
    from facecluster.udfs.dlib_resnet import model_dir

    return DlibResNet(read_dlib_net(model_dir() / "dlib_face_recognition_resnet_model_v1.dat")).eval().to(device)
