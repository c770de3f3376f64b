"""Toy stand-ins for the evaluation encoders, saved as transformers folders `bootpig eval` loads.

- Toy CLIP (`CLIPModel` + `CLIPProcessor`): trained contrastively on (render, caption) pairs, so its
  image-text cosine (CLIP-T) says whether an image shows the prompt's shape and scene. Toy captions
  never name colours or patterns, so that alone leaves the image tower blind to a subject's appearance
  (CLIP-I could not move even for a perfect generator); a second phase trains the image tower alone on
  captions *and* views of one subject (as SLIP adds self-supervision to CLIP), standing in for the
  colour and texture words real CLIP learns from. The text tower, which the base model reads, is
  frozen in that phase.
- Toy DINO (`ViTModel` + `ViTImageProcessor`): trained so that views of one subject (other pose, on
  white or in a scene) embed close and other subjects far apart: the analogue of DINO's sensitivity to
  a subject's identity (shape *and* appearance), which is what subject fidelity measures.
- Tiny CLIPSeg (`CLIPSegForImageSegmentation` + `CLIPSegProcessor`): trained on renderer masks with
  the shape name as the prompt, for `bootpig synth --segmenter`.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.tokenizer import build_clip_tokenizer
from model.toyworld.data import SceneBank, ViewBank
from model.toyworld.fit import batches, fit
from model.toyworld.world import SHAPES, all_captions

EMBED = 64


def _vision(size: int, patch: int = 8, layers: int = 3) -> dict:
    return dict(
        image_size=size,
        patch_size=patch,
        hidden_size=EMBED,
        intermediate_size=2 * EMBED,
        num_hidden_layers=layers,
        num_attention_heads=4,
    )


@functools.cache
def _toy_tokenizer():
    return build_clip_tokenizer(all_captions())


def toy_tokenizer():
    """CLIP's tokenizer reduced to the words of the toy captions (638 tokens instead of 49,408).

    The toy text towers are trained from scratch, so rows of other tokens would stay random; without
    them the exported model's text encoder shrinks from 6.3 MB to 0.1 MB (fp16). Any other prompt still
    tokenizes, into smaller pieces (`model.tokenizer`)."""
    return copy.deepcopy(_toy_tokenizer())


def _text() -> dict:
    tokenizer = _toy_tokenizer()
    return dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=EMBED,
        intermediate_size=2 * EMBED,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
    )


def pixel_values(processor, images: np.ndarray) -> torch.Tensor:
    """Run the saved image processor once over a uint8 bank, so training sees exactly what eval sees."""
    chunks = [
        processor(images=list(images[i : i + 512]), return_tensors="pt").pixel_values
        for i in range(0, len(images), 512)
    ]
    return torch.cat(chunks)


def _soft_contrastive(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor):
    """InfoNCE where every pair with the same label is a positive (captions repeat within a batch)."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T * scale
    same = (labels[:, None] == labels[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T)) / 2


def _fit_and_save(model, processor, loss_at, steps: int, desc: str, directory: Path, progress: bool) -> Path:
    """Train, then save model and processor together: a folder `from_pretrained` loads like a hub id."""
    fit(model.parameters(), loss_at, steps, 1e-3, desc, progress=progress)
    return _save(model, processor, directory)


def _save(model, processor, directory: Path) -> Path:
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def _views_contrastive(embed, pixels: torch.Tensor, idx: torch.Tensor, generator: torch.Generator):
    """Two random views of each subject in the batch are the positives, every other image a negative."""
    views = pixels.shape[1]
    first = torch.randint(0, views, (len(idx),), generator=generator)
    second = (first + torch.randint(1, views, (len(idx),), generator=generator)) % views
    z = F.normalize(embed(torch.cat([pixels[idx, first], pixels[idx, second]])), dim=-1)
    labels = torch.cat([idx, idx])
    logits = z @ z.T / 0.1 - torch.eye(len(z)) * 1e4  # a view is not its own positive
    positive = (labels[:, None] == labels[None, :]).float() - torch.eye(len(z))
    return F.cross_entropy(logits, positive / positive.sum(1, keepdim=True))


def _view_pixels(processor, bank: ViewBank) -> torch.Tensor:
    subjects, views, size = bank.images.shape[:3]
    return pixel_values(processor, bank.images.reshape(-1, size, size, 3)).view(
        subjects, views, 3, size, size
    )


def train_toy_clip(
    bank: SceneBank,
    directory: Path,
    steps: int,
    seed: int,
    progress: bool = True,
    views: ViewBank | None = None,
    view_steps: int = 0,
) -> Path:
    """Image-text contrastive for `steps`, then `view_steps` of the image tower alone on captions plus
    views of one subject (text tower frozen, so the base model's text encoder does not change)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(seed)
    size = bank.images.shape[1]
    model = CLIPModel(CLIPConfig(text_config=_text(), vision_config=_vision(size), projection_dim=EMBED))
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        ),
        tokenizer=toy_tokenizer(),
    )
    pixels = pixel_values(processor.image_processor, bank.images)
    unique = sorted(set(bank.captions))
    tokens = processor.tokenizer(unique, padding=True, return_tensors="pt")
    caption_index = torch.tensor([unique.index(c) for c in bank.captions])
    labels = torch.from_numpy(bank.shapes * 100 + bank.scenes)
    pick = batches(len(bank), 64, seed)

    def image_features(x: torch.Tensor) -> torch.Tensor:
        image = model.get_image_features(pixel_values=x)
        return getattr(image, "pooler_output", image)

    def text_features(ids: torch.Tensor) -> torch.Tensor:
        text = model.get_text_features(
            input_ids=tokens.input_ids[ids], attention_mask=tokens.attention_mask[ids]
        )
        return getattr(text, "pooler_output", text)

    def loss_at(step: int) -> torch.Tensor:
        idx = pick(step)
        text = text_features(caption_index[idx])
        return _soft_contrastive(
            image_features(pixels[idx]), text, labels[idx], model.logit_scale.exp().clamp(max=100)
        )

    fit(model.parameters(), loss_at, steps, 1e-3, "toy clip", progress=progress)
    if view_steps and views is not None:
        model.requires_grad_(False)
        model.vision_model.requires_grad_(True)
        model.visual_projection.requires_grad_(True)
        with torch.no_grad():
            captions = text_features(torch.arange(len(unique)))
        view_pixels = _view_pixels(processor.image_processor, views)
        pick_subjects = batches(len(view_pixels), 32, seed + 1)
        generator = torch.Generator().manual_seed(seed)
        scale = model.logit_scale.exp().clamp(max=100).detach()

        def both_at(step: int) -> torch.Tensor:
            idx = pick(step)
            text = _soft_contrastive(
                image_features(pixels[idx]), captions[caption_index[idx]], labels[idx], scale
            )
            return text + _views_contrastive(image_features, view_pixels, pick_subjects(step), generator)

        fit(model.parameters(), both_at, view_steps, 1e-3, "toy clip: views", progress=progress)
    return _save(model, processor, directory)


def train_toy_dino(bank: ViewBank, directory: Path, steps: int, seed: int, progress: bool = True) -> Path:
    """Subject-contrastive ViT: two random views of each subject in a batch are the positives."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(seed)
    size = bank.images.shape[2]
    model = ViTModel(ViTConfig(**_vision(size, layers=4)), add_pooling_layer=False)
    processor = ViTImageProcessor(size={"height": size, "width": size})
    pixels = _view_pixels(processor, bank)
    pick = batches(len(pixels), 48, seed)
    generator = torch.Generator().manual_seed(seed)

    def loss_at(step: int) -> torch.Tensor:
        return _views_contrastive(
            lambda x: model(pixel_values=x).last_hidden_state[:, 0], pixels, pick(step), generator
        )

    return _fit_and_save(model, processor, loss_at, steps, "toy dino", directory, progress)


def train_toy_clipseg(bank: SceneBank, directory: Path, steps: int, seed: int, progress: bool = True) -> Path:
    """CLIPSeg conditioned on the shape name, trained on the renderer's ground-truth masks."""
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor, ViTImageProcessor

    torch.manual_seed(seed)
    size = bank.images.shape[1]
    config = CLIPSegConfig(
        text_config=_text(),
        vision_config=_vision(size),
        projection_dim=EMBED,
        extract_layers=(0, 1, 2),
        reduce_dim=32,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=64,
    )
    model = CLIPSegForImageSegmentation(config)
    processor = CLIPSegProcessor(
        image_processor=ViTImageProcessor(
            size={"height": size, "width": size},
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        ),
        tokenizer=toy_tokenizer(),
    )
    pixels = pixel_values(processor.image_processor, bank.images)
    tokens = processor.tokenizer(list(SHAPES), padding=True, return_tensors="pt")
    shapes = torch.from_numpy(bank.shapes)
    masks = torch.from_numpy(bank.masks).float()
    pick = batches(len(bank), 32, seed)

    def loss_at(step: int) -> torch.Tensor:
        idx = pick(step)
        ids = shapes[idx]
        logits = model(
            input_ids=tokens.input_ids[ids],
            attention_mask=tokens.attention_mask[ids],
            pixel_values=pixels[idx],
        ).logits
        logits = logits.view(len(idx), *logits.shape[-2:])
        target = F.interpolate(masks[idx, None], size=logits.shape[-2:], mode="area")[:, 0]
        return F.binary_cross_entropy_with_logits(logits, target)

    return _fit_and_save(model, processor, loss_at, steps, "toy clipseg", directory, progress)
