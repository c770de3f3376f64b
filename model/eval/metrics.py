"""CLIP-T, CLIP-I and DINO as the DreamBooth paper defines them, and the encoders they need.

All three are cosine similarities ×100 (the papers print 0.311 as 31.1):
- CLIP-T: CLIP image embedding of a generated image vs. CLIP text embedding of its prompt.
- CLIP-I: CLIP image embeddings of a generated image vs. every real photo of its subject, averaged.
- DINO: the same with DINO ViT-S/16 CLS embeddings (more sensitive to the subject's identity than CLIP).
Every generated image contributes one number per metric; a subject's score and the overall score are
means over generated images, so each image weighs the same (the paper's 3,000-image protocol).

Encoder defaults: the DreamBooth paper names DINO ViT-S/16 (`facebook/dino-vits16`) but not which CLIP
it used, and BootPIG follows DreamBooth's protocol. We default to OpenAI's ViT-B/32; pass
`--clip-model openai/clip-vit-large-patch14` (or a local folder) for another. Numbers are comparable
only between runs with the same encoders, which is why the report records them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from model.eval.config import DEFAULT_CLIP_MODEL, DEFAULT_DINO_MODEL

SCALE = 100.0


# ----------------------------------------------------------------------------------- pure metrics
def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, d) x (m, d) -> (n, m) cosine similarities, computed in float64 for stable averages."""
    return F.normalize(a.double(), dim=-1) @ F.normalize(b.double(), dim=-1).T


def text_alignment(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """CLIP-T per image: row i of the images against row i of the texts (its prompt), ×100."""
    if image_embeds.shape != text_embeds.shape:
        raise ValueError("CLIP-T needs one text embedding per image")
    return F.cosine_similarity(image_embeds.double(), text_embeds.double(), dim=-1) * SCALE


def subject_fidelity(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """CLIP-I or DINO per generated image: mean cosine to all real photos of the subject, ×100."""
    if len(real) == 0:
        raise ValueError("subject fidelity needs at least one real image")
    return cosine_matrix(generated, real).mean(dim=1) * SCALE


def reference_self_similarity(real: torch.Tensor) -> torch.Tensor:
    """The "Reference Images" row: each real photo against the subject's other photos, ×100.

    It is the ceiling a generator that copies a random photo of the subject would reach.
    """
    n = len(real)
    if n < 2:
        raise ValueError("reference self-similarity needs at least two real images")
    sims = cosine_matrix(real, real)
    off_diagonal = sims.sum(dim=1) - sims.diagonal()
    return off_diagonal / (n - 1) * SCALE


def mean(values: Sequence[float] | torch.Tensor) -> float:
    values = torch.as_tensor(values, dtype=torch.float64)
    if values.numel() == 0:
        raise ValueError("no values to average")
    return float(values.mean())


# ----------------------------------------------------------------------------------- encoders
def _features(output) -> torch.Tensor:
    """transformers 5 returns a model output from `get_*_features`; older versions a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@dataclass
class Encoders:
    """CLIP (image + text) and DINO ViT loaded once; embeddings come back on the CPU in float32."""

    clip_model: torch.nn.Module
    clip_processor: object
    dino_model: torch.nn.Module
    dino_processor: object
    device: torch.device
    clip_name: str
    dino_name: str
    batch_size: int = 32

    @classmethod
    def load(
        cls,
        clip: str = DEFAULT_CLIP_MODEL,
        dino: str = DEFAULT_DINO_MODEL,
        device: str | torch.device = "cpu",
        local_files_only: bool = False,
    ) -> Encoders:
        """Hub ids or local folders; fp32 always (these encoders are small and scores must be exact)."""
        from transformers import AutoImageProcessor, CLIPModel, CLIPProcessor, ViTModel

        device = torch.device(device)
        opts = {"local_files_only": local_files_only}
        clip_model = CLIPModel.from_pretrained(clip, **opts).to(device).eval()
        dino_model = ViTModel.from_pretrained(dino, add_pooling_layer=False, **opts).to(device).eval()
        return cls(
            clip_model=clip_model,
            clip_processor=CLIPProcessor.from_pretrained(clip, **opts),
            dino_model=dino_model,
            dino_processor=AutoImageProcessor.from_pretrained(dino, **opts),
            device=device,
            clip_name=str(clip),
            dino_name=str(dino),
        )

    def _batched(self, items: list, embed) -> torch.Tensor:
        if not items:
            raise ValueError("nothing to embed")
        chunks = [embed(items[i : i + self.batch_size]) for i in range(0, len(items), self.batch_size)]
        return torch.cat(chunks).float().cpu()

    @torch.no_grad()
    def clip_images(self, images: list[Image.Image]) -> torch.Tensor:
        def embed(batch):
            pixels = self.clip_processor(images=[im.convert("RGB") for im in batch], return_tensors="pt")
            return _features(
                self.clip_model.get_image_features(pixel_values=pixels.pixel_values.to(self.device))
            )

        return self._batched(images, embed)

    @torch.no_grad()
    def clip_texts(self, texts: list[str]) -> torch.Tensor:
        max_length = self.clip_model.config.text_config.max_position_embeddings

        def embed(batch):
            tokens = self.clip_processor(
                text=batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            return _features(
                self.clip_model.get_text_features(
                    input_ids=tokens.input_ids.to(self.device),
                    attention_mask=tokens.attention_mask.to(self.device),
                )
            )

        return self._batched(texts, embed)

    @torch.no_grad()
    def dino_images(self, images: list[Image.Image]) -> torch.Tensor:
        """CLS token of the last layer (after the final layer norm), DINO's image descriptor."""

        def embed(batch):
            pixels = self.dino_processor(images=[im.convert("RGB") for im in batch], return_tensors="pt")
            return self.dino_model(pixel_values=pixels.pixel_values.to(self.device)).last_hidden_state[:, 0]

        return self._batched(images, embed)
