"""Transformers from their blocks up: encoder and decoder blocks, the encoder-decoder of
"Attention Is All You Need", a decoder-only language model (GPT) with key/value caching,
an encoder-only classifier and the Vision Transformer (ViT).

- ``blocks``: ``TransformerBlock``, ``TransformerDecoderBlock`` (parameter names of
  ``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer``; their weights load),
  ``count_parameters``, ``parameter_table``;
- ``encoder_decoder``: ``TransformerConfig`` (the paper's base model) and ``Transformer``;
- ``gpt``: ``GPTConfig``, ``GPT``, ``causal_lm_loss``;
- ``classifier``: ``make_palindromes``, ``ClassifierConfig``, ``TransformerClassifier``;
- ``vit``: ``patchify``, ``embed_patches``, ``ViTConfig``, ``ViT``.

Each model keeps its constants in a config dataclass (the nanoGPT ``GPTConfig`` pattern):
``model.config`` holds them and ``Model.from_config(config)`` builds a model from one.
Attention itself is ``course_lib.attention.MultiHeadAttention`` (with ``is_causal`` and a
``KeyValueCache``, re-exported here); ``random_windows`` is ``course_lib.batching``'s.

Boolean masks mean **True = may attend**, as everywhere in ``course_lib`` (PyTorch's
``nn.Transformer*Layer`` masks mean the opposite: True = blocked). A float mask is added
to the attention scores.

Shape letters: ``B`` batch, ``L`` sequence length, ``S`` source length, ``T`` target
length, ``D`` model width (``d_model``), ``F`` feed-forward width, ``H`` heads, ``Dh`` head
width ``D / H``, ``V`` vocabulary size, ``K`` classes, ``C``/``H``/``W`` image channels,
height and width, ``P`` patch size, ``N`` patches per image.
"""

from course_lib.attention import KeyValueCache, MultiHeadAttention
from course_lib.batching import random_windows
from course_lib.transformer.blocks import (
    TransformerBlock,
    TransformerDecoderBlock,
    count_parameters,
    parameter_table,
)
from course_lib.transformer.classifier import (
    ClassifierConfig,
    PalindromeData,
    TransformerClassifier,
    make_palindromes,
)
from course_lib.transformer.encoder_decoder import Transformer, TransformerConfig
from course_lib.transformer.gpt import GPT, GPTConfig, causal_lm_loss
from course_lib.transformer.vit import ViT, ViTConfig, embed_patches, patchify

#: What the blocks call for attention, under the name the chapter shows it by: the
#: self-attention with a key/value cache now lives in ``MultiHeadAttention.forward``.
_attend = MultiHeadAttention.forward

__all__ = [
    "GPT",
    "ClassifierConfig",
    "GPTConfig",
    "KeyValueCache",
    "PalindromeData",
    "Transformer",
    "TransformerBlock",
    "TransformerClassifier",
    "TransformerConfig",
    "TransformerDecoderBlock",
    "ViT",
    "ViTConfig",
    "causal_lm_loss",
    "count_parameters",
    "embed_patches",
    "make_palindromes",
    "parameter_table",
    "patchify",
    "random_windows",
]
