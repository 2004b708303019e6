"""The device option is threaded through: no hard-coded device anywhere in lca (issue 8).

No GPU is needed: PyTorch's "meta" device stands in for an accelerator. A model built with
device="meta" must hold every parameter there and run its forward pass there, which fails if any
step of the forward creates a tensor on a fixed device.
"""

import re
from pathlib import Path

import pytest
import torch

import lca
from lca.model import OneLayerTransformer, resolve_device
from lca.task import TaskSpec, sample

LCA = Path(lca.__file__).parent


def test_model_follows_the_requested_device():
    spec = TaskSpec(m=4, L=5)
    ctx, _ = sample(spec, 3, seed=0)
    model = OneLayerTransformer(spec.V, 6, device="meta", WV_init="small")
    assert {p.device.type for p in model.parameters()} == {"meta"}
    out = model(ctx)  # contexts are moved to the model's device
    assert out.device.type == "meta" and out.shape == (3, spec.V)
    assert model.attention(ctx).device.type == "meta"
    ens = OneLayerTransformer(spec.V, 6, ensemble=2, device="meta")
    assert ens(ctx).shape == (2, 3, spec.V)


def test_default_device_and_resolution():
    assert lca.default_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None).type == lca.default_device()
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("gpu0")


def test_no_hard_coded_device_in_the_package():
    """Only lca.model's device helpers may name 'cuda'; nothing calls .cuda() or .cpu() to move
    computation (.cpu() to read a result back is allowed when followed by .numpy()/.tolist())."""
    offenders = []
    for path in sorted(LCA.glob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = re.sub(r"``.*?``", "", line.split("#", 1)[0])  # docstring literals are prose
            if re.search(r"\.cuda\(\)|device\s*=\s*['\"]cuda", code):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
            if "'cuda'" in code or '"cuda"' in code:
                if path.name not in ("model.py", "llm.py"):
                    offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders, "hard-coded device:\n" + "\n".join(offenders)
