"""Networks made ready for inference on executors' CPUs, one way for every model."""
from __future__ import annotations

import warnings

import torch


def for_cpu_inference(model: torch.nn.Module, chip_size: int) -> torch.nn.Module:
    """The network traced and frozen for oneDNN on channels-last tensors (N x 3 x chip x chip):
    affine and batch-norm layers folded into the convolutions, constants inlined."""
    model = model.to(memory_format=torch.channels_last)
    example = torch.zeros(2, 3, chip_size, chip_size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.compile, which needs a C compiler on every
        # executor; TorchScript needs none and is still shipped.
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example)))
