"""CLIP tokenizer built offline from the BPE vocabulary that ships inside `open_clip_torch`.

No hub is reachable where tests and demos run, yet the tiny model must carry a real tokenizer folder
with the same ids as SD 2.x's: this rebuilds it from the merges file.
"""

from __future__ import annotations

import gzip
from importlib import resources

from transformers import CLIPTokenizer

CLIP_MAX_LENGTH = 77
_NUM_MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE uses for raw bytes (GPT-2's table)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def build_clip_tokenizer() -> CLIPTokenizer:
    """Return SD 2.x's CLIP tokenizer (49,408 tokens, 77 positions) without any download."""
    vocab_file = resources.files("open_clip").joinpath("bpe_simple_vocab_16e6.txt.gz")
    with vocab_file.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        lines = text.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
    symbols = _bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_MAX_LENGTH)
