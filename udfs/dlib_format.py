"""A reader of dlib's serialisation format, enough for the face-recognition ResNet's `.dat`.

dlib writes a network (dlib/dnn/core.h) as its loss layer, then every layer's version number
from the top down, then the input layer, then each computational layer from the input up: its
name and version (e.g. "con_4"), its parameters, the flags and empty buffers of its wrapper. Tag
and skip layers write only a version number, so the stream holds the layers in the order data
flows through them, not the residual connections between them: those follow the architecture
(facecluster/udfs/dlib_torch.py). The primitives (dlib/serialize.h, dlib/dnn/tensor.h):

  integer  one byte: bit 7 = negative, low nibble = how many bytes follow; then the magnitude,
           little-endian
  float    two integers, mantissa and base-2 exponent (value = m * 2**e)
  string   an integer length, then the bytes
  bool     one character, '1' or '0'
  tensor   integer version 2, then num_samples, k, nr, nc, then that many float32, little-endian
  alias    integer version 1, then num_samples, k, nr, nc (a view into a layer's parameters)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DlibFormatError(ValueError):
    pass


@dataclass
class DlibLayer:
    kind: str                       # con, affine, relu, max_pool, avg_pool, add_prev, fc
    params: np.ndarray | None = None
    settings: dict = field(default_factory=dict)


@dataclass
class DlibNet:
    loss: str
    input_means: tuple[float, float, float]   # subtracted from R, G, B before dividing by 256
    input_size: tuple[int, int]
    layers: list[DlibLayer]


class _Stream:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"byte {self.at}: {what}")

    def integer(self) -> int:
        if self.at >= len(self.data):
            raise self.fail("the file ends inside a layer")
        head = self.data[self.at]
        size = head & 0x0F
        if size > 8 or head & 0x70:
            raise self.fail(f"not an integer (0x{head:02x})")
        value = int.from_bytes(self.data[self.at + 1:self.at + 1 + size], "little")
        self.at += 1 + size
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        return float(mantissa) * 2.0 ** self.integer()

    def text(self) -> str:
        length = self.integer()
        if not 0 <= length <= 64:
            raise self.fail(f"not a layer name (length {length})")
        value = self.data[self.at:self.at + length]
        self.at += length
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("not a layer name") from None

    def flags(self, count: int) -> None:
        if any(c not in b"01" for c in self.data[self.at:self.at + count]):
            raise self.fail("expected a layer's flags")
        self.at += count

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise self.fail("a tensor of an unknown version")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        if count < 0 or self.at + 4 * count > len(self.data):
            raise self.fail(f"a tensor of {shape} runs past the end of the file")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.at).astype(np.float32)
        self.at += 4 * count
        return values.reshape(shape)

    def alias(self) -> tuple[int, ...]:
        if self.integer() != 1:
            raise self.fail("an alias tensor of an unknown version")
        return tuple(self.integer() for _ in range(4))


def _layer(stream: _Stream, name: str) -> DlibLayer:
    if name == "con_4":
        params = stream.tensor()
        filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (stream.integer() for _ in range(7))
        weights_shape, bias_shape = stream.alias(), stream.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            stream.real()
        weights = params.reshape(-1)[:int(np.prod(weights_shape))].reshape(weights_shape)
        bias = params.reshape(-1)[int(np.prod(weights_shape)):].reshape(filters)
        return DlibLayer("con", weights, {"bias": bias, "stride": (stride_y, stride_x), "padding": (pad_y, pad_x),
                                         "kernel": (rows, cols)})
    if name == "affine_":
        params = stream.tensor().reshape(-1)
        gamma, beta = stream.alias(), stream.alias()
        stream.integer()  # mode: per channel here
        channels = int(np.prod(gamma))
        return DlibLayer("affine", None, {"gamma": params[:channels], "beta": params[channels:channels + int(np.prod(beta))]})
    if name in ("relu_", "add_prev_"):
        return DlibLayer(name.rstrip("_"))
    if name in ("max_pool_2", "avg_pool_2"):
        rows, cols, stride_y, stride_x, pad_y, pad_x = (stream.integer() for _ in range(6))
        return DlibLayer(name[:-2], None, {"kernel": (rows, cols), "stride": (stride_y, stride_x),
                                           "padding": (pad_y, pad_x)})
    if name == "fc_2":
        outputs, inputs = stream.integer(), stream.integer()
        params = stream.tensor().reshape(-1)
        return DlibLayer("fc", params[:inputs * outputs].reshape(inputs, outputs), {"bias": params[inputs * outputs:]})
    raise stream.fail(f"a layer this reader does not know: {name!r}")


def read_dlib_net(path: str | Path) -> DlibNet:
    """The layers of a dlib network file, from the input up."""
    stream = _Stream(Path(path).read_bytes())
    stream.integer()  # the loss layer's wrapper version
    loss = stream.text()
    if not loss.startswith("loss_metric"):
        raise stream.fail(f"not a metric-learning network: {loss!r}")
    stream.real(), stream.real()  # the loss's margin and distance threshold (training only)
    while (version := stream.integer()) in (1, 2):  # the wrappers' versions, top down
        pass
    if version != 3 or stream.text() != "input_rgb_image_sized":
        raise stream.fail("expected the input layer input_rgb_image_sized")
    means = (stream.real(), stream.real(), stream.real())
    size = (stream.integer(), stream.integer())
    layers = []
    while True:
        name = stream.text()
        layer = _layer(stream, name)
        if layer.kind == "fc":
            layers.append(layer)
            return DlibNet(loss, means, size, layers)
        stream.flags(3)
        for _ in range(3):  # the wrapper's gradient and output buffers, saved empty
            if stream.tensor().size:
                raise stream.fail("a layer buffer that should be empty")
        if not layers:
            stream.integer()  # the input wrapper's sample expansion factor
        layers.append(layer)
