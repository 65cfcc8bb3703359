"""Network visualisation: what a trained CNN has learned, seen through weights and features.

The chapter's data, model and tools, one module per concept, in the order the chapter
uses them (every public name is importable from ``course_lib.visualization`` itself):

1. ``data``: ``load_shapes_classification`` (one coloured shape per image) and
   ``load_hard_digits`` (scikit-learn's digits placed at random positions and scales on a
   larger noisy canvas, where nearest neighbours in pixel space fail);
2. ``model``: ``SmallCNN``, whose penultimate layer gives the feature vectors, and
   ``extract_features``;
3. ``neighbors``: ``pairwise_squared_distances``, ``nearest_neighbors``,
   ``knn_from_distances``, ``knn_classify``;
4. ``decomposition``: linear dimensionality reduction, ``pca``;
5. ``manifold``: non-linear dimensionality reduction, exact t-SNE: ``perplexity_search``
   (calibrated conditional probabilities), ``tsne_affinities`` (the symmetric P),
   ``tsne_gradient`` and ``tsne_kl_divergence`` (Student-t Q, KL divergence and its
   gradient), ``tsne`` (early exaggeration, momentum and per-parameter gains);
6. ``attribution``, beyond the notes: ``saliency_map`` and ``fgsm_attack``;
7. ``figures``: ``plot_embedding`` and ``plot_neighbors``.

Everything is vectorised PyTorch on the device of its inputs (CPU, CUDA or MPS). Bad
arguments raise ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong shape or
value) naming the argument, through ``course_lib.validation``.

Shape letters: ``N`` points (rows of a data matrix), ``M`` points of a reference bank,
``Q`` queries, ``D`` features per point, ``K`` neighbours or principal components, ``R``
rows of a distance matrix, ``B`` batch, ``C`` channels or classes, ``H``/``W`` image height
and width, ``E`` embedding dimensions (``n_components``).
"""

from __future__ import annotations

from course_lib.visualization.attribution import fgsm_attack, saliency_map
from course_lib.visualization.data import (
    HardDigits,
    ShapesClassification,
    load_hard_digits,
    load_shapes_classification,
    place_digits,
)
from course_lib.visualization.decomposition import PCAResult, pca
from course_lib.visualization.figures import plot_embedding, plot_neighbors
from course_lib.visualization.manifold import (
    TSNEState,
    perplexity_search,
    tsne,
    tsne_affinities,
    tsne_gradient,
    tsne_kl_divergence,
)
from course_lib.visualization.model import SmallCNN, extract_features, random_batches
from course_lib.visualization.neighbors import (
    knn_classify,
    knn_from_distances,
    nearest_neighbors,
    pairwise_squared_distances,
)

__all__ = [
    "HardDigits",
    "PCAResult",
    "ShapesClassification",
    "SmallCNN",
    "TSNEState",
    "extract_features",
    "fgsm_attack",
    "knn_classify",
    "knn_from_distances",
    "load_hard_digits",
    "load_shapes_classification",
    "nearest_neighbors",
    "pairwise_squared_distances",
    "pca",
    "perplexity_search",
    "place_digits",
    "plot_embedding",
    "plot_neighbors",
    "random_batches",
    "saliency_map",
    "tsne",
    "tsne_affinities",
    "tsne_gradient",
    "tsne_kl_divergence",
]
