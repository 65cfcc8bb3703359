"""One way to get attention weights out of any model: record them while it runs.

Every attention layer of the course (``AdditiveAttention``, ``AttentionLayer``,
``SelfAttention``, ``MultiHeadAttention``, ``SelfAttention2d``) is a ``RecordsAttention``:
inside ``record_attention(model)`` each of them keeps the weights of every call, even when
the model asked for no weights (the layer then takes its explicit path instead of the fused
kernel). ``attention_maps(model, *inputs)`` runs the model once that way and returns the
weights by layer name; the models' own ``attention_weights`` / ``attention_maps`` /
``cross_attention`` methods are thin wrappers around it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional

import torch
from torch import Tensor, nn

from course_lib.utils import evaluating
from course_lib.validation import check_callable, check_instance

__all__ = ["RecordsAttention", "attention_maps", "record_attention"]


class RecordsAttention:
    """Mixin for attention layers: ``self.recording`` tells whether weights are wanted, and
    ``self.keep(weights)`` stores them (detached) while ``record_attention`` is active."""

    _attention_record: Optional[List[Tensor]] = None

    @property
    def recording(self) -> bool:
        return self._attention_record is not None

    def keep(self, weights: Optional[Tensor]) -> None:
        if self._attention_record is not None and weights is not None:
            self._attention_record.append(weights.detach())


@contextmanager
def record_attention(model: nn.Module) -> Iterator[Dict[str, List[Tensor]]]:
    """Within the block, every attention layer of ``model`` records its weights.

    Yields a dict from layer name (as in ``model.named_modules()``, e.g.
    ``"blocks.0.self_attn"``) to the list of weights of each call, in call order.
    """
    check_instance("model", model, nn.Module, "a torch.nn.Module")
    records: Dict[str, List[Tensor]] = {}
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, RecordsAttention)]
    for name, layer in layers:
        layer._attention_record = records.setdefault(name, [])
    try:
        yield records
    finally:
        for _, layer in layers:
            layer._attention_record = None


def _stack(calls: List[Tensor]) -> Tensor:
    if len(calls) == 1:
        return calls[0]
    if all(call.shape == calls[0].shape for call in calls):
        return torch.stack(calls, dim=1)
    return torch.cat(calls, dim=-2)  # incremental decoding: new queries, more keys each call


@torch.no_grad()
def attention_maps(
    model: nn.Module, *inputs: Any, method: Optional[str] = None, **kwargs: Any
) -> Dict[str, Tensor]:
    """Run ``model`` (in eval mode, without gradients) and return every attention layer's
    weights, by layer name.

    ``method`` names the method to call (default: ``forward``), with ``inputs`` and
    ``kwargs``. A layer called once gives its weights as they are (for example [B, H, Lq, Lk]
    for multi-head attention); a layer called once per decoder step gives them stacked along
    dimension 1 (for example [B, T, S] for additive attention). Layers that were not called
    are left out.
    """
    check_instance("model", model, nn.Module, "a torch.nn.Module")
    function = model if method is None else getattr(model, str(method), None)
    check_callable("method", function, f"the name of a method of {type(model).__name__}")
    with evaluating(model), record_attention(model) as records:
        function(*inputs, **kwargs)
    return {name: _stack(calls) for name, calls in records.items() if calls}
