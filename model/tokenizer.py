"""CLIP tokenizer built offline from the BPE vocabulary that ships inside `open_clip_torch`.

No hub is reachable where tests and demos run, yet the tiny model must carry a real tokenizer folder
with the same ids as SD 2.x's: this rebuilds it from the merges file.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
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


def build_clip_tokenizer(corpus: Iterable[str] | None = None) -> CLIPTokenizer:
    """SD 2.x's CLIP tokenizer (49,408 tokens, 77 positions) without any download.

    With `corpus`, a reduced vocabulary for a model trained from scratch on those texts: the 512
    byte-level symbols, the merges CLIP's BPE applies to the corpus's words (in CLIP's order) and the
    special tokens. The corpus tokenizes exactly as with the full vocabulary, any other text still
    tokenizes (into smaller pieces, at worst single bytes), and the text encoder's embedding table
    shrinks from 49,408 rows to a few hundred.
    """
    vocab_file = resources.files("open_clip").joinpath("bpe_simple_vocab_16e6.txt.gz")
    with vocab_file.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        lines = text.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
    if corpus is not None:
        merges = _merges_applied(corpus, merges, _tokenizer(merges))
    return _tokenizer(merges)


def _tokenizer(merges: list[tuple[str, ...]]) -> CLIPTokenizer:
    symbols = _bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_MAX_LENGTH)


def _merges_applied(
    corpus: Iterable[str], merges: list[tuple[str, ...]], full: CLIPTokenizer
) -> list[tuple[str, ...]]:
    """The merges BPE applies to the corpus's words, in their original order (rank)."""
    ranks = {merge: rank for rank, merge in enumerate(merges)}
    words: set[str] = set()
    for text in corpus:
        word = ""
        for token in full.tokenize(text):  # a word's tokens end with the one carrying "</w>"
            word += token
            if token.endswith("</w>"):
                words.add(word[: -len("</w>")])
                word = ""
    used: set[int] = set()
    for word in words:
        used |= _ranks_applied(word, ranks)
    return [merges[rank] for rank in sorted(used)]


def _ranks_applied(word: str, ranks: dict[tuple[str, ...], int]) -> set[int]:
    """Byte-pair encoding of one word: merge the best-ranked adjacent pair everywhere, until none is left."""
    symbols = [*word[:-1], word[-1] + "</w>"]
    applied: set[int] = set()
    while len(symbols) > 1:
        rank, pair = min(
            (ranks.get(pair, len(ranks)), pair) for pair in zip(symbols, symbols[1:], strict=False)
        )
        if rank == len(ranks):
            break
        applied.add(rank)
        merged, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return applied
