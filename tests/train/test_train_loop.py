"""Algorithm 1 on the tiny model: learning, what trains, drop paths, exact resume, export, bad samples."""

from __future__ import annotations

import json
import re

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from PIL import Image
from safetensors.torch import load_file

from model.pipeline import BootPIGPipeline
from model.train.checkpoint import TRAIN_CONFIG_NAME, list_checkpoints
from model.train.config import TrainConfig
from model.train.dataset import TripletDataset, collate
from model.train.loop import (
    RSA_PARAMETER,
    accumulate_gradients,
    clean_image_weight,
    encode_captions,
    load_models,
    min_snr_weight,
    train,
    trainable_parameters,
    training_loss,
)

# The tiny UNet's last self-attention is up_blocks.1.attentions.1.transformer_blocks.0.attn1. The
# Reference UNet only contributes the *inputs* of its self-attentions, so that attn1 itself and every
# layer after it produce outputs nothing reads: they get no gradient and must stay unchanged.
REFERENCE_TAIL = re.compile(
    r"^(up_blocks\.1\.attentions\.1\.transformer_blocks\.0\.(attn1|norm2|attn2|norm3|ff)\."
    r"|up_blocks\.1\.attentions\.1\.proj_out\.|conv_norm_out\.|conv_out\.)"
)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    after = module.state_dict()
    return {name for name, tensor in before.items() if not torch.equal(tensor, after[name])}


def fixed_batch(config: TrainConfig, size: int = 4) -> dict:
    dataset = TripletDataset(config.data, config.resolution, config.augmentation, seed=config.seed)
    return collate([dataset[k] for k in range(size)])


def test_thirty_steps_lower_the_loss_on_a_fixed_batch(train_config):
    config = train_config.model_copy(
        update={
            "max_steps": 30,
            "checkpoint_every": 30,
            "micro_batch_size": 4,
            "lr_reference": 2e-3,
            "lr_rsa": 2e-3,
            "caption_drop": 0.0,
            "reference_drop": 0.0,
        }
    )
    models = load_models(config)
    batch = fixed_batch(config)
    with torch.no_grad():
        before = training_loss(models.unets, models, batch, config).item()
    result = train(config, models)
    with torch.no_grad():
        after = training_loss(models.unets, models, batch, config).item()
    assert len(result.losses) == 30
    assert after < 0.85 * before, (before, after)


def test_only_reference_unet_and_rsa_weights_change(train_config):
    config = train_config.model_copy(update={"max_steps": 2, "lr_reference": 1e-3, "lr_rsa": 1e-3})
    models = load_models(config)
    ref, base = snapshot(models.unets.ref_unet), snapshot(models.unets.base_unet)
    vae, text = snapshot(models.vae), snapshot(models.text_encoder)

    train(config, models)

    ref_params = {name for name, _ in models.unets.ref_unet.named_parameters()}
    tail = {name for name in ref_params if REFERENCE_TAIL.match(name)}
    assert tail and len(tail) < len(ref_params) // 4
    assert changed(ref, models.unets.ref_unet) == ref_params - tail
    rsa = {name for name, _ in models.unets.base_unet.named_parameters() if RSA_PARAMETER.search(name)}
    # q, k, v weights + out weight and bias in 7 transformer blocks (2 down, 1 mid, 4 up)
    assert len(rsa) == 7 * 5
    assert changed(base, models.unets.base_unet) == rsa
    assert changed(vae, models.vae) == set()
    assert changed(text, models.text_encoder) == set()


def test_tail_parameters_get_no_gradient_and_all_others_do(train_config):
    config = train_config.model_copy(update={"reference_drop": 0.0})
    models = load_models(config)
    trainable_parameters(models.unets)
    training_loss(models.unets, models, fixed_batch(config, 2), config).backward()
    no_grad = {n for n, p in models.unets.ref_unet.named_parameters() if p.grad is None}
    assert no_grad == {n for n, _ in models.unets.ref_unet.named_parameters() if REFERENCE_TAIL.match(n)}
    base_grads = {n for n, p in models.unets.base_unet.named_parameters() if p.grad is not None}
    assert base_grads == {n for n, _ in models.unets.base_unet.named_parameters() if RSA_PARAMETER.search(n)}


def test_two_accumulated_micro_batches_give_the_loss_and_gradient_of_one_batch(train_config):
    """What `train` does per update with batch 4 as 2 x 2 equals one backward pass over all 4 samples."""
    models = load_models(train_config)
    trainable_parameters(models.unets)
    dataset = TripletDataset(train_config.data, train_config.resolution, train_config.augmentation, seed=0)
    samples = [dataset[k] for k in range(4)]
    whole = training_loss(models.unets, models, collate(samples), train_config)
    whole.backward()
    expected = {name: p.grad.clone() for name, p in models.unets.named_parameters() if p.grad is not None}
    models.unets.zero_grad(set_to_none=True)

    accelerator = Accelerator(gradient_accumulation_steps=2)
    model = accelerator.prepare(models.unets)
    halves = [collate(samples[:2]), collate(samples[2:])]
    loss, skipped = accumulate_gradients(accelerator, model, models, halves, train_config)

    assert accelerator.sync_gradients and skipped == []
    assert loss.item() == pytest.approx(whole.item(), rel=1e-5)
    got = {name: p.grad for name, p in models.unets.named_parameters() if p.grad is not None}
    assert got.keys() == expected.keys() and len(got) > 100
    for name, grad in got.items():
        torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-8, msg=name)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_caption_and_reference_drop_paths(train_config, p):
    config = train_config.model_copy(update={"caption_drop": p, "reference_drop": p})
    models = load_models(config)
    trainable_parameters(models.unets)
    batch = fixed_batch(config, 2)
    calls = []

    def recording_model(*args, **kwargs):
        calls.append((args, kwargs))
        return models.unets(*args, **kwargs)

    training_loss(recording_model, models, batch, config).backward()
    (_, _, embeds, _, reference_embeds), kwargs = calls[0]
    expected_captions = [""] * 2 if p == 1.0 else batch["caption"]
    assert torch.equal(embeds, encode_captions(models, expected_captions))
    assert torch.equal(reference_embeds, encode_captions(models, batch["reference_caption"]))
    assert kwargs["keep_reference"].tolist() == [p == 0.0] * 2
    ref_grads = [p_.grad for p_ in models.unets.ref_unet.parameters()]
    if p == 1.0:  # no sample sees a reference: the Reference UNet does not even run
        assert all(g is None for g in ref_grads)
    else:
        assert any(g is not None and g.abs().sum() > 0 for g in ref_grads)


def test_resume_continues_exactly(train_config, tmp_path):
    uninterrupted = train_config.model_copy(update={"output": tmp_path / "a", "lr_reference": 1e-3})
    full = train(uninterrupted)

    first = uninterrupted.model_copy(update={"output": tmp_path / "b", "max_steps": 2})
    part_one = train(first)
    assert [step for step, _ in list_checkpoints(tmp_path / "b")] == [2]
    with pytest.raises(ValueError, match="--resume"):
        train(first.model_copy(update={"max_steps": 4}))
    part_two = train(first.model_copy(update={"max_steps": 4, "resume": "latest"}))

    assert part_one.losses == {1: full.losses[1], 2: full.losses[2]}
    assert part_two.losses == {3: full.losses[3], 4: full.losses[4]}
    for name in ("ref_unet", "base_unet"):
        a = (full.final / name / "diffusion_pytorch_model.safetensors").read_bytes()
        b = (part_two.final / name / "diffusion_pytorch_model.safetensors").read_bytes()
        assert a == b, name


def test_checkpoints_are_bounded_and_exported_weights_generate(train_config, tiny_model_dir):
    config = train_config.model_copy(
        update={
            "max_steps": 3,
            "checkpoint_every": 1,
            "checkpoints_kept": 2,
            "tensorboard": True,
            "log_every": 1,
            "reference_timestep": 250,  # recorded in bootpig_config.json: inference defaults to it
        }
    )
    result = train(config)
    assert [step for step, _ in list_checkpoints(config.output)] == [2, 3]
    assert list((config.output / "logs").rglob("events.out.tfevents.*"))

    checkpoint = config.output / "checkpoint-3"
    assert TrainConfig.model_validate_json((checkpoint / TRAIN_CONFIG_NAME).read_text()) == config
    method = json.loads((checkpoint / "bootpig_config.json").read_text())
    assert method == config.method.model_dump(mode="json") | {"reference_timestep": 250}
    for folder in (checkpoint, result.final):
        assert (folder / "ref_unet" / "diffusion_pytorch_model.safetensors").is_file()
        assert (folder / "base_unet" / "diffusion_pytorch_model.safetensors").is_file()

    pipe = BootPIGPipeline.from_pretrained(tiny_model_dir, bootpig=result.final, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.has_trained_weights and pipe.method.reference_timestep == 250
    initial = BootPIGPipeline.from_pretrained(tiny_model_dir, local_files_only=True)
    assert not torch.equal(pipe.ref_unet.conv_in.weight, initial.ref_unet.conv_in.weight)
    reference = fixed_batch(config, 1)["reference"][0]
    reference_image = Image.fromarray(((reference + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())
    out = pipe(
        "a red ball on a beach", [reference_image], steps=2, generator=torch.Generator().manual_seed(0)
    )
    assert len(out.images) == 1 and out.images[0].size == (64, 64)


def test_bad_samples_are_skipped_and_counted(train_config, tmp_path, triplet_writers):
    make_triplet_folder, write_triplet = triplet_writers

    data = make_triplet_folder(tmp_path / "data", count=4)
    empty = write_triplet(data, 4, empty_mask=True)
    unreadable = write_triplet(data, 5)
    (data / unreadable.target).write_bytes(b"not a png")
    missing = write_triplet(data, 6)
    (data / missing.mask).unlink()

    config = train_config.model_copy(
        update={"data": data, "batch_size": 7, "micro_batch_size": 7, "max_steps": 1}
    )
    result = train(config)
    assert sorted(result.skipped_samples) == sorted([empty.id, unreadable.id, missing.id])
    assert len(result.losses) == 1 and torch.isfinite(torch.tensor(result.losses[1]))


def test_bf16_mixed_precision_with_gradient_checkpointing(train_config, tmp_path):
    fp32 = train(train_config.model_copy(update={"max_steps": 2, "output": tmp_path / "fp32"}))
    config = train_config.model_copy(
        update={"max_steps": 2, "mixed_precision": "bf16", "gradient_checkpointing": True}
    )
    AcceleratorState._reset_state(True)  # accelerate fixes the precision once per process
    try:
        bf16 = train(config)
    finally:
        AcceleratorState._reset_state(True)
    for step, loss in fp32.losses.items():
        assert bf16.losses[step] == pytest.approx(loss, rel=0.05)
    weights = load_file(bf16.final / "ref_unet" / "diffusion_pytorch_model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}  # fp32 master weights


def weighting_at(train_config, weighting, timesteps: list[int], parameter: float):
    """The models, a loss weighting's values at `timesteps`, and the noise schedule's SNR there."""
    models = load_models(train_config)
    t = torch.tensor(timesteps)
    alphas = models.noise_scheduler.alphas_cumprod[t]
    return models, weighting(models.noise_scheduler, t, parameter), alphas / (1 - alphas)


def test_min_snr_weighting_reweights_each_sample_by_its_timestep(train_config):
    """snr_gamma: per-sample MSE x min(SNR, gamma)/SNR; noisy samples keep weight 1, clean ones shrink."""
    models, weights, snr = weighting_at(train_config, min_snr_weight, [999, 500, 50, 0], 5.0)
    assert weights[0] == 1.0 and snr[0] < 5.0  # the noisiest timestep is below gamma: unchanged
    assert torch.allclose(weights[2:], 5.0 / snr[2:]) and weights[3] < 0.01  # nearly clean: shrunk

    batch = fixed_batch(train_config, 4)
    plain = training_loss(models.unets, models, batch, train_config)
    weighted = training_loss(models.unets, models, batch, train_config.model_copy(update={"snr_gamma": 5.0}))
    assert weighted < plain  # weights are at most 1, and below 1 for every timestep with SNR > 5
    beyond = training_loss(models.unets, models, batch, train_config.model_copy(update={"snr_gamma": 1e9}))
    assert beyond.item() == pytest.approx(plain.item(), rel=1e-5)  # gamma above every SNR: the plain loss


def test_clean_image_weighting_favours_the_noisy_timesteps(train_config):
    """clean_image_weight_cap: per-sample MSE x min(1/SNR, cap); only one weighting may be set."""
    models, weights, snr = weighting_at(train_config, clean_image_weight, [999, 600, 250, 0], 20.0)
    assert weights[0] == 20.0 and 1 / snr[0] > 20.0  # the noisiest timestep: capped
    assert torch.allclose(weights[1:], 1 / snr[1:]) and weights[3] < 1e-2  # the others: 1/SNR
    assert weights[0] > weights[1] > weights[2] > weights[3]

    batch = fixed_batch(train_config, 4)
    plain = training_loss(models.unets, models, batch, train_config)
    config = train_config.model_copy(update={"clean_image_weight_cap": 20.0})
    weighted = training_loss(models.unets, models, batch, config)
    assert weighted.item() != pytest.approx(plain.item(), rel=1e-3)
    with pytest.raises(ValueError, match="at most one"):
        type(train_config).model_validate(
            train_config.model_dump() | {"snr_gamma": 5.0, "clean_image_weight_cap": 20.0}
        )


def test_a_fixed_reference_timestep_reaches_the_reference_unet(train_config):
    """reference_timestep: the references are noised to, and the Reference UNet told, that timestep; the
    target keeps its own. The default (None) is the paper's: both share each sample's timestep."""
    models = load_models(train_config)
    batch = fixed_batch(train_config, 2)
    seen: dict[str, torch.Tensor] = {}

    def record(_module, args, kwargs):
        seen["reference"] = (args[1] if len(args) > 1 else kwargs["timestep"]).flatten()

    def recording_model(noisy, timesteps, *args, **kwargs):
        seen["target"] = timesteps
        return models.unets(noisy, timesteps, *args, **kwargs)

    handle = models.unets.ref_unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        config = train_config.model_copy(update={"reference_drop": 0.0})
        training_loss(recording_model, models, batch, config)
        assert torch.equal(seen["reference"], seen["target"])  # the paper: the same t
        training_loss(recording_model, models, batch, config.model_copy(update={"reference_timestep": 250}))
        assert seen["reference"].tolist() == [250, 250] and seen["target"].tolist() != [250, 250]
    finally:
        handle.remove()
