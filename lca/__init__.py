"""lca: latent concept association and associative memory in one-layer transformers.

The package behind the course "Elephants" (after Jiang, Rajendran, Ravikumar and Aragam, NeurIPS
2024). Modules, in the order data flows through them:

- ``lca.latent``: the latent space {0,1}^m, Hamming distance, neighbourhoods
- ``lca.task``: the LCA task, its sampler and the Bayes-optimal ceiling
- ``lca.model``: the one-layer transformer
- ``lca.train``: training, evaluation, ensembles
- ``lca.memory``, ``lca.theory``, ``lca.probes``: associative memories, closed forms, measurements
- ``lca.hijack``: context hijacking in real language models and in the one-layer model
- ``lca.plots``, ``lca.widgets``, ``lca.exercises``: figures, explorers, self-checks
- ``lca.glue``: myst-nb's ``glue`` for numbers quoted in the book's prose, with a stand-in that
  writes the same output where myst-nb (a book-building tool) is not installed

Importing ``lca`` never touches the network.
"""

from ._glue import glue
from .latent import (
    LatentSpace,
    cluster,
    custom,
    hamming_ball,
    hamming_sphere,
    other_clusters,
)
from .model import OneLayerTransformer, default_device
from .task import TaskSpec, bayes_accuracy, bayes_posterior, sample
from .train import TrainConfig, TrainResult, evaluate, sweep, train, train_ensemble

__version__ = "0.1.0"

__all__ = [
    "glue",
    "LatentSpace", "cluster", "custom", "hamming_ball", "hamming_sphere", "other_clusters",
    "OneLayerTransformer", "default_device", "TaskSpec", "bayes_accuracy", "bayes_posterior",
    "sample", "TrainConfig", "TrainResult", "evaluate", "sweep", "train", "train_ensemble",
]
