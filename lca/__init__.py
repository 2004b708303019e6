"""lca: latent concept association and associative memory in one-layer transformers.

The package behind the course "Elephants" (after Jiang, Rajendran, Ravikumar and Aragam, NeurIPS
2024). Modules, in the order data flows through them:

- ``lca.latent``: the latent space {0,1}^m, Hamming distance, neighbourhoods
- ``lca.task``: the LCA task, its sampler and the Bayes-optimal ceiling
- ``lca.model``: the one-layer transformer
- ``lca.train``: training (``lca.fit``), evaluation, ensembles
- ``lca.style``, ``lca.checks``, ``lca.widgets``, ``lca.report``: the figure style, the exercise
  checkers' machinery, the explorers, and how numbers are printed
- ``lca.counterfact``, ``lca.llm``, ``lca.scoring``: facts, offline language models, target scores

Then one module per chapter, in book order (each imports only the engine and earlier chapters):
``hijacking`` (0), ``associative_memory`` (1), ``lca_task`` (2), ``transformer`` (3),
``value_matrix`` (4), ``embeddings`` (5), ``attention`` (6), ``hijacking_in_model`` (7),
``real_models`` (8, with ``gemma``, the optional second offline model).
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
from .train import TrainConfig, TrainResult, evaluate, fit, sweep, train_ensemble

__version__ = "0.1.0"

__all__ = [
    "glue",
    "LatentSpace",
    "cluster",
    "custom",
    "hamming_ball",
    "hamming_sphere",
    "other_clusters",
    "OneLayerTransformer",
    "default_device",
    "TaskSpec",
    "bayes_accuracy",
    "bayes_posterior",
    "sample",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "fit",
    "sweep",
    "train_ensemble",
]
