"""Bad input to course_lib.generative: every public function and class answers a wrong
argument with a clear error, TypeError for a wrong type or dtype (including data of another
floating dtype than a model's parameters) and ValueError for a wrong shape or value, whose
message names the argument.

The probe is systematic (the case builders live in ``tests/test_visualization_bad_input.py``):
every tensor argument with the wrong type, dtype and shapes (and non-finite values where the
function reads them), every size with a float, a string, a bool, a value below its minimum
and an absurd value, every number with NaN, infinity, a string and values out of range.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List

import pytest
import torch

from course_lib import generative as G
from tests.test_visualization_bad_input import (
    Bad,
    cases,
    float_cases,
    int_cases,
    one,
    tensor_cases,
)


def shape_cases(prefix: str, call: Callable[[Any], Any]) -> List[Bad]:
    """``data_shape``: not a tuple, an empty tuple, a zero or float size, absurd sizes."""
    return cases(
        prefix,
        "data_shape",
        call,
        [
            ("= 64", 64, TypeError),
            ("= 'abc'", "abc", TypeError),
            ("= ()", (), ValueError),
            ("= (1, 0, 8)", (1, 0, 8), ValueError),
            ("= (1, 8.0, 8)", (1, 8.0, 8), TypeError),
            ("absurd", (1, 10**6, 10**6), ValueError),
        ],
    )


torch.manual_seed(0)
IMAGES = (torch.rand(4, 1, 8, 8) < 0.3).float()
CASES: List[Bad] = []

# ------------------------------------------------------------------------------------- data
CASES += tensor_cases("binarize", "images", lambda v: G.binarize(v), IMAGES, integer=False)
CASES += float_cases("binarize", "threshold", lambda v: G.binarize(IMAGES, v))
CASES += cases(
    "nats_to_bits_per_dim",
    "nats",
    lambda v: G.nats_to_bits_per_dim(v, 64),
    [("= 'x'", "x", TypeError), ("as a list", [1.0], TypeError), ("= nan", math.nan, ValueError)],
)
CASES += int_cases(
    "nats_to_bits_per_dim", "num_dims", lambda v: G.nats_to_bits_per_dim(1.0, v), 1, absurd=False
)
CASES += cases(
    "shuffled_batches",
    "data",
    lambda v: G.shuffled_batches(v, 2),
    [
        ("as a list", [1.0, 2.0], TypeError),
        ("empty", torch.zeros(0, 3), ValueError),
        ("a scalar", torch.tensor(1.0), ValueError),
    ],
)
CASES += int_cases(
    "shuffled_batches", "batch_size", lambda v: G.shuffled_batches(IMAGES, v), 1, absurd=False
)
CASES += int_cases(
    "shuffled_batches", "seed", lambda v: G.shuffled_batches(IMAGES, 2, v), 0, absurd=False
)
CASES += int_cases("shapes_as_digits", "num_images", lambda v: G.shapes_as_digits(v), 0)
CASES += int_cases("shapes_as_digits", "seed", lambda v: G.shapes_as_digits(2, v), 0, absurd=False)

# ---------------------------------------------------------------------------------- mixture
CASES += int_cases("BernoulliMixture", "num_components", lambda v: G.BernoulliMixture(v), 1)
CASES += float_cases("BernoulliMixture", "smoothing", lambda v: G.BernoulliMixture(2, v), [-0.1])
CASES += tensor_cases(
    "BernoulliMixture.fit",
    "images",
    lambda v: G.BernoulliMixture(2).fit(v, iterations=2),
    IMAGES,
    shapes=[(4,)],
    nonfinite=[math.nan, math.inf],
)
CASES += one(
    "BernoulliMixture.fit: images with values above 1",
    lambda: G.BernoulliMixture(2).fit(IMAGES * 3, iterations=2),
    "images",
    ValueError,
)
CASES += one(
    "BernoulliMixture.fit: images empty",
    lambda: G.BernoulliMixture(2).fit(IMAGES[:0], iterations=2),
    "images",
    ValueError,
)
CASES += int_cases(
    "BernoulliMixture.fit", "iterations", lambda v: G.BernoulliMixture(2).fit(IMAGES, v), 1
)
CASES += int_cases(
    "BernoulliMixture.fit",
    "seed",
    lambda v: G.BernoulliMixture(2).fit(IMAGES, 2, seed=v),
    0,
    absurd=False,
)
MIXTURE = G.BernoulliMixture(2)
MIXTURE.fit(IMAGES, iterations=2)
for method in ("log_prob", "responsibilities"):
    CASES += tensor_cases(
        f"BernoulliMixture.{method}",
        "images",
        lambda v, m=method: getattr(MIXTURE, m)(v),
        IMAGES,
        shapes=[(4, 1, 4, 4), (4, 64)],
        nonfinite=[math.nan],
    )
CASES += one(
    "BernoulliMixture.log_prob: before fit",
    lambda: G.BernoulliMixture(2).log_prob(IMAGES),
    "fit",
    RuntimeError,
)
CASES += int_cases("BernoulliMixture.sample", "num_samples", lambda v: MIXTURE.sample(v), 0)
CASES += cases(
    "BernoulliMixture.sample",
    "seed",
    lambda v: MIXTURE.sample(2, seed=v),
    [("= 1.5", 1.5, TypeError), ("= -1", -1, ValueError)],
)

# --------------------------------------------------------------------------------- PixelCNN
CASES += int_cases("pixelcnn_mask", "kernel_size", lambda v: G.pixelcnn_mask(v), 1)
CASES += one(
    "pixelcnn_mask: kernel_size even", lambda: G.pixelcnn_mask(4), "kernel_size", ValueError
)
CASES += cases(
    "pixelcnn_mask",
    "mask_type",
    lambda v: G.pixelcnn_mask(3, v),
    [("= 'C'", "C", ValueError), ("= 'a'", "a", ValueError), ("= None", None, ValueError)],
)
CASES += int_cases("MaskedConv2d", "in_channels", lambda v: G.MaskedConv2d(v, 2, 3), 1)
CASES += int_cases("MaskedConv2d", "out_channels", lambda v: G.MaskedConv2d(1, v, 3), 1)
CASES += one(
    "MaskedConv2d: bias = 'yes'", lambda: G.MaskedConv2d(1, 2, 3, bias="yes"), "bias", TypeError
)
CONV = G.MaskedConv2d(1, 2, 3)
CASES += tensor_cases(
    "MaskedConv2d.forward",
    "x",
    lambda v: CONV(v),
    IMAGES,
    shapes=[(2, 8, 8), (2, 3, 8, 8)],
    double=True,
)
CASES += int_cases("PixelCNN", "hidden_channels", lambda v: G.PixelCNN(hidden_channels=v), 1)
CASES += int_cases("PixelCNN", "num_layers", lambda v: G.PixelCNN(num_layers=v), 0)
CASES += int_cases("PixelCNN", "first_kernel_size", lambda v: G.PixelCNN(first_kernel_size=v), 1)
CASES += one(
    "PixelCNN: first_kernel_size even",
    lambda: G.PixelCNN(first_kernel_size=4),
    "first_kernel_size",
    ValueError,
)
CASES += int_cases("PixelCNN", "kernel_size", lambda v: G.PixelCNN(kernel_size=v), 1)
CASES += float_cases("PixelCNN", "dropout", lambda v: G.PixelCNN(dropout=v), [1.0, -0.1])
CASES += int_cases("RowLSTM", "hidden_channels", lambda v: G.RowLSTM(hidden_channels=v), 1)
CASES += int_cases("RowLSTM", "kernel_size", lambda v: G.RowLSTM(kernel_size=v), 1)
CASES += one(
    "RowLSTM: kernel_size even", lambda: G.RowLSTM(kernel_size=4), "kernel_size", ValueError
)
CASES += float_cases("RowLSTM", "dropout", lambda v: G.RowLSTM(dropout=v), [1.0, -0.1])
PIXELCNN = G.PixelCNN(hidden_channels=4, num_layers=1)
# PixelCNN and the Row LSTM share PixelModel's forward, log_prob and sample: the same cases.
for name, model in (("PixelCNN", PIXELCNN), ("RowLSTM", G.RowLSTM(hidden_channels=4))):
    for method in ("forward", "logits", "log_prob"):
        call = model if method == "forward" else getattr(model, method)
        CASES += tensor_cases(
            f"{name}.{method}",
            "x",
            lambda v, c=call: c(v),
            IMAGES,
            shapes=[(2, 8, 8), (2, 2, 8, 8)],
            double=True,
        )
    CASES += cases(
        f"{name}.forward",
        "targets",
        lambda v, m=model: m(IMAGES, v),
        [
            ("as a list", IMAGES.tolist(), TypeError),
            ("of shape [4, 64]", IMAGES.flatten(1), ValueError),
            ("of shape [3, 1, 8, 8]", IMAGES[:3], ValueError),
        ],
    )
    CASES += int_cases(f"{name}.sample", "num_samples", lambda v, m=model: m.sample(v), 0)
    CASES += cases(
        f"{name}.sample",
        "image_size",
        lambda v, m=model: m.sample(1, image_size=v),
        [
            ("= 8", 8, TypeError),
            ("= (8,)", (8,), ValueError),
            ("= (0, 8)", (0, 8), ValueError),
            ("= (8.0, 8)", (8.0, 8), TypeError),
            ("absurd", (10**6, 10**6), ValueError),
        ],
    )
    CASES += cases(
        f"{name}.sample",
        "seed",
        lambda v, m=model: m.sample(1, (2, 2), v),
        [("= 1.5", 1.5, TypeError)],
    )
LOGITS = PIXELCNN.eval().logits
CASES += one(
    "dependency_matrix: function = 3", lambda: G.dependency_matrix(3), "function", TypeError
)
CASES += one(
    "dependency_matrix: function of the wrong output",
    lambda: G.dependency_matrix(lambda x: x.sum(), image_size=(3, 3)),
    "function",
    ValueError,
)
CASES += cases(
    "dependency_matrix",
    "image_size",
    lambda v: G.dependency_matrix(LOGITS, image_size=v),
    [
        ("= 8", 8, TypeError),
        ("= (0, 8)", (0, 8), ValueError),
        ("absurd", (10**6, 10**6), ValueError),
    ],
)
CASES += int_cases(
    "dependency_matrix", "num_inputs", lambda v: G.dependency_matrix(LOGITS, (3, 3), v), 1
)
CASES += cases(
    "dependency_matrix",
    "device",
    lambda v: G.dependency_matrix(LOGITS, (3, 3), device=v),
    [("= 'banana'", "banana", ValueError), ("= 3", 3, TypeError)],
)

# ----------------------------------------------------------------------------- autoencoders
_Z = torch.randn(4, 3)
for name, cls in (("Autoencoder", G.Autoencoder), ("VAE", G.VAE)):
    CASES += shape_cases(name, lambda v, c=cls: c(data_shape=v))
    CASES += int_cases(name, "latent_dim", lambda v, c=cls: c(latent_dim=v), 1)
    CASES += int_cases(name, "hidden_dim", lambda v, c=cls: c(hidden_dim=v), 1)
    model = cls(latent_dim=3, hidden_dim=8)
    CASES += tensor_cases(
        f"{name}.encode",
        "x",
        lambda v, m=model: m.encode(v),
        IMAGES,
        shapes=[(4, 64), (4, 1, 4, 4)],
        double=True,
    )
    CASES += tensor_cases(
        f"{name}.decode",
        "z",
        lambda v, m=model: m.decode(v),
        _Z,
        shapes=[(4,), (4, 5)],
        double=True,
    )
    CASES += cases(
        f"{name}.forward",
        "targets",
        lambda v, m=model: m(IMAGES, v),
        [
            ("as a list", IMAGES.tolist(), TypeError),
            ("of shape [4, 1, 8, 1]", IMAGES[..., :1], ValueError),
            ("of shape [1, 1, 8, 8]", IMAGES[:1], ValueError),
        ],
    )
CASES += float_cases("VAE", "beta", lambda v: G.VAE(beta=v), [-1.0])
VAE = G.VAE(latent_dim=3, hidden_dim=8)
CASES += int_cases(
    "VAE.evidence_lower_bound", "num_samples", lambda v: VAE.evidence_lower_bound(IMAGES, v), 1
)
CASES += int_cases(
    "VAE.importance_log_likelihood",
    "num_samples",
    lambda v: VAE.importance_log_likelihood(IMAGES, v),
    1,
)
CASES += one(
    "VAE.importance_log_likelihood: num_samples x images too large",
    lambda: VAE.importance_log_likelihood(IMAGES[:1].expand(10**5, 1, 8, 8), 10**5),
    "num_samples",
    ValueError,
)
CASES += int_cases("VAE.sample", "num_samples", lambda v: VAE.sample(v), 0)
CASES += one("VAE.sample: mean = 'yes'", lambda: VAE.sample(2, mean="yes"), "mean", TypeError)

# -------------------------------------------------------------------------------- VAE maths
MU, LOGVAR = torch.randn(4, 3), torch.randn(4, 3)
for name, function in (("reparameterize", G.reparameterize), ("kl_divergence", G.kl_divergence)):
    CASES += tensor_cases(name, "mu", lambda v, f=function: f(v, LOGVAR), MU, shapes=[(4, 2)])
    CASES += tensor_cases(name, "logvar", lambda v, f=function: f(MU, v), LOGVAR, shapes=[(4, 2)])
    CASES += one(
        f"{name}: mu a scalar", lambda f=function: f(MU[0, 0], LOGVAR[0, 0]), "mu", ValueError
    )
    CASES += one(
        f"{name}: logvar in float64", lambda f=function: f(MU, LOGVAR.double()), "logvar", TypeError
    )
    CASES += one(
        f"{name}: logvar on another device",
        lambda f=function: f(MU, LOGVAR.to("meta")),
        "logvar",
        ValueError,
    )
CASES += one(
    "reparameterize: generator = 0", lambda: G.reparameterize(MU, LOGVAR, 0), "generator", TypeError
)
LOGITS8 = torch.randn(4, 1, 8, 8)
CASES += tensor_cases(
    "bernoulli_log_likelihood",
    "logits",
    lambda v: G.bernoulli_log_likelihood(v, IMAGES),
    LOGITS8,
    shapes=[(4, 64)],
)
CASES += one(
    "bernoulli_log_likelihood: logits a scalar",
    lambda: G.bernoulli_log_likelihood(torch.tensor(0.0), torch.tensor(1.0)),
    "logits",
    ValueError,
)
CASES += cases(
    "bernoulli_log_likelihood",
    "x",
    lambda v: G.bernoulli_log_likelihood(LOGITS8, v),
    [
        ("as a list", IMAGES.tolist(), TypeError),
        ("of shape [4, 64]", IMAGES.flatten(1), ValueError),
    ],
)
CASES += one(
    "elbo: mu of another batch",
    lambda: G.elbo(IMAGES, LOGITS8, MU[:3], LOGVAR[:3]),
    "mu",
    ValueError,
)
CASES += one(
    "elbo: mu of one row (would broadcast)",
    lambda: G.elbo(IMAGES, LOGITS8, MU[:1], LOGVAR[:1]),
    "mu",
    ValueError,
)
CASES += one(
    "elbo: x of another shape", lambda: G.elbo(IMAGES[:3], LOGITS8, MU, LOGVAR), "x", ValueError
)

# -------------------------------------------------------------------------------------- GAN
CASES += int_cases("Generator", "latent_dim", lambda v: G.Generator(latent_dim=v), 1)
CASES += int_cases("Generator", "hidden_dim", lambda v: G.Generator(hidden_dim=v), 1)
CASES += shape_cases("Generator", lambda v: G.Generator(data_shape=v))
CASES += one("Generator: output 'tanh'", lambda: G.Generator(output="tanh"), "output", ValueError)
GENERATOR = G.Generator(latent_dim=3, hidden_dim=8)
CASES += tensor_cases(
    "Generator.forward", "z", lambda v: GENERATOR(v), _Z, shapes=[(4,), (4, 5)], double=True
)
CASES += int_cases(
    "Generator.sample_latent", "num_samples", lambda v: GENERATOR.sample_latent(v), 0
)
CASES += int_cases("Generator.sample", "num_samples", lambda v: GENERATOR.sample(v), 0)
CASES += shape_cases("Discriminator", lambda v: G.Discriminator(data_shape=v))
CASES += int_cases("Discriminator", "hidden_dim", lambda v: G.Discriminator(hidden_dim=v), 1)
CASES += float_cases("Discriminator", "dropout", lambda v: G.Discriminator(dropout=v), [1.0, -0.5])
DISCRIMINATOR = G.Discriminator(hidden_dim=8)
CASES += tensor_cases(
    "Discriminator.forward",
    "x",
    lambda v: DISCRIMINATOR(v),
    IMAGES,
    shapes=[(4, 64), (4, 1, 4, 4)],
    double=True,
)
REAL, FAKE = torch.randn(5), torch.randn(3)
CASES += tensor_cases(
    "discriminator_loss",
    "real_logits",
    lambda v: G.discriminator_loss(v, FAKE),
    REAL,
    shapes=[(5, 1), (0,)],
)
CASES += tensor_cases(
    "discriminator_loss",
    "fake_logits",
    lambda v: G.discriminator_loss(REAL, v),
    FAKE,
    shapes=[(3, 1), (0,)],
    double=True,
)
CASES += tensor_cases(
    "generator_loss", "fake_logits", lambda v: G.generator_loss(v), FAKE, shapes=[(3, 1), (0,)]
)
CASES += one(
    "generator_loss: non_saturating = 'no'",
    lambda: G.generator_loss(FAKE, non_saturating="no"),
    "non_saturating",
    TypeError,
)
CASES += one(
    "GAN: generator an nn.Linear",
    lambda: G.GAN(torch.nn.Linear(2, 2), DISCRIMINATOR),
    "generator",
    TypeError,
)
CASES += one("GAN: discriminator None", lambda: G.GAN(GENERATOR, None), "discriminator", TypeError)
CASES += one(
    "GAN: discriminator for other data",
    lambda: G.GAN(GENERATOR, G.Discriminator(data_shape=(2,))),
    "discriminator",
    ValueError,
)
CASES += int_cases("GAN", "discriminator_steps", lambda v: G.GAN(GENERATOR, DISCRIMINATOR, v), 1)
CASES += one(
    "GAN: non_saturating = 1",
    lambda: G.GAN(GENERATOR, DISCRIMINATOR, non_saturating=1),
    "non_saturating",
    TypeError,
)
GAN = G.GAN(GENERATOR, DISCRIMINATOR)
CASES += tensor_cases(
    "GAN.forward", "real", lambda v: GAN(v), IMAGES, shapes=[(4, 64), (0, 1, 8, 8)], double=True
)
CASES += int_cases("ring_of_gaussians", "num_samples", lambda v: G.ring_of_gaussians(v), 0)
CASES += int_cases("ring_of_gaussians", "num_modes", lambda v: G.ring_of_gaussians(10, v), 1)
CASES += float_cases(
    "ring_of_gaussians", "radius", lambda v: G.ring_of_gaussians(10, radius=v), [-1.0]
)
CASES += float_cases("ring_of_gaussians", "std", lambda v: G.ring_of_gaussians(10, std=v), [-1.0])
CASES += int_cases("ring_of_gaussians", "seed", lambda v: G.ring_of_gaussians(10, seed=v), 0, False)
POINTS, CENTRES = G.ring_of_gaussians(20, seed=0)
CASES += tensor_cases(
    "mode_coverage",
    "samples",
    lambda v: G.mode_coverage(v, CENTRES, 0.3),
    POINTS,
    shapes=[(20,), (20, 3)],
    nonfinite=[math.nan, math.inf],
    integer=False,
)
CASES += tensor_cases(
    "mode_coverage",
    "centres",
    lambda v: G.mode_coverage(POINTS, v, 0.3),
    CENTRES,
    shapes=[(8, 3), (0, 2)],
    nonfinite=[math.nan],
    integer=False,
)
CASES += float_cases(
    "mode_coverage", "max_distance", lambda v: G.mode_coverage(POINTS, CENTRES, v), [-1.0]
)

# ------------------------------------------------------------------------------- evaluation
CASES += int_cases("DigitClassifier", "num_classes", lambda v: G.DigitClassifier(num_classes=v), 2)
CASES += int_cases("DigitClassifier", "feature_dim", lambda v: G.DigitClassifier(feature_dim=v), 1)
CASES += int_cases("DigitClassifier", "image_size", lambda v: G.DigitClassifier(image_size=v), 2)
CASES += one(
    "DigitClassifier: image_size odd",
    lambda: G.DigitClassifier(image_size=7),
    "image_size",
    ValueError,
)
CLASSIFIER = G.DigitClassifier(feature_dim=8)
GREY = torch.rand(6, 1, 8, 8)
CASES += tensor_cases(
    "DigitClassifier.features",
    "x",
    lambda v: CLASSIFIER.features(v),
    GREY,
    shapes=[(6, 1, 6, 6), (6, 64)],
    double=True,
)
CASES += cases(
    "DigitClassifier.forward",
    "targets",
    lambda v: CLASSIFIER(GREY, v),
    [
        ("as floats", torch.zeros(6), TypeError),
        ("of shape [5]", torch.zeros(5, dtype=torch.long), ValueError),
        ("with class 10", torch.full((6,), 10), ValueError),
        ("with class -1", torch.full((6,), -1), ValueError),
    ],
)
FEATURES_A, FEATURES_B = torch.randn(20, 4, dtype=torch.float64), torch.randn(15, 4)
CASES += tensor_cases(
    "frechet_distance",
    "features_a",
    lambda v: G.frechet_distance(v, FEATURES_B),
    FEATURES_A,
    shapes=[(20,), (20, 3), (1, 4)],
    nonfinite=[math.nan, math.inf],
    integer=False,
)
CASES += tensor_cases(
    "frechet_distance",
    "features_b",
    lambda v: G.frechet_distance(FEATURES_A, v),
    FEATURES_B,
    shapes=[(15, 5), (1, 4)],
    nonfinite=[math.nan],
    integer=False,
)
CASES += one(
    "frechet_distance: features_b on another device",
    lambda: G.frechet_distance(FEATURES_A, FEATURES_B.to("meta")),
    "features_b",
    ValueError,
)
for name, function in (
    ("predicted_class_counts", G.predicted_class_counts),
    ("classifier_scores", G.classifier_scores),
):
    CASES += one(
        f"{name}: classifier an nn.Linear",
        lambda f=function: f(torch.nn.Linear(64, 10), GREY),
        "classifier",
        TypeError,
    )
    CASES += tensor_cases(
        name,
        "images",
        lambda v, f=function: f(CLASSIFIER, v),
        GREY,
        shapes=[(6, 3, 8, 8), (6, 1, 6, 6)],
    )
    CASES += int_cases(
        name, "batch_size", lambda v, f=function: f(CLASSIFIER, GREY, batch_size=v), 1, False
    )
CASES += one(
    "classifier_scores: one image",
    lambda: G.classifier_scores(CLASSIFIER, GREY[:1]),
    "images",
    ValueError,
)
CASES += cases(
    "classifier_scores",
    "reference_images",
    lambda v: G.classifier_scores(CLASSIFIER, GREY, v),
    [
        ("as a list", GREY.tolist(), TypeError),
        ("of one image", GREY[:1], ValueError),
        ("of shape [6, 64]", GREY.flatten(1), ValueError),
    ],
)
CASES += cases(
    "classifier_scores",
    "labels",
    lambda v: G.classifier_scores(CLASSIFIER, GREY, labels=v),
    [
        ("as floats", torch.zeros(6), TypeError),
        ("of shape [5]", torch.zeros(5, dtype=torch.long), ValueError),
    ],
)
SAMPLES, PROBS = torch.rand(6, 2), torch.softmax(torch.randn(6, 3), dim=1)
CASES += cases(
    "resample_by_class",
    "samples",
    lambda v: G.resample_by_class(v, PROBS, 2),
    [
        ("as a list", SAMPLES.tolist(), TypeError),
        ("empty", SAMPLES[:0], ValueError),
        ("a scalar", torch.tensor(1.0), ValueError),
    ],
)
CASES += tensor_cases(
    "resample_by_class",
    "class_probs",
    lambda v: G.resample_by_class(SAMPLES, v, 2),
    PROBS,
    shapes=[(5, 3), (6,)],
    nonfinite=[math.nan, math.inf],
    integer=False,
)
CASES += one(
    "resample_by_class: class_probs negative",
    lambda: G.resample_by_class(SAMPLES, -PROBS, 2),
    "class_probs",
    ValueError,
)
CASES += int_cases(
    "resample_by_class", "num_per_class", lambda v: G.resample_by_class(SAMPLES, PROBS, v), 0
)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_a_clear_error(case: Bad) -> None:
    with pytest.raises(case.error) as info:
        case.call()
    assert case.arg in str(info.value), f"{case.id}: the message does not name {case.arg!r}"


def test_the_probe_covers_every_public_name() -> None:
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    probed = {case_id.split(":")[0].split(".")[0] for case_id in ids}
    assert set(G.__all__) - {"MODEL_COLORS"} <= probed, set(G.__all__) - probed
