"""Two DDP processes (gloo, CPU) train the same weights as one process: sample numbering, gradient
all-reduce with unused Reference-UNet tail parameters, accumulation without sync, and checkpoint hooks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
from safetensors.torch import load_file
from torch.testing import assert_close

from model.train.loop import train


@pytest.mark.slow
def test_two_processes_match_one(train_config, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip(f"torchrun (torch's launcher) not found beside {sys.executable}: the DDP test needs it")
    config = train_config.model_copy(update={"batch_size": 8, "micro_batch_size": 2, "max_steps": 2})
    single = train(config.model_copy(update={"output": tmp_path / "one"}))

    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    args = ["--model", config.model, "--data", str(config.data), "--output", str(tmp_path / "two")]
    args += ["--max-steps", "2", "--batch-size", "8", "--micro-batch-size", "2", "--resolution", "64"]
    args += ["--num-workers", "0", "--checkpoint-every", "2", "--local-files-only"]
    # Own process group, so a hang kills torchrun's workers too and leaves nothing running.
    command = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "bootpig.cli", "train", *args]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0, stderr[-3000:]
    assert "2 accumulation x 2 processes" in stderr
    for name in ("ref_unet", "base_unet"):
        one = load_file(single.final / name / "diffusion_pytorch_model.safetensors")
        two = load_file(tmp_path / "two" / "final" / name / "diffusion_pytorch_model.safetensors")
        assert one.keys() == two.keys()
        for key in one:  # equal up to the order of floating-point sums in the all-reduce
            assert_close(two[key], one[key], rtol=0, atol=1e-6, msg=f"{name}.{key}")
