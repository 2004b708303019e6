"""Training the one-layer transformer on the LCA task: configs, the training loop, evaluation
(sampled accuracy, exact population loss) and ensembles.

Training is online: every step draws a fresh batch from the task, so the loss being minimised is
the population cross-entropy. ``fit`` and ``train_ensemble`` share one code path: a single run is
an ensemble of one. An ensemble member with config c and seed s sees exactly the initial weights and
the batches that ``fit(replace(c, seed=s))`` sees; the batched arithmetic agrees with the separate
run to float32 rounding (checked in the tests).

Devices: training runs on ``config.device`` (``None``: a GPU when torch sees one); batches are
sampled on the CPU and moved there, so a run sees the same data on any device. The trained model is
returned on the CPU, where measurements and plots run.

Seeds: member weights are initialised from ``torch.Generator().manual_seed(seed)``, its batches come
from a generator seeded with ``seed + 1_000_003``, and the evaluation set from ``eval_seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch import nn
from tqdm.auto import tqdm

from ._validate import ArgumentTypeError, check_bool, check_choice, check_float, check_int
from .model import E_INITS, WV_INITS, OneLayerTransformer, check_model, resolve_device
from .task import TaskSpec, check_spec, enumerate_task, sample

DATA_SEED_OFFSET = 1_000_003
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run.

    Args:
        task: the ``TaskSpec`` to train on.
        d: embedding dimension.
        steps: optimisation steps (each on a fresh batch).
        batch_size: examples per step.
        lr: learning rate.
        optimizer: ``"adam"`` (default), ``"adamw"`` or ``"sgd"``.
        weight_decay: for adamw / sgd.
        seed: initialisation and data seed.
        train_E, train_KQ, train_V: which parts are trained.
        E_init: ``"gaussian"`` or ``"orthonormal"``; WV_init: ``"zero"``, ``"small"``, ``"identity"``,
            ``"gaussian"`` (``train_V=False, WV_init="identity"`` fixes W_V to the identity).
        tied, residual, layernorm: model options (see ``lca.model``).
        eval_every: steps between evaluations (0: only at the end); n_eval: size of the fixed
            evaluation set; eval_seed: its seed.
        device: None (``lca.default_device()``), ``"cpu"`` or ``"cuda"``.
    """

    task: TaskSpec
    d: int = 32
    steps: int = 1000
    batch_size: int = 256
    lr: float = 0.01
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    train_E: bool = True
    train_KQ: bool = True
    train_V: bool = True
    E_init: str = "gaussian"
    WV_init: str = "zero"
    tied: bool = True
    residual: bool = False
    layernorm: bool = False
    eval_every: int = 100
    n_eval: int = 2048
    eval_seed: int = 12345
    device: str | None = None

    def __post_init__(self):
        check_spec(self.task, "task")

        def put(name, value):  # store the converted value (the dataclass is frozen)
            object.__setattr__(self, name, value)

        put("d", check_int("d", self.d, 1, 1 << 16))
        put("steps", check_int("steps", self.steps, 0, 10_000_000))
        put("batch_size", check_int("batch_size", self.batch_size, 1, 10_000_000))
        put("lr", check_float("lr", self.lr, 0.0, None, lo_open=True))
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        put("weight_decay", check_float("weight_decay", self.weight_decay, 0.0, None))
        put("seed", check_int("seed", self.seed, 0, 2**62))
        check_choice("E_init", self.E_init, E_INITS)
        check_choice("WV_init", self.WV_init, WV_INITS)
        put("eval_every", check_int("eval_every", self.eval_every, 0, 10_000_000))
        put("n_eval", check_int("n_eval", self.n_eval, 1, 1_000_000))
        put("eval_seed", check_int("eval_seed", self.eval_seed, 0, 2**62))
        for flag in ("train_E", "train_KQ", "train_V", "tied", "residual", "layernorm"):
            put(flag, check_bool(flag, getattr(self, flag)))
        if self.device is not None:
            resolve_device(self.device)  # fail here, not inside train()
        if self.E_init == "orthonormal" and self.d < self.task.V:
            raise ValueError(f"d must be >= V={self.task.V} for E_init='orthonormal', got d={self.d}")

    def with_(self, **changes) -> "TrainConfig":
        return replace(self, **changes)


VARIANT_FIELDS = ("train_E", "train_KQ", "train_V", "E_init", "WV_init", "lr", "seed")
SHAPE_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name not in VARIANT_FIELDS)


@dataclass
class TrainResult:
    """A trained model and its history: ``history`` maps ``"step"``, ``"loss"`` (mean training
    loss since the previous record) and ``"accuracy"`` (on the fixed evaluation set) to lists
    (for an ensemble, each entry is a list over members)."""

    model: OneLayerTransformer
    history: dict = field(default_factory=dict)
    config: TrainConfig | None = None
    configs: list | None = None

    @property
    def final_accuracy(self) -> float | list[float]:
        return self.history["accuracy"][-1]


def build_model(config: TrainConfig) -> OneLayerTransformer:
    """The untrained model of a config (weights from ``config.seed``)."""
    if not isinstance(config, TrainConfig):
        raise ArgumentTypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    g = torch.Generator().manual_seed(config.seed)
    freeze = [
        name
        for name, on in (("W_E", config.train_E), ("W_KQ", config.train_KQ), ("W_V", config.train_V))
        if not on
    ]
    if not config.tied and not config.train_E:
        freeze.append("W_U")
    return OneLayerTransformer(
        config.task.V,
        config.d,
        tied=config.tied,
        residual=config.residual,
        layernorm=config.layernorm,
        E_init=config.E_init,
        WV_init=config.WV_init,
        freeze=freeze,
        generator=g,
        device=resolve_device(config.device),
    )


def stack_models(models: list[OneLayerTransformer]) -> OneLayerTransformer:
    """One ensemble model holding copies of the given single models (same V, d and options)."""
    if isinstance(models, (str, bytes)) or not hasattr(models, "__iter__"):
        raise ArgumentTypeError(f"models must be a list of OneLayerTransformer, got {models!r}")
    models = list(models)
    if not models:
        raise ValueError("models must be a non-empty list")
    for mdl in models:
        if not isinstance(mdl, OneLayerTransformer):
            raise ArgumentTypeError(f"models must hold OneLayerTransformer objects, got {type(mdl).__name__}")
    first = models[0]
    for mdl in models:
        if mdl.ensemble is not None or (mdl.V, mdl.d, mdl.tied, mdl.residual, mdl.layernorm) != (
            first.V,
            first.d,
            first.tied,
            first.residual,
            first.layernorm,
        ):
            raise ValueError("models must be single models with the same V, d and options")
    W_U = None if first.tied else torch.stack([mdl.W_U.detach() for mdl in models])
    return OneLayerTransformer.from_weights(
        torch.stack([mdl.W_E.detach() for mdl in models]),
        torch.stack([mdl.W_KQ.detach() for mdl in models]),
        torch.stack([mdl.W_V.detach() for mdl in models]),
        W_U,
        residual=first.residual,
        layernorm=first.layernorm,
    )


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False)


def _make_optimizer(params, config: TrainConfig):
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr)


def train_ensemble(configs: list[TrainConfig], progress: bool = True) -> TrainResult:
    """Train several configs of one shape as one batched program.

    The configs may differ only in ``seed``, ``lr``, ``train_E``, ``train_KQ``, ``train_V``,
    ``E_init`` and ``WV_init``; everything else (task, d, steps, batch size, optimizer...) must be
    equal. Member i gets exactly the initial weights and batches of ``fit(configs[i])``.

    Returns a ``TrainResult`` whose model is an ensemble (``model.member(i)``) and whose history
    holds, per record, a list of per-member values.
    """
    if isinstance(configs, (str, bytes)) or not hasattr(configs, "__iter__"):
        raise ArgumentTypeError(f"configs must be a list of TrainConfig, got {type(configs).__name__}")
    configs = list(configs)
    progress = check_bool("progress", progress)
    if not configs:
        raise ValueError("configs must be a non-empty list of TrainConfig")
    base = configs[0]
    for c in configs:
        if not isinstance(c, TrainConfig):
            raise ValueError(f"configs must hold TrainConfig objects, got {type(c).__name__}")
        for name in SHAPE_FIELDS:
            if getattr(c, name) != getattr(base, name):
                raise ValueError(
                    f"configs must agree on {name!r} to train as one ensemble "
                    f"(got {getattr(c, name)!r} and {getattr(base, name)!r}); only "
                    f"{', '.join(VARIANT_FIELDS)} may differ"
                )
    E = len(configs)
    device = resolve_device(base.device)
    spec = base.task
    model = stack_models([build_model(c) for c in configs]).to(device)
    # per-member switches: a frozen part of a member has its gradient zeroed
    masks = {}
    for name, flag in (("W_E", "train_E"), ("W_KQ", "train_KQ"), ("W_V", "train_V")):
        on = torch.tensor([getattr(c, flag) for c in configs], dtype=torch.bool)
        if not bool(on.any()):
            getattr(model, name).requires_grad_(False)
        elif not bool(on.all()):
            masks[name] = on.to(device).float()
    if not base.tied:
        on = torch.tensor([c.train_E for c in configs])
        if not bool(on.any()):
            model.W_U.requires_grad_(False)
        elif not bool(on.all()):
            masks["W_U"] = on.to(device).float()
    params = [p for p in model.parameters() if p.requires_grad]
    # Masking the gradient is not enough: weight decay (adamw, or sgd/adam with weight_decay > 0)
    # still moves a frozen member, so its slice is also restored after every step.
    frozen = {name: ~mask.bool() for name, mask in masks.items()}
    lrs = torch.tensor([c.lr for c in configs], dtype=torch.float32, device=device)
    same_lr = bool((lrs == lrs[0]).all())
    opt = _make_optimizer(params, base) if params else None
    # Per-member learning rates: Adam, AdamW and SGD updates are linear in lr, so a member's step
    # is the base step rescaled by lr_i / lr_base (see the loop below).
    gens = [torch.Generator().manual_seed(c.seed + DATA_SEED_OFFSET) for c in configs]
    eval_ctx, eval_y = sample(spec, base.n_eval, seed=base.eval_seed)
    eval_ctx, eval_y = eval_ctx.to(device), eval_y.to(device)
    history = {"step": [], "loss": [], "accuracy": []}
    running = torch.zeros(E, device=device)
    count = 0

    def record(step):
        acc = _accuracy(model, eval_ctx, eval_y)
        history["step"].append(step)
        history["loss"].append((running / max(count, 1)).tolist())
        history["accuracy"].append(acc.tolist())

    loss_fn = nn.CrossEntropyLoss(reduction="none")
    steps = base.steps
    for step in _progress(range(1, steps + 1), steps, "training", progress):
        batches = [sample(spec, base.batch_size, generator=g) for g in gens]
        ctx = torch.stack([b[0] for b in batches]).to(device)
        y = torch.stack([b[1] for b in batches]).to(device)
        if opt is None:
            with torch.no_grad():
                logits = model(ctx)
                per = loss_fn(logits.reshape(-1, spec.V), y.reshape(-1)).view(E, -1).mean(1)
        else:
            logits = model(ctx)
            per = loss_fn(logits.reshape(-1, spec.V), y.reshape(-1)).view(E, -1).mean(1)
            opt.zero_grad(set_to_none=False)
            per.sum().backward()
            for name, mask in masks.items():
                g = getattr(model, name).grad
                g.mul_(mask.view((E,) + (1,) * (g.ndim - 1)))
            kept = {name: getattr(model, name).detach()[idx].clone() for name, idx in frozen.items()}
            if same_lr:
                opt.step()
            else:
                before = [p.detach().clone() for p in params]
                opt.step()
                with torch.no_grad():
                    scale = lrs / base.lr
                    for p, b in zip(params, before):
                        s = scale.view((E,) + (1,) * (p.ndim - 1))
                        p.copy_(b + (p - b) * s)
            with torch.no_grad():
                for name, idx in frozen.items():
                    getattr(model, name)[idx] = kept[name]
        running += per.detach()
        count += 1
        if base.eval_every and step % base.eval_every == 0:
            record(step)
            running.zero_()
            count = 0
    if not history["step"] or history["step"][-1] != steps:
        record(steps)
    # Results come back on the CPU, where the probes, plots and exact theory run; training itself
    # ran on config.device (a GPU when there is one).
    return TrainResult(model=model.cpu(), history=history, config=base, configs=configs)


def fit(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Train one model. Returns ``TrainResult(model, history)`` with per-record scalars."""
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(config, TrainConfig):
        raise ArgumentTypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    res = train_ensemble([config], progress=check_bool("progress", progress))
    single = res.model.member(0)
    if not config.train_E:
        single.W_E.requires_grad_(False)
    history = {k: [v[0] if isinstance(v, list) else v for v in vals] for k, vals in res.history.items()}
    return TrainResult(model=single, history=history, config=config, configs=[config])


def sweep(
    base: TrainConfig, seeds: tuple = (0,), variants: dict | None = None, progress: bool = True
) -> TrainResult:
    """Train ``variants x seeds`` members as one ensemble.

    ``variants`` maps a label to a dict of field overrides (only ``VARIANT_FIELDS``), e.g.
    ``{"trained W_V": {}, "W_V = I": {"train_V": False, "WV_init": "identity"}}``. The result's
    ``labels`` attribute lists ``(variant label, seed)`` per member.
    """
    if not isinstance(base, TrainConfig):
        raise ArgumentTypeError(f"base must be a TrainConfig, got {type(base).__name__}")
    progress = check_bool("progress", progress)
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ArgumentTypeError(f"seeds must be a sequence of integers, got {seeds!r}")
    seeds = [check_int("seeds", s, 0, 2**62) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed, got an empty sequence")
    if variants is not None and not isinstance(variants, dict):
        raise ArgumentTypeError(f"variants must be a dict of label -> overrides, got {variants!r}")
    variants = variants or {"": {}}
    configs, labels = [], []
    for label, over in variants.items():
        if not isinstance(over, dict):
            raise ArgumentTypeError(f"variants[{label!r}] must be a dict of overrides, got {over!r}")
        bad = set(over) - set(VARIANT_FIELDS)
        if bad:
            raise ValueError(f"variants may only change {VARIANT_FIELDS}, got {sorted(bad)}")
        for s in seeds:
            configs.append(replace(base, seed=int(s), **over))
            labels.append((label, int(s)))
    res = train_ensemble(configs, progress=progress)
    res.labels = labels
    return res


@torch.no_grad()
def _accuracy(
    model: OneLayerTransformer, ctx: torch.Tensor, y: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    hits = []
    for i in range(0, ctx.shape[-2], chunk):
        c = ctx[..., i : i + chunk, :]
        logits = model(c)
        if model.ensemble is None:
            logits = logits.unsqueeze(0)
        hits.append((logits.argmax(-1) == y[i : i + chunk]).float())
    return torch.cat(hits, dim=-1).mean(-1)


def check_model_and_spec(model: OneLayerTransformer, spec: TaskSpec) -> None:
    """Raise ValueError unless ``model`` is a OneLayerTransformer and ``spec`` a TaskSpec with the
    model's vocabulary size."""
    check_model(model)
    check_spec(spec)
    if spec.V != model.V:
        raise ValueError(f"spec has V={spec.V} tokens but the model has V={model.V}")


def evaluate(model: OneLayerTransformer, spec: TaskSpec, n: int = 4096, seed: int = 0) -> float | list[float]:
    """Accuracy of ``model`` on ``n`` fresh examples drawn with ``seed``: a float for a single
    model, a list of floats (one per member) for an ensemble."""
    check_model_and_spec(model, spec)
    n = check_int("n", n, 1, 1_000_000)
    ctx, y = sample(spec, n, seed=seed)
    dev = model.W_E.device
    acc = _accuracy(model, ctx.to(dev), y.to(dev))
    return float(acc[0]) if model.ensemble is None else acc.tolist()


def exact_population_loss(
    model: OneLayerTransformer, spec: TaskSpec, max_rows: int = 2_000_000
) -> torch.Tensor:
    """The population cross-entropy of ``model`` on ``spec`` as an exact weighted sum over
    ``lca.task.enumerate_task(spec)`` (a differentiable scalar tensor: call ``.backward()`` for
    the exact population gradient)."""
    check_model(model, single=True)
    check_model_and_spec(model, spec)
    ctx, y, p = enumerate_task(spec, max_rows)
    dev = model.W_E.device
    logits = model(ctx.to(dev))
    nll = torch.nn.functional.cross_entropy(logits, y.to(dev), reduction="none")
    return (nll * p.to(dev, nll.dtype)).sum()
