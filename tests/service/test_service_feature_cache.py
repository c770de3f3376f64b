"""The worker's cache of fast-mode reference features of prepared subjects (`worker.feature_cache`).

Unit tests of the key and the byte-bounded LRU, then the worker's own `run_job` in this process on the
test Redis with the tiny model, so the Reference UNet's calls can be counted through a forward pre-hook.
The live-stack check (a real `bootpig worker` behind the API) is in `test_service_subjects.py`.
"""

from __future__ import annotations

import io
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image

from jobs.store import JobStore, connect
from model.config import GenerationConfig
from worker.feature_cache import FeatureCache, FeatureKey, feature_key, features_nbytes

SUBJECT = "0123456789abcdef0123456789abcdef"
FILES = [b"reference one", b"reference two"]
BASE = {
    "prompt": "a dog",
    "reference_schedule": "once",
    "segment": "none",
    "steps": 2,
    "height": 64,
    "width": 64,
}


def key(subject: str | None = SUBJECT, files=FILES, weights: str = "tiny|fp32|cpu", **changes) -> FeatureKey:
    return feature_key(subject, GenerationConfig(**BASE | changes), files, weights)


# ---------------------------------------------------------------------------------------------- the key
@pytest.mark.parametrize(
    "changed",
    [
        {"reference_timestep": 500},
        {"reference_size": 128},
        {"height": 128},  # without reference_size, the references follow the output's larger side
        {"prompt": "a cat"},  # without reference_prompt, the prompt is the references' caption
        {"reference_prompt": "a photo of a dog"},
        {"segment": "tracer"},
        {"files": FILES[:1]},
        {"files": FILES[::-1]},
        {"files": [b"reference on", b"ereference two"]},  # same bytes, other boundary
        {"subject": "f" * 32},
        {"weights": "tiny|bf16|cpu"},
    ],
)
def test_anything_the_features_depend_on_changes_the_key(changed):
    assert key(**changed) != key()


@pytest.mark.parametrize(
    "changed",
    [
        {"seed": 7},
        {"steps": 5},
        {"guidance_image": 1.0, "guidance_text": 2.0},
        {"pooling": "average"},  # applied by the Base UNet's RSA, after the features
        {"negative_prompt": "blurry"},
        {"num_images": 2},
        {"prompt": "a cat", "reference_prompt": "a dog"},  # the caption is what counts
    ],
)
def test_what_the_features_do_not_depend_on_shares_the_entry(changed):
    assert key(**changed) == key()


def test_only_fast_mode_jobs_of_a_subject_have_a_key():
    assert key(subject=None) is None  # uploaded photos
    assert key(reference_schedule=1) is None and key(reference_schedule=3) is None


# ---------------------------------------------------------------------------------------------- the LRU
def features(megabytes: int) -> dict[str, torch.Tensor]:
    return {"layer": torch.zeros(megabytes * 2**20, dtype=torch.uint8)}


def test_the_byte_bound_evicts_the_least_recently_used():
    cache = FeatureCache(3 * 2**20)
    keys = [key(reference_timestep=t) for t in (100, 200, 300, 400)]
    for k in keys[:3]:
        assert cache.put(k, features(1))
    assert cache.get(keys[0]) is not None  # now the most recently used
    assert cache.put(keys[3], features(1))
    assert keys[1] not in cache and all(k in cache for k in (keys[0], keys[2], keys[3]))
    assert cache.nbytes == 3 * 2**20 and len(cache) == 3
    assert cache.put(keys[3], features(2))  # replacing an entry frees its old bytes first
    assert len(cache) == 2 and cache.nbytes == 3 * 2**20


def test_features_larger_than_the_bound_and_a_zero_bound_keep_nothing():
    cache = FeatureCache(2**20)
    assert cache.put(key(), features(1)) and not cache.put(key(reference_timestep=1), features(2))
    assert len(cache) == 1 and cache.get(key(reference_timestep=1)) is None
    disabled = FeatureCache(0)
    assert not disabled.put(key(), features(1)) and disabled.get(key()) is None and disabled.nbytes == 0


def test_a_view_counts_the_storage_it_keeps_alive_once():
    whole = torch.zeros(1000, dtype=torch.float32)
    assert features_nbytes({"a": whole[:10], "b": whole[10:20].view(2, 5)}) == 4000


# ---------------------------------------------------------------------------------------------- the worker
@pytest.fixture(scope="module")
def subject_files(dog_photos) -> list[bytes]:
    """Two prepared references as a subject stores them (what its jobs carry as inputs)."""
    from model.references import load_image, prepare_references
    from worker.subjects import encode_reference

    images = [load_image(path.read_bytes()) for path in dog_photos[:2]]
    return [encode_reference(image) for image in prepare_references(images, 64, "none")]


@pytest.fixture(scope="module")
def worker(make_stack, tiny_model_dir):
    """This process as a worker of an isolated stack (no other worker serves its queue)."""
    from model.generate import SegmenterCache
    from model.loading import load_pipeline
    from worker.runner import WorkerRuntime, install_runtime, runtime

    stack = make_stack()
    store = JobStore(connect(stack.settings()), stack.settings())
    pipe, info = load_pipeline(str(tiny_model_dir), device="cpu")
    install_runtime(
        WorkerRuntime(
            store=store,
            pipe=pipe,
            info=info,
            segmenters=SegmenterCache(tiny_model_dir / "no-tracer.pth"),
            name="in-process",
            job_timeout=60,
            features=FeatureCache(2**30),
        )
    )
    yield runtime()
    install_runtime(None)


@contextmanager
def reference_unet_calls(pipe):
    """Count real Reference UNet passes (a forward pre-hook: nothing is replaced)."""
    calls: list[int] = []
    hook = pipe.ref_unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        yield calls
    finally:
        hook.remove()


def run(rt, files: list[bytes], subject: str | None = SUBJECT, **params) -> tuple[dict, np.ndarray, int]:
    """Submit and run one job; (its record, its image's pixels, Reference UNet passes)."""
    from worker.runner import run_job

    fields = {"subject_id": subject} if subject else {}
    record, _ = rt.store.create("tester", BASE | {"seed": 3} | params, files, fields=fields)
    with reference_unet_calls(rt.pipe) as calls:
        assert run_job(record.id, 1) == "finished"
    done = rt.store.get(record.id)
    pixels = np.asarray(Image.open(io.BytesIO(rt.store.image(record.id, 0))), dtype=np.float32)
    return done.model_dump(), pixels, len(calls)


def test_a_subjects_second_fast_job_reuses_its_features_and_makes_the_same_image(
    worker, subject_files, one_torch_thread
):
    first, computed, calls = run(worker, subject_files, prompt="a dog on a beach")
    assert first["reference_features"] == "computed" and calls == 1
    second, cached, calls = run(worker, subject_files, prompt="a dog on a beach")
    assert second["reference_features"] == "cached" and calls == 0  # no Reference UNet at all
    assert np.abs(cached - computed).max() <= 1.0  # PNGs: equal up to rounding of equal floats
    _, other, _ = run(worker, subject_files, prompt="a dog on a beach", reference_timestep=900)
    assert np.abs(other - computed).max() > 1.0  # the features do shape the image: the check can fail
    other_seed, _, calls = run(worker, subject_files, prompt="a dog on a beach", seed=4, steps=3)
    assert other_seed["reference_features"] == "cached" and calls == 0


@pytest.mark.parametrize(
    "changed", [{"reference_timestep": 600}, {"reference_size": 128}, {"prompt": "a dog in snow"}]
)
def test_a_change_the_features_depend_on_misses(worker, subject_files, one_torch_thread, changed):
    run(worker, subject_files, prompt="a dog in the city")  # computed or cached: now in the cache
    params = {"prompt": "a dog in the city"} | changed
    job, _, calls = run(worker, subject_files, **params)
    assert job["reference_features"] == "computed" and calls == 1
    job, _, calls = run(worker, subject_files, **params)
    assert job["reference_features"] == "cached" and calls == 0


def test_exact_mode_and_uploaded_photos_never_touch_the_cache(worker, subject_files, one_torch_thread):
    entries, nbytes = len(worker.features), worker.features.nbytes
    exact, _, calls = run(worker, subject_files, prompt="a dog in a park", reference_schedule=1)
    assert exact["reference_features"] is None and calls == 2  # every step
    for _ in range(2):
        upload, _, calls = run(worker, subject_files, subject=None, prompt="a dog in a park")
        assert upload["reference_features"] == "computed" and calls == 1
    assert (len(worker.features), worker.features.nbytes) == (entries, nbytes)


def test_a_zero_bound_caches_nothing(worker, subject_files, one_torch_thread):
    kept, worker.features = worker.features, FeatureCache(0)
    try:
        for _ in range(2):
            job, _, calls = run(worker, subject_files, prompt="a dog at night")
            assert job["reference_features"] == "computed" and calls == 1
    finally:
        worker.features = kept
