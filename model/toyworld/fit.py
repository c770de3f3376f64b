"""One small optimisation loop shared by every toy network (VAE, UNet, classifier, encoders, segmenter)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
from tqdm.auto import tqdm


def fit(
    parameters: Iterable[torch.nn.Parameter],
    loss_at: Callable[[int], torch.Tensor],
    steps: int,
    lr: float,
    desc: str,
    *,
    progress: bool = True,
    warmup: int = 50,
    ema: tuple[torch.nn.Module, torch.nn.Module, float] | None = None,
    after_step: Callable[[int], None] | None = None,
) -> float:
    """AdamW with warm-up and cosine decay for `steps` updates of `loss_at(step)`; returns the last
    smoothed loss. `ema=(model, averaged_copy, decay)` keeps an exponential moving average;
    `after_step(step)` runs after each update (checkpoints, probes of a long run)."""
    parameters = [p for p in parameters if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=1e-4)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    smoothed = float("nan")
    bar = tqdm(range(steps), desc=desc, unit="step", disable=not progress, mininterval=2.0)
    for step in bar:
        loss = loss_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        if ema is not None:
            model, averaged, decay = ema
            decay = min(decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for a, p in zip(averaged.parameters(), model.parameters(), strict=True):
                    a.lerp_(p, 1 - decay)
        value = float(loss.detach())
        smoothed = value if math.isnan(smoothed) else 0.95 * smoothed + 0.05 * value
        bar.set_postfix(loss=f"{smoothed:.4f}", refresh=False)
        if after_step is not None:
            after_step(step)
    return smoothed


def averaged_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of `model` to hold its moving average."""
    averaged = copy.deepcopy(model)
    averaged.requires_grad_(False)
    return averaged


def batches(count: int, batch_size: int, seed: int) -> Callable[[int], torch.Tensor]:
    """Indices of batch `step`: a fresh seeded permutation each epoch (a pure function of the step)."""
    per_epoch = max(1, count // batch_size)

    def indices(step: int) -> torch.Tensor:
        epoch, position = divmod(step, per_epoch)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        return order[position * batch_size : (position + 1) * batch_size]

    return indices
