"""Recurrent networks from scratch: cells, layers, language models, seq2seq.

The cells and layers are drop-in twins of ``torch.nn``'s modules of the same name: same
parameter names and shapes, same gate order (LSTM: i, f, g, o; GRU: r, z, n), same forward
signature and return values, so ``ours.load_state_dict(torch_module.state_dict())`` works
and the outputs agree. Only the maths is written out here, in plain tensor operations.

The package reads in the order of the chapter:

- ``cells``: one time step (``rnn_step``, ``lstm_step``, ``gru_step``) and the cells;
- ``kernels``: backpropagation through time written out by hand (what the layers run);
- ``layers``: ``RNN``, ``LSTM``, ``GRU`` over whole sequences;
- ``gradients``: measuring gradients through time;
- ``language_model``: truncated BPTT and the character language model;
- ``tasks``: many-to-one and many-to-many models with small generated data sets;
- ``seq2seq``: sequence to sequence without attention.

Helpers that later chapters share live in their own modules and are re-exported here
under their old names: batching (``batchify``, ``TBPTTChunks``: ``course_lib.batching``),
sampling and decoding (``sampling_probs``, ``sample_next_token``, ``translate``,
``exact_match``, ``accuracy_by_length``: ``course_lib.decoding``).

Shape letters: ``B`` batch, ``T`` time steps, ``D`` input features, ``H`` hidden units,
``G`` gate rows (``H``, ``4H`` or ``3H``), ``L`` layers, ``V`` vocabulary size, ``C``
classes, ``N`` items or characters, ``S`` source length.
"""

from course_lib.batching import TBPTTChunks, batchify
from course_lib.decoding import (
    accuracy_by_length,
    exact_match,
    sample_next_token,
    sampling_probs,
    translate,
)
from course_lib.rnn.cells import (
    GRUCell,
    LSTMCell,
    LSTMState,
    RNNCell,
    gru_step,
    lstm_step,
    rnn_step,
)
from course_lib.rnn.gradients import input_gradient_norms, state_gradient_norms
from course_lib.rnn.kernels import GRULayer as _GRULayer  # noqa: F401 - the chapter shows it
from course_lib.rnn.kernels import LSTMLayer as _LSTMLayer  # noqa: F401 - the chapter shows it
from course_lib.rnn.kernels import RNNLayer as _RNNLayer  # noqa: F401 - the chapter shows it
from course_lib.rnn.language_model import (
    CharLanguageModel,
    TruncatedBPTT,
    detach_state,
    evaluate_bits_per_char,
)
from course_lib.rnn.layers import GRU, LSTM, RNN, State, init_forget_bias_, make_recurrent
from course_lib.rnn.seq2seq import Seq2Seq
from course_lib.rnn.tasks import (
    SequenceClassifier,
    SequenceTagger,
    bracket_depth_task,
    first_symbol_task,
    plot_task_types,
)

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "CharLanguageModel",
    "GRUCell",
    "LSTMCell",
    "LSTMState",
    "RNNCell",
    "Seq2Seq",
    "SequenceClassifier",
    "SequenceTagger",
    "State",
    "TBPTTChunks",
    "TruncatedBPTT",
    "accuracy_by_length",
    "batchify",
    "bracket_depth_task",
    "detach_state",
    "evaluate_bits_per_char",
    "exact_match",
    "first_symbol_task",
    "gru_step",
    "init_forget_bias_",
    "input_gradient_norms",
    "lstm_step",
    "make_recurrent",
    "plot_task_types",
    "rnn_step",
    "sample_next_token",
    "sampling_probs",
    "state_gradient_norms",
    "translate",
]
