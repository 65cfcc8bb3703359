"""Three ways to let the positions of a sequence exchange information - a recurrent layer,
1-D convolutions, self-attention - and what each costs (time, memory, reach).

Shape letters: ``B`` batch, ``L`` sequence length, ``D`` features.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from course_lib.attention.multihead import MultiHeadAttention
from course_lib.validation import (
    check_bool,
    check_callable,
    check_choice,
    check_device,
    check_elements,
    check_instance,
    check_int,
    check_like,
    check_size,
    check_tensor,
)

__all__ = [
    "SequenceMixer",
    "conv_layers_to_cover",
    "input_influence",
    "measure_cost",
    "receptive_field",
    "saved_tensor_bytes",
]


class SequenceMixer(nn.Module):
    """One of three ways to let positions of x [B, L, D] exchange information -> [B, L, D].

    ``"rnn"``: a GRU (``torch.nn.GRU``), which must walk the L steps one after another;
    ``"conv"``: ``num_layers`` 1-D convolutions of width ``kernel_size`` (same padding,
    GELU between layers), each output sees only a window of the input; ``"attention"``:
    multi-head self-attention, every output sees every input (``fused`` picks the fused
    kernel, which never stores the L x L weights, over the explicit softmax).
    """

    def __init__(
        self,
        kind: str,
        dim: int,
        num_layers: int = 1,
        kernel_size: int = 3,
        num_heads: int = 1,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, ("rnn", "conv", "attention"))
        self.dim = check_size("dim", dim)
        num_layers = check_size("num_layers", num_layers, maximum=10_000)
        kernel_size = check_size("kernel_size", kernel_size, maximum=2**16)
        num_heads = check_size("num_heads", num_heads)
        check_elements("num_layers x dim^2 x kernel_size", num_layers * dim * dim * kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        self.fused = check_bool("fused", fused)
        if kind == "rnn":
            self.layer: nn.Module = nn.GRU(dim, dim, num_layers, batch_first=True)
        elif kind == "conv":
            layers: List[nn.Module] = []
            for index in range(num_layers):
                layers.append(nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2))
                if index < num_layers - 1:
                    layers.append(nn.GELU())
            self.layer = nn.Sequential(*layers)
        else:
            self.layer = MultiHeadAttention(dim, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        check_tensor("x", x, f"B, L, {self.dim}", dtype="floating")
        check_like("x", x, next(self.layer.parameters()))
        if self.kind == "rnn":
            return self.layer(x)[0]
        if self.kind == "conv":
            return self.layer(x.transpose(1, 2)).transpose(1, 2)
        return self.layer(x, x, x, need_weights=not self.fused)[0]


def receptive_field(num_layers: int, kernel_size: int, dilation_growth: int = 1) -> int:
    """Input positions one output of a stack of 1-D convolutions sees.

    Layer l (from 0) has dilation ``dilation_growth ** l``, so the field is
    ``1 + (kernel_size - 1) * sum_l dilation_growth ** l``.
    """
    num_layers = check_int("num_layers", num_layers, 0, 10_000)
    kernel_size = check_size("kernel_size", kernel_size)
    dilation_growth = check_size("dilation_growth", dilation_growth, maximum=2**16)
    if dilation_growth == 1:
        total = num_layers
    else:  # a geometric series; Python ints do not overflow
        total = (dilation_growth**num_layers - 1) // (dilation_growth - 1)
    return 1 + (kernel_size - 1) * total


def conv_layers_to_cover(length: int, kernel_size: int, dilation_growth: int = 1) -> int:
    """Fewest convolution layers whose receptive field spans ``length`` positions.

    Plain convolutions need ``ceil((L - 1) / (k - 1))`` layers (linear in L); doubling the
    dilation every layer needs about ``log2(L)``.
    """
    length = check_size("length", length, maximum=2**62)  # arithmetic only: no loop over L
    kernel_size = check_size("kernel_size", kernel_size, minimum=2)
    dilation_growth = check_size("dilation_growth", dilation_growth, maximum=2**16)
    needed = math.ceil((length - 1) / (kernel_size - 1))  # sum of the dilations needed
    if dilation_growth == 1:
        return needed
    layers = 0  # the geometric sum doubles (at least) per layer: O(log L) iterations
    while receptive_field(layers, kernel_size, dilation_growth) < length:
        layers += 1
    return layers


def _parameter_device(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def input_influence(
    mixer: nn.Module, length: int, dim: int, position: int, seed: int = 0
) -> Tensor:
    """Which inputs affect output ``position``: gradient norms [L] of one output vector.

    Entry j is ``|| d (g . y_position) / d x_j ||`` for random x [1, L, D] and a random
    direction g; it is exactly zero where input j cannot reach the output.
    """
    from course_lib.batching import seeded_generator

    check_instance("mixer", mixer, nn.Module, "a module mapping [B, L, D] to [B, L, D]")
    length = check_size("length", length, maximum=2**20)
    dim = check_size("dim", dim, maximum=2**20)
    check_elements("length x dim", length * dim)
    position = check_int("position", position, 0, length - 1)
    generator = seeded_generator(seed)
    device = _parameter_device(mixer)
    x = torch.randn(1, length, dim, generator=generator).to(device).requires_grad_(True)
    direction = torch.randn(dim, generator=generator).to(device)
    try:
        output = mixer(x)
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"mixer cannot take x [1, L, D] = [1, {length}, {dim}]: {error}"
        ) from error
    if not isinstance(output, Tensor) or output.shape[:2] != (1, length) or output.shape[2] != dim:
        raise ValueError(
            f"mixer must map [1, L, D] = [1, {length}, {dim}] to the same shape, "
            f"got {getattr(output, 'shape', type(output).__name__)}"
        )
    (output[0, position] @ direction).backward()
    return x.grad[0].norm(dim=-1).detach().cpu()


def saved_tensor_bytes(function: Callable[[], Tensor]) -> int:
    """Bytes of activations autograd keeps for the backward pass of ``function()``.

    Counts each tensor saved for backward once (by storage), leaving out parameters; this is
    the memory a training step needs beyond the weights, on any device.
    """
    check_callable("function", function, "a function of no arguments")
    storages: Dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        if not isinstance(tensor, nn.Parameter):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return sum(storages.values())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure_cost(
    mixer: nn.Module,
    lengths: Sequence[int],
    batch_size: int = 8,
    dim: int = 64,
    repeats: int = 3,
    device: Optional[Union[str, torch.device]] = None,
) -> Dict[str, List[float]]:
    """Forward + backward time and saved-activation memory of ``mixer`` on x [B, L, D].

    Returns ``{"length": [...], "ms": [...], "megabytes": [...]}``: the median time of
    ``repeats`` runs after one warm-up (synchronised on a GPU) and ``saved_tensor_bytes``
    in MB, for each L in ``lengths``.
    """
    check_instance("mixer", mixer, nn.Module, "a module mapping [B, L, D] to [B, L, D]")
    if isinstance(lengths, (str, bytes)) or not isinstance(lengths, (list, tuple, range)):
        raise TypeError(f"lengths must be a list of sequence lengths, got {type(lengths).__name__}")
    lengths = [
        check_size(f"lengths[{i}]", length, maximum=2**20) for i, length in enumerate(lengths)
    ]
    batch_size = check_size("batch_size", batch_size, maximum=2**20)
    dim = check_size("dim", dim, maximum=2**20)
    repeats = check_size("repeats", repeats, maximum=1000)
    for length in lengths:
        check_elements("batch_size x lengths[i] x dim", batch_size * length * dim)
    device = check_device("device", device) or _parameter_device(mixer)
    mixer = mixer.to(device)
    result: Dict[str, List[float]] = {"length": [], "ms": [], "megabytes": []}
    for length in lengths:
        x = torch.randn(batch_size, length, dim, device=device, requires_grad=True)

        def step(x: Tensor = x) -> None:
            mixer(x).sum().backward()

        step()
        times = []
        for _ in range(repeats):
            _synchronize(device)
            start = time.perf_counter()
            step()
            _synchronize(device)
            times.append((time.perf_counter() - start) * 1000.0)
        mixer.zero_grad(set_to_none=True)
        result["length"].append(float(length))
        result["ms"].append(sorted(times)[len(times) // 2])
        result["megabytes"].append(saved_tensor_bytes(lambda x=x: mixer(x)) / 2**20)
    return result
