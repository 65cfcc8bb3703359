"""Attention from first principles, in the order the chapter builds it up.

1. masks and scaled dot-product attention, and why the scores are scaled (``core``:
   ``scaled_dot_product_attention``, ``causal_mask``, ``padding_mask``,
   ``softmax_saturation``);
2. additive (Bahdanau) attention and the sequence-to-sequence model with attention, with
   the copying task that exposes the bottleneck of seq2seq without attention
   (``additive``: ``additive_attention``, ``AdditiveAttention``, ``AttentionDecoder``,
   ``AttentionSeq2Seq``, ``copy_task``);
3. image captioning with attention over a CNN feature grid (``captioning``:
   ``make_digit_sequences``, ``AttentionCaptioner``);
4. the general attention layer and self-attention (``self_attention``: ``AttentionLayer``,
   ``SelfAttention``, ``is_permutation_equivariant``) and positional encodings
   (``positions``: ``sinusoidal_positional_encoding``, ``LearnedPositionalEmbedding``);
5. multi-head attention, equal to ``torch.nn.MultiheadAttention``, with ``is_causal`` and
   a key/value cache, and a small self-attention tagger (``multihead``);
6. self-attention inside a CNN (``vision``: ``SelfAttention2d``, ``SelfAttentionClassifier``);
7. three ways to mix a sequence - RNN, 1-D convolution, self-attention - and what each
   costs (``mixing``: ``SequenceMixer``, ``measure_cost``, ``input_influence``).

Every attention layer can report its weights the same way: ``attention_maps(model,
*inputs)`` (``maps``) runs a model and returns each layer's weights by name.

Boolean masks follow ``torch.nn.functional.scaled_dot_product_attention``: **True means
"may attend"**. A float mask is added to the scores (use ``-inf`` to block). A query whose
every key is blocked gets all-zero weights and a zero output (no NaN), which is also what
PyTorch (2.5 and later) returns.

Helpers that other chapters share are re-exported here under their old names:
``length_bucketed_batches`` (``course_lib.batching``), ``accuracy_by_length`` and
``exact_match_ids`` (``course_lib.decoding``).

Shape letters: ``B`` batch, ``H`` heads, ``Lq`` queries, ``Lk`` keys/values, ``L`` sequence
length, ``S`` source length, ``T`` target length, ``E`` query/key features, ``Ev`` value
features, ``D`` model (embedding) dimension, ``A`` attention (alignment) hidden size,
``V`` vocabulary size, ``C`` channels, ``N`` items; ``Hf``/``Wf`` the height and width of
a feature map.
"""

from course_lib.attention.additive import (
    AdditiveAttention,
    AttentionDecoder,
    AttentionSeq2Seq,
    DecoderState,
    additive_attention,
    copy_task,
    reverse_padded,
)
from course_lib.attention.captioning import (
    AttentionCaptioner,
    DigitSequences,
    make_digit_sequences,
)
from course_lib.attention.core import (
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
    softmax_saturation,
)
from course_lib.attention.maps import attention_maps, record_attention
from course_lib.attention.mixing import (
    SequenceMixer,
    conv_layers_to_cover,
    input_influence,
    measure_cost,
    receptive_field,
    saved_tensor_bytes,
)
from course_lib.attention.multihead import (
    KeyValueCache,
    MultiHeadAttention,
    SelfAttentionTagger,
    merge_heads,
    sequence_task,
    split_heads,
)
from course_lib.attention.positions import (
    LearnedPositionalEmbedding,
    sinusoidal_positional_encoding,
)
from course_lib.attention.self_attention import (
    AttentionLayer,
    SelfAttention,
    is_permutation_equivariant,
)
from course_lib.attention.vision import SelfAttention2d, SelfAttentionClassifier
from course_lib.attention.widgets import text_explorer
from course_lib.batching import length_bucketed_batches
from course_lib.decoding import accuracy_by_length, exact_match_ids

__all__ = [
    "AdditiveAttention",
    "AttentionCaptioner",
    "AttentionDecoder",
    "AttentionLayer",
    "AttentionSeq2Seq",
    "DecoderState",
    "DigitSequences",
    "KeyValueCache",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "SelfAttention",
    "SelfAttention2d",
    "SelfAttentionClassifier",
    "SelfAttentionTagger",
    "SequenceMixer",
    "accuracy_by_length",
    "additive_attention",
    "attention_maps",
    "causal_mask",
    "conv_layers_to_cover",
    "copy_task",
    "exact_match_ids",
    "input_influence",
    "is_permutation_equivariant",
    "length_bucketed_batches",
    "make_digit_sequences",
    "measure_cost",
    "merge_heads",
    "padding_mask",
    "receptive_field",
    "record_attention",
    "reverse_padded",
    "saved_tensor_bytes",
    "scaled_dot_product_attention",
    "sequence_task",
    "sinusoidal_positional_encoding",
    "softmax_saturation",
    "split_heads",
    "text_explorer",
]
