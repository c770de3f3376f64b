"""Worker errors become short messages for clients: no paths, no stack traces."""

from __future__ import annotations

import torch
from rq.timeouts import JobTimeoutException

from worker.runner import JobTimedOut, human_message


def test_cuda_out_of_memory_is_explained():
    message = human_message(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert "GPU ran out of memory" in message and "GiB" not in message


def test_paths_are_hidden():
    message = human_message(ValueError("cannot read /srv/models/secret/unet/config.json: bad json"))
    assert "/srv" not in message and "<path>" in message and message.startswith("generation failed")


def test_timeouts_and_unknown_errors():
    assert "limit" in human_message(JobTimedOut("the job took longer than the 5 s limit and was stopped"))
    assert "time limit" in human_message(JobTimeoutException("Task exceeded maximum timeout value"))
    message = human_message(KeyError("weird internal thing at 0x7f"))
    assert "internal error" in message and "0x7f" not in message


def test_missing_tracer_weights_suggest_segment_none():
    message = human_message(FileNotFoundError("TRACER-B7 weights not found at /root/.cache/tracer_b7.pth"))
    assert "segment=none" in message and "/root" not in message
