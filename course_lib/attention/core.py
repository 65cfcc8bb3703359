"""Masks and scaled dot-product attention, and why the scores are scaled.

Boolean masks follow ``torch.nn.functional.scaled_dot_product_attention``: **True means
"may attend"**. A float mask is added to the scores (use ``-inf`` to block). A query whose
every key is blocked gets all-zero weights and a zero output (no NaN), which is also what
PyTorch (2.5 and later) returns.

Shape letters: ``B`` batch, ``Lq`` queries, ``Lk`` keys/values, ``L`` sequence length,
``E`` query/key features, ``Ev`` value features, ``N`` samples.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.validation import (
    check_device,
    check_float,
    check_int,
    check_size,
    check_tensor,
)

__all__ = [
    "causal_mask",
    "check_mask",
    "padding_mask",
    "scaled_dot_product_attention",
    "softmax_saturation",
]

Device = Optional[Union[str, torch.device]]


def check_mask(name: str, mask: Any, scores_shape: Tuple[int, ...]) -> Tensor:
    """A mask that broadcasts to the scores [..., Lq, Lk]: bool (True = may attend) or float
    (added to the scores, no NaN). It may be smaller than the scores, never larger."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"{name} must be bool (True = may attend) or float, got {mask.dtype}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != torch.Size(scores_shape):
        raise ValueError(
            f"{name} of shape {list(mask.shape)} does not broadcast to the scores "
            f"[..., Lq, Lk] = {list(scores_shape)}"
        )
    if mask.is_floating_point() and mask.device.type == "cpu" and bool(mask.isnan().any()):
        raise ValueError(f"{name} must not hold NaN (use -inf to block a key)")
    return mask


def causal_mask(length: int, device: Device = None) -> Tensor:
    """Bool mask [L, L], True on and below the diagonal: position i may attend to j <= i."""
    length = check_int("length", length, 0, 2**16)
    device = check_device("device", device)
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: Tensor, max_length: Optional[int] = None) -> Tensor:
    """Bool key mask [B, 1, 1, Lk] from sequence lengths [B]: True on real tokens.

    ``Lk`` is ``max_length`` (default: the longest length). The mask broadcasts against
    scores [B, H, Lq, Lk]; use ``[:, 0]`` for [B, 1, Lk] (scores without heads) or
    ``[:, 0, 0]`` for [B, Lk].
    """
    check_tensor("lengths", lengths, "B", dtype="integer")
    longest = int(lengths.max()) if lengths.numel() else 0
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"lengths must be non-negative, got {int(lengths.min())}")
    if max_length is None:
        max_length = longest
    else:
        max_length = check_size("max_length", max_length, minimum=longest)
    positions = torch.arange(max_length, device=lengths.device)
    return (positions.unsqueeze(0) < lengths.unsqueeze(1))[:, None, None, :]


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    check_tensor("q", q, "..., Lq, E", dtype="floating")
    check_tensor(
        "k", k, "..., Lk, E", dtype="floating", sizes={"E": q.shape[-1], "_origin_E": "from q"}
    )
    check_tensor(
        "v", v, "..., Lk, Ev", dtype="floating", sizes={"Lk": k.shape[-2], "_origin_Lk": "from k"}
    )
    for name, tensor in (("k", k), ("v", v)):
        if tensor.dtype != q.dtype:
            raise TypeError(
                f"{name} is {tensor.dtype} but q is {q.dtype}; pass all three in one dtype"
            )
        if tensor.device != q.device:
            raise ValueError(f"{name} is on {tensor.device} but q is on {q.device}")
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            "q, k and v must have broadcastable batch dimensions, got "
            f"q {list(q.shape)}, k {list(k.shape)} and v {list(v.shape)}"
        ) from None


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Optional[Tensor] = None,
    dropout_p: float = 0.0,
    scale: Optional[float] = None,
) -> Tuple[Tensor, Tensor]:
    """``softmax(q k^T * scale + mask) v`` and the attention weights.

    Args:
        q: queries [..., Lq, E]. k: keys [..., Lk, E]. v: values [..., Lk, Ev].
        mask: bool (True = may attend) or float (added to the scores), broadcastable to
            [..., Lq, Lk]; None attends everywhere.
        dropout_p: dropout probability on the weights (use 0 at evaluation time).
        scale: multiplies the scores; default ``1 / sqrt(E)``.

    Returns:
        ``(output [..., Lq, Ev], weights [..., Lq, Lk])``; each row of the weights sums to 1,
        except fully blocked rows, which are all zero (and so is their output).
    """
    _check_qkv(q, k, v)
    dropout_p = check_float("dropout_p", dropout_p, 0.0, 1.0, include_maximum=False)
    scale = 1.0 / math.sqrt(max(q.shape[-1], 1)) if scale is None else check_float("scale", scale)
    scores = (q @ k.transpose(-2, -1)) * scale  # [..., Lq, Lk]
    if mask is not None:
        check_mask("mask", mask, tuple(scores.shape))
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        # softmax of a row that is all -inf is 0/0 = NaN: define it as "attends to nothing".
        # The rows are found from the (small, broadcast) mask, and only they are touched, so
        # a NaN that comes in with q, k or v still shows.
        if mask.dtype == torch.bool:
            blocked = ~mask.any(dim=-1, keepdim=True)
        else:
            blocked = torch.isneginf(mask).all(dim=-1, keepdim=True)
        weights = weights.masked_fill(blocked, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p, training=True)
    return weights @ v, weights


def softmax_saturation(
    dims: Sequence[int],
    num_keys: int = 32,
    num_samples: int = 2000,
    scaled: bool = True,
    seed: int = 0,
) -> Dict[str, Tensor]:
    """How peaked the attention softmax gets as the feature size E grows.

    For each E in ``dims``, draws ``num_samples`` queries and sets of ``num_keys`` keys with
    i.i.d. N(0, 1) entries, so a dot product ``q . k`` has variance E, and applies the
    softmax to the scores (divided by ``sqrt(E)`` when ``scaled``).

    Returns:
        A dict of float64 tensors [len(dims)]: ``score_std`` (standard deviation of the
        scores fed to the softmax), ``max_weight`` (mean largest weight; 1 means one-hot)
        and ``jacobian_norm`` (mean Frobenius norm of the softmax Jacobian
        ``diag(p) - p p^T``, the factor every gradient into the scores is multiplied by).
    """
    from course_lib.batching import seeded_generator
    from course_lib.validation import check_elements

    if isinstance(dims, (str, bytes)) or not isinstance(dims, (list, tuple, range)):
        raise TypeError(f"dims must be a list of feature sizes, got {type(dims).__name__}")
    dims = [check_size(f"dims[{index}]", dim) for index, dim in enumerate(dims)]
    num_keys = check_size("num_keys", num_keys)
    num_samples = check_size("num_samples", num_samples)
    for dim in dims:
        check_elements(
            "num_samples x num_keys x dims[i]", num_samples * num_keys * max(dim, num_keys)
        )
    generator = seeded_generator(seed)
    out: Dict[str, List[float]] = {"score_std": [], "max_weight": [], "jacobian_norm": []}
    for dim in dims:
        q = torch.randn(num_samples, 1, dim, generator=generator, dtype=torch.float64)
        k = torch.randn(num_samples, num_keys, dim, generator=generator, dtype=torch.float64)
        scores = (q @ k.transpose(1, 2)).squeeze(1)  # [N, Lk], variance E
        if scaled:
            scores = scores / math.sqrt(dim)
        p = torch.softmax(scores, dim=-1)
        jacobian = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)  # [N, Lk, Lk]
        out["score_std"].append(float(scores.std()))
        out["max_weight"].append(float(p.max(dim=-1).values.mean()))
        out["jacobian_norm"].append(float(jacobian.flatten(1).norm(dim=-1).mean()))
    return {key: torch.tensor(values, dtype=torch.float64) for key, values in out.items()}
