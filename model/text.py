"""Prompt embeddings, shared by inference and training so both tokenize exactly alike."""

from __future__ import annotations

import torch
from transformers import CLIPTextModel, CLIPTokenizer


def encode_text(
    tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, texts: str | list[str]
) -> torch.Tensor:
    """CLIP last hidden states (B, 77, D) of prompts padded/truncated to the tokenizer's length."""
    ids = tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return text_encoder(ids.to(text_encoder.device))[0]
