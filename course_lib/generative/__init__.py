"""Generative models: a classical baseline, PixelCNN, autoencoders, VAEs and GANs.

One module per concept, in the order of the chapter (every public name is importable from
``course_lib.generative`` itself):

1. ``data``: binarising digits, nats to bits per dimension, batches, non-digit shapes;
2. ``mixture``: ``BernoulliMixture``, a mixture of independent Bernoulli components fitted
   by EM, the classical density baseline (and a clustering model);
3. ``pixelcnn``: autoregressive models, ``pixelcnn_mask``, ``MaskedConv2d``, ``PixelCNN``;
   ``pixelrnn``: ``RowLSTM``, the row-recurrent PixelRNN;
4. ``autoencoder``: ``Autoencoder``;
5. ``vae``: ``reparameterize``, ``kl_divergence``, ``bernoulli_log_likelihood``, ``elbo``,
   ``VAE``;
6. ``gan``: ``Generator``, ``Discriminator``, ``discriminator_loss``, ``generator_loss``,
   ``GAN`` (alternating updates driven by ``course_lib.train.fit``), a 2-D toy data set;
7. ``evaluation``: judging samples, ``DigitClassifier``, ``frechet_distance``,
   ``classifier_scores``, and ``resample_by_class`` (a conditional model p(x | y) from
   p(x) and p(y | x) by Bayes' rule).

Every model that trains follows the course interface ``forward(x, targets=None)`` returning
``(output, loss)``; for the density models and autoencoders ``targets`` defaults to ``x``
itself (the model predicts its own input). Every function that samples takes a ``seed``
(or a ``torch.Generator``), so a notebook can reproduce a figure exactly. Bad arguments
raise ``TypeError`` (wrong type or dtype, including data of another floating dtype than a
model's parameters) or ``ValueError`` (wrong shape or value) naming the argument.

Shape letters: ``B`` batch, ``N`` number of samples, ``C`` channels, ``H``/``W`` image
height and width, ``D`` numbers per data item (``C * H * W`` for images), ``Z`` latent
dimensions, ``K`` mixture components or classes, ``F`` feature dimensions, ``k`` kernel size.
"""

from __future__ import annotations

from typing import Dict

from course_lib.generative.autoencoder import Autoencoder
from course_lib.generative.data import (
    binarize,
    nats_to_bits_per_dim,
    shapes_as_digits,
    shuffled_batches,
)
from course_lib.generative.evaluation import (
    DigitClassifier,
    classifier_scores,
    frechet_distance,
    predicted_class_counts,
    resample_by_class,
)
from course_lib.generative.gan import (
    GAN,
    Discriminator,
    Generator,
    discriminator_loss,
    generator_loss,
    mode_coverage,
    ring_of_gaussians,
)
from course_lib.generative.mixture import BernoulliMixture
from course_lib.generative.pixelcnn import MaskedConv2d, PixelCNN, dependency_matrix, pixelcnn_mask
from course_lib.generative.pixelrnn import RowLSTM
from course_lib.generative.vae import (
    VAE,
    bernoulli_log_likelihood,
    elbo,
    kl_divergence,
    reparameterize,
)

__all__ = [
    "GAN",
    "MODEL_COLORS",
    "VAE",
    "Autoencoder",
    "BernoulliMixture",
    "DigitClassifier",
    "Discriminator",
    "Generator",
    "MaskedConv2d",
    "PixelCNN",
    "RowLSTM",
    "bernoulli_log_likelihood",
    "binarize",
    "classifier_scores",
    "dependency_matrix",
    "discriminator_loss",
    "elbo",
    "frechet_distance",
    "generator_loss",
    "kl_divergence",
    "mode_coverage",
    "nats_to_bits_per_dim",
    "pixelcnn_mask",
    "predicted_class_counts",
    "reparameterize",
    "resample_by_class",
    "ring_of_gaussians",
    "shapes_as_digits",
    "shuffled_batches",
]

#: One colour per model family, used by every figure of the chapter.
MODEL_COLORS: Dict[str, str] = {
    "real": "#2ca02c",
    "mixture": "#7f7f7f",
    "pixelcnn": "#d62728",
    "autoencoder": "#8c564b",
    "vae": "#9467bd",
    "gan": "#1f77b4",
    "noise": "#bcbd22",
    "shapes": "#e377c2",
}
