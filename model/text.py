"""Prompt embeddings, shared by inference and training so both tokenize exactly alike."""

from __future__ import annotations

import torch
from transformers import CLIPTextModel, CLIPTokenizer


def encode_text(
    tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, texts: str | list[str]
) -> torch.Tensor:
    """CLIP last hidden states (B, 77, D) of prompts padded/truncated to the tokenizer's length."""
    return text_encoder(tokenize(tokenizer, texts).to(text_encoder.device))[0]


def tokenize(tokenizer: CLIPTokenizer, texts: str | list[str]) -> torch.Tensor:
    """Token ids (B, 77): padded and truncated to the tokenizer's length, as the text encoders expect."""
    return tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
