"""Captions "A photo of a [object], [positioning] [scene]" from an LLM or from curated lists (Appendix A).

The paper asked an LLM for captions of one solid object placed in a scene; the object phrase is
what the segmenter looks for and what the Reference UNet is told ("a photo of a [object]"). Every
source goes through `parse_captions`, so malformed LLM lines never reach rendering.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import httpx

log = logging.getLogger(__name__)

CAPTION_INSTRUCTION = """\
You write captions for a dataset of photographs. Every photograph shows exactly one physical object \
that can be held or placed somewhere, seen whole and in the middle of the frame, inside a real-world setting.

Write each caption on its own line, in exactly this form and with nothing else on the line:
A photo of a [object], [positioning] [scene]

- [object]: a short noun phrase (one to five words) naming one concrete, solid, rigid thing, optionally \
with a colour, material or style, e.g. "green ceramic teapot" or "leather hiking boot". No people, no body \
parts, no liquids, smoke, food served on plates, text, logos, groups or collections of things.
- [positioning]: where the object is, e.g. "standing on", "lying on", "placed in front of", "resting beside".
- [scene]: a concrete place or surface, e.g. "a wooden desk in a sunlit study".
Vary the objects, colours, materials and scenes as much as you can and never repeat a caption. \
Do not number the lines and do not add any other text."""

MAX_CAPTION_CHARS = 200  # CLIP reads 77 tokens; longer captions get truncated anyway
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\(?\d+[.)]|#\d+)\s*")
_CAPTION = re.compile(
    r"^a photo of (?P<article>an?)\s+(?P<object>[^,]+?)\s*,\s*(?P<context>.+?)\s*\.?$", re.IGNORECASE
)
_OBJECT_WORD = re.compile(r"^[^\W_]+(?:['&-][^\W_]+)*$")  # letters/digits (any script), e.g. t-shirt
_CONTEXT = re.compile(r"^[^\W_][\w ,'&-]*$")
MAX_OBJECT_WORDS = 6


@dataclass(frozen=True)
class Caption:
    """One validated caption and the object phrase it is about."""

    text: str
    object: str

    @property
    def key(self) -> str:
        """What two captions must differ in to both be kept (case and spacing do not count)."""
        return self.text.lower()


def parse_caption(line: str) -> Caption | None:
    """The caption on `line`, normalized, or None when the line is not a usable caption."""
    line = _LIST_MARKER.sub("", line.strip())
    line = " ".join(line.strip().strip("\"'`\u201c\u201d").split())
    if not line or len(line) > MAX_CAPTION_CHARS:
        return None
    match = _CAPTION.match(line)
    if match is None:
        return None
    obj, context = match["object"], match["context"]
    words = obj.split()
    if not 1 <= len(words) <= MAX_OBJECT_WORDS or not all(_OBJECT_WORD.match(w) for w in words):
        return None
    if "photo" in obj.lower() or len(context.split()) < 2 or not _CONTEXT.match(context):
        return None
    return Caption(text=f"A photo of {match['article'].lower()} {obj}, {context}", object=obj)


def parse_captions(text: str) -> tuple[list[Caption], int]:
    """Captions in a block of text (one per line) and the number of non-empty lines that were not."""
    captions, malformed = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        caption = parse_caption(line)
        if caption is None:
            malformed += 1
        else:
            captions.append(caption)
    return captions, malformed


def deduplicate(captions: Iterable[Caption], seen: set[str] | None = None) -> list[Caption]:
    """Captions in order without repeats; `seen` (updated in place) carries keys across calls."""
    seen = set() if seen is None else seen
    unique = []
    for caption in captions:
        if caption.key not in seen:
            seen.add(caption.key)
            unique.append(caption)
    return unique


class CaptionSource(Protocol):
    def generate(self, count: int) -> list[Caption]:
        """`count` distinct captions; the same source settings give a reproducible list where possible."""
        ...


# --- offline ---------------------------------------------------------------------------------

# fmt: off
OBJECTS = [
    "backpack", "teapot", "alarm clock", "sneaker", "hiking boot", "handbag", "suitcase", "vase",
    "coffee mug", "table lamp", "wristwatch", "camera", "guitar", "ukulele", "violin", "trumpet",
    "teddy bear", "toy robot", "toy car", "rubber duck", "wooden chair", "armchair", "stool", "bicycle",
    "skateboard", "helmet", "baseball cap", "cowboy hat", "sunglasses", "umbrella", "water bottle",
    "thermos", "candle", "lantern", "globe", "houseplant pot", "watering can", "bucket", "basket",
    "picture frame", "mantel clock", "radio", "typewriter", "telephone", "headphones", "laptop",
    "game controller", "keyboard", "desk fan", "kettle", "frying pan", "cooking pot", "bowl", "plate",
    "wine glass", "jar", "cookie tin", "piggy bank", "figurine", "sculpture", "chess piece", "dice",
    "soccer ball", "basketball", "tennis racket", "football helmet", "boxing glove", "rucksack",
    "briefcase", "wallet", "purse", "shoe", "boot", "sandal", "glove", "scarf", "sweater", "jacket",
    "trophy", "bell", "hourglass", "compass", "binoculars", "telescope", "microscope", "toolbox",
    "hammer", "drill", "flashlight", "fire extinguisher", "mailbox", "birdhouse", "plush dog",
    "plush cat", "plush monster", "ceramic owl", "wooden duck", "music box", "jewelry box",
]
ATTRIBUTES = [
    "red", "blue", "green", "yellow", "black", "white", "pink", "purple", "orange", "brown", "grey",
    "silver", "golden", "wooden", "ceramic", "metal", "plastic", "leather", "vintage", "striped",
]
PLACEMENTS = [
    "on", "standing on", "lying on", "placed on", "resting on", "sitting on", "in front of",
    "next to", "on top of", "in the middle of",
]
SCENES = [
    "a wooden table in a cozy kitchen", "a marble countertop", "a sandy beach at sunset",
    "a grassy meadow with wildflowers", "a snowy mountain trail", "a city sidewalk", "a park bench",
    "a bookshelf in a library", "a desk in a sunlit office", "a rocky riverbank", "a forest floor",
    "a picnic blanket in a park", "a windowsill with morning light", "a rug in a living room",
    "a concrete floor in a garage", "a wooden dock by a lake", "a cobblestone street in an old town",
    "a bed with white sheets", "a shelf in a shop window", "a stone wall in a garden",
    "a purple carpet", "a glass table on a balcony", "a kitchen floor with checkered tiles",
    "a hiking trail in autumn", "a desert road", "a train station platform", "a fountain in a plaza",
    "a lawn in front of a house", "a wooden deck by a pool", "a mossy log in a rainforest",
    "a pile of autumn leaves", "a workbench in a workshop", "a classroom desk", "a café table",
    "a velvet cushion", "a pier at the harbour", "a tiled bathroom floor", "a garden path",
    "a rooftop terrace at dusk", "a frozen lake",
]
# fmt: on


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


class OfflineCaptions:
    """Seeded captions from the curated lists: no LLM needed, and identical on every machine.

    Caption i depends only on the seed and captions 0..i-1, so a larger `count` extends a smaller
    run's list instead of replacing it (resuming with more samples keeps the finished ones valid).
    """

    def __init__(self, seed: int = 0):
        self.seed = seed

    @staticmethod
    def capacity() -> int:
        return len(OBJECTS) * (len(ATTRIBUTES) + 1) * len(PLACEMENTS) * len(SCENES)

    def generate(self, count: int) -> list[Caption]:
        if count > self.capacity() // 2:
            raise ValueError(
                f"the offline caption lists give at most {self.capacity() // 2} distinct captions; "
                f"use an LLM (--captions openai|local) for {count}"
            )
        rng = random.Random(self.seed)
        seen: set[str] = set()
        captions: list[Caption] = []
        while len(captions) < count:
            attribute = rng.choice([*ATTRIBUTES, ""])
            obj = f"{attribute} {rng.choice(OBJECTS)}".strip()
            text = f"A photo of {_article(obj)} {obj}, {rng.choice(PLACEMENTS)} {rng.choice(SCENES)}"
            captions.extend(deduplicate([Caption(text=text, object=obj)], seen))
        return captions


# --- LLMs ------------------------------------------------------------------------------------

Messages = list[dict[str, str]]


class ChatModel(Protocol):
    def complete(self, messages: Messages) -> str:
        """The assistant's reply to a chat."""
        ...


def caption_request(count: int) -> Messages:
    return [
        {"role": "system", "content": CAPTION_INSTRUCTION},
        {"role": "user", "content": f"Write {count} new captions."},
    ]


class LLMCaptions:
    """Asks a chat model for captions until `count` distinct valid ones are collected."""

    def __init__(self, chat: ChatModel, captions_per_request: int = 50, max_requests: int = 10_000):
        self.chat = chat
        self.captions_per_request = captions_per_request
        self.max_requests = max_requests

    def generate(self, count: int, seen: set[str] | None = None) -> list[Caption]:
        seen = set() if seen is None else seen
        captions: list[Caption] = []
        malformed = duplicates = 0
        for request in range(1, self.max_requests + 1):
            wanted = min(self.captions_per_request, count - len(captions))
            parsed, bad = parse_captions(self.chat.complete(caption_request(wanted)))
            new = deduplicate(parsed, seen)
            captions.extend(new[: count - len(captions)])
            malformed += bad
            duplicates += len(parsed) - len(new)
            log.info("LLM request %d: %d/%d captions (%d malformed, %d duplicates so far)",
                     request, len(captions), count, malformed, duplicates)  # fmt: skip
            if len(captions) >= count:
                return captions
        raise RuntimeError(
            f"the LLM gave only {len(captions)} of {count} usable captions in {self.max_requests} requests "
            f"({malformed} malformed lines, {duplicates} duplicates)"
        )


class OpenAIChat:
    """Minimal client of an OpenAI-compatible POST {base_url}/chat/completions (OpenAI, vLLM, Ollama...)."""

    RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        temperature: float = 1.0,
        timeout: float = 120.0,
        attempts: int = 4,
        transport: httpx.BaseTransport | None = None,
    ):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout, transport=transport
        )
        self.model = model
        self.temperature = temperature
        self.attempts = attempts

    def complete(self, messages: Messages) -> str:
        body = {"model": self.model, "messages": messages, "temperature": self.temperature}
        for attempt in range(self.attempts):
            try:
                response = self.client.post("chat/completions", json=body)
                if response.status_code not in self.RETRY_STATUSES:
                    break
                problem = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                problem = repr(exc)
            if attempt == self.attempts - 1:
                raise RuntimeError(f"chat endpoint {self.client.base_url} failed: {problem}")
            log.warning("chat endpoint: %s, retrying", problem)
            time.sleep(2**attempt)
        if response.is_error:
            raise RuntimeError(
                f"chat endpoint {self.client.base_url} answered {response.status_code}: {response.text[:300]}"
            )
        try:
            return response.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(f"not an OpenAI-style chat response: {response.text[:300]}") from exc

    def close(self) -> None:
        self.client.close()


class LocalChat:
    """A transformers causal LM on this machine (hub id or folder), sampled like a chat endpoint."""

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        torch_dtype=None,
        max_new_tokens: int = 1024,
        temperature: float = 1.0,
        local_files_only: bool = False,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=local_files_only)
        self.model = AutoModelForCausalLM.from_pretrained(
            model, dtype=torch_dtype, local_files_only=local_files_only
        ).to(device)
        self.model.eval()
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature

    def prompt_text(self, messages: Messages) -> str:
        """The chat as the model was trained to read it (its chat template), or plain text without one."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def complete(self, messages: Messages) -> str:
        import torch

        inputs = self.tokenizer(self.prompt_text(messages), return_tensors="pt").to(self.model.device)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        with torch.no_grad():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=self.temperature > 0,
                temperature=self.temperature if self.temperature > 0 else None,
                pad_token_id=pad_id,
            )
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True)
