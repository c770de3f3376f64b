"""Time one BootPIG denoising step (exact, direct reference path, fast mode) against a vanilla SD CFG step.

Everything runs in one process on the same UNet weights, interleaved: every round runs each case once,
in the same order, and the ratios are taken within a round, so a busy machine slows all cases alike.
Reported: median seconds, the median per-round ratio to the vanilla step, the spread of that ratio
over the rounds, and beside it the per-step cost model:

* UNet rows: vanilla 2 (CFG); BootPIG k (Reference UNet) + 3 (guidance branches); fast mode 3.
* attention units: n^2 query-key work of one row's self-attention at every layer (references are as
  large as the target). vanilla 2; Reference UNet k; Base UNet 1 (unconditional row) + 2 rows x
  (1 + k) merged, or 2 x (1 + 2k) direct (2 x 2 for k = 1, one attention over [f; f_ref]).
* floor = rows / 2 vanilla steps; model = (rows (1 - a) + units a) / 2, with a the share of a vanilla
  step's time spent in attention kernels (measured with torch.profiler).

    python benchmarks/denoising_step.py --config tiny --resolutions 64 --repeats 3
    python benchmarks/denoising_step.py --config sd21 --resolutions 256,512 --repeats 3 --profile
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import psutil
import torch
from PIL import Image

from model.config import AttentionImpl
from model.guidance import combine_guidance, guided_noise_prediction
from model.tiny import sd21_base_unet, tiny_unet
from model.unets import BootPIGUNets

ATTENTION_KERNELS = ("attention", "sdpa", "fmha")  # profiler op names of attention kernels


class PeakMemory:
    """Peak device memory (CUDA) or peak process RSS growth (CPU, sampled) during a block."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        self.process, self.base, self.running = psutil.Process(), psutil.Process().memory_info().rss, True
        self.peak_rss = self.base
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.running = False
            self.thread.join()
            self.peak = self.peak_rss - self.base


@dataclass
class Case:
    """One thing to time, with its cost model."""

    label: str
    run: Callable[[], object]
    rows: float
    units: float
    warm: Callable[[], object] | None = None  # untimed call right before each timed one
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)  # process CPU time: less sensitive to other load
    peak_bytes: int = 0


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(cases: list[Case], repeats: int, device: torch.device, warmup: bool = True) -> None:
    """An optional warm-up round, then `repeats` rounds of every case in turn (peak memory sampled)."""
    for round_ in range(repeats + int(warmup)):
        timed = round_ >= int(warmup)
        for case in cases:
            if case.warm is not None:
                case.warm()
            synchronize(device)
            with PeakMemory(device) as memory:
                start, cpu_start = time.perf_counter(), time.process_time()
                case.run()
                synchronize(device)
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if timed:
                case.times.append(elapsed)
                case.cpu_times.append(cpu)
                case.peak_bytes = max(case.peak_bytes, memory.peak)


def attention_share(step: Callable[[], object]) -> tuple[float, str]:
    """Share of one call's CPU/GPU time spent in attention kernels, and the profiler's top table."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        step()
    events = prof.key_averages()
    use_cuda = torch.cuda.is_available()
    self_time = (lambda e: e.self_device_time_total) if use_cuda else (lambda e: e.self_cpu_time_total)
    total = sum(self_time(e) for e in events)
    attention = sum(self_time(e) for e in events if any(a in e.key.lower() for a in ATTENTION_KERNELS))
    sort_by = "self_cuda_time_total" if use_cuda else "self_cpu_time_total"
    return attention / max(total, 1), events.table(sort_by=sort_by, row_limit=12)


def cost_units(k: int, impl: AttentionImpl) -> float:
    """Attention units of a BootPIG step's Base UNet rows (see the module docstring)."""
    if impl is AttentionImpl.merged:
        return 1 + 2 * (1 + k)
    return 1 + 2 * (2 if k == 1 else 1 + 2 * k)


def step_cases(unets: BootPIGUNets, resolution: int, refs: list[int], device, dtype) -> list[Case]:
    """Vanilla, then per k: exact (merged), direct (the old path) and fast (features once per job)."""
    side, dim = resolution // 8, unets.base_unet.config.cross_attention_dim
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, side, side, generator=generator).to(device, dtype)
    text = torch.randn(1, 77, dim, generator=generator).to(device, dtype)
    t = torch.tensor(500, device=device)

    @torch.no_grad()
    def vanilla():
        # Without reference features the RSA processors are plain SDPA self-attention: vanilla SD.
        uncond, cond = unets.base_noise(torch.cat([latents] * 2), t, torch.cat([text, text])).chunk(2)
        return combine_guidance(uncond, uncond, cond, 0.0, 7.5)

    cases = [Case(f"{resolution}px vanilla SD CFG step", vanilla, rows=2, units=2)]
    for k in refs:
        noisy_refs = torch.randn(k, 4, side, side, generator=generator).to(device, dtype)

        def step(impl: AttentionImpl, noisy_refs=noisy_refs):
            @torch.no_grad()
            def run():
                unets.attention_impl = impl
                return guided_noise_prediction(
                    unets, latents, t, text, text, noisy_reference_latents=noisy_refs, reference_embeds=text
                )

            return run

        with torch.no_grad():
            once = unets.reference_features(noisy_refs, t, text)

        @torch.no_grad()
        def fast(once=once):
            unets.attention_impl = AttentionImpl.merged
            return guided_noise_prediction(unets, latents, t, text, text, reference_features=once)

        unets.project_reference_features(once)  # once per job, before the first step
        projected = (unets.context.projections, unets.context.projected_from)

        def reuse_projections(projected=projected):  # as within one job: other cases replaced them
            unets.context.projections, unets.context.projected_from = projected

        merged, direct = AttentionImpl.merged, AttentionImpl.direct
        name = f"{resolution}px k={k}"
        cases += [
            Case(f"{name} exact (merged)", step(merged), k + 3, k + cost_units(k, merged)),
            Case(f"{name} direct (old path)", step(direct), k + 3, k + cost_units(k, direct)),
            Case(f"{name} fast (once/job)", fast, 3, cost_units(k, merged), warm=reuse_projections),
        ]
    return cases


def median_ratio(times: list[float], baseline: list[float]) -> tuple[float, float]:
    """Median of the per-round ratios, and their spread (max - min) / median."""
    ratios = [t / b for t, b in zip(times, baseline, strict=True)]
    ratio = statistics.median(ratios)
    return ratio, (max(ratios) - min(ratios)) / ratio if len(ratios) > 1 else 0.0


def report_steps(cases: list[Case], share: float) -> list[dict]:
    vanilla = cases[0]
    rows = []
    print(f"{'case':34s} {'median':>8s} {'x vanilla':>9s} {'spread':>6s} {'cpu x':>6s} {'spread':>6s} "
          f"{'rows':>5s} {'units':>6s} {'floor':>6s} {'model':>6s} {'peak MiB':>9s}")  # fmt: skip
    for case in cases:
        ratio, spread = median_ratio(case.times, vanilla.times)
        cpu_ratio, cpu_spread = median_ratio(case.cpu_times, vanilla.cpu_times)
        floor = case.rows / 2
        model = (case.rows * (1 - share) + case.units * share) / 2
        seconds = statistics.median(case.times)
        print(f"{case.label:34s} {seconds:7.2f}s {ratio:9.2f} {spread:6.0%} {cpu_ratio:6.2f} "
              f"{cpu_spread:6.0%} {case.rows:5.1f} {case.units:6.1f} {floor:6.2f} {model:6.2f} "
              f"{case.peak_bytes / 2**20:9.0f}")  # fmt: skip
        rows.append(
            {k: v for k, v in asdict(case).items() if k not in ("run", "warm")}
            | {"median_s": seconds, "ratio": ratio, "ratio_spread": spread, "cpu_ratio": cpu_ratio}
            | {"cpu_ratio_spread": cpu_spread, "floor": floor, "model": model}
        )
    return rows


def denoising_loop(
    unets: BootPIGUNets,
    reference,
    latents,
    text,
    steps: int,
    once: bool,
    graph: bool,
    device,
    noise_up_front: bool = True,
) -> tuple[torch.Tensor, float, int]:
    """One loop as the pipeline runs it (its `predict`, optionally graphed): final latents, s, peak bytes.

    `noise_up_front=False` noises the references inside the loop, step by step (what the pipeline did
    before `model.reference_noise`: host synchronisations between graph replays), for comparison.
    """
    from model.reference_noise import noised_references
    from model.step_graph import GraphedStep
    from model.tiny import tiny_scheduler

    scheduler = tiny_scheduler()
    scheduler.set_timesteps(steps, device=device)
    noise_generator = torch.Generator().manual_seed(1)
    unets.attention_impl = AttentionImpl.merged
    synchronize(device)
    with PeakMemory(device) as memory, torch.no_grad():
        start = time.perf_counter()
        features = unets.reference_features(reference, 250, text) if once else None
        if features is not None:
            unets.project_reference_features(features)
        noisy_all = None
        if not once and noise_up_front:
            noisy_all = noised_references(scheduler, reference, list(scheduler.timesteps), noise_generator)

        def predict(x, t, *noisy):
            step_features = unets.reference_features(noisy[0], t, text) if noisy else features
            return guided_noise_prediction(unets, x, t, text, text, reference_features=step_features)

        step = GraphedStep(predict) if graph else predict
        for i, t in enumerate(scheduler.timesteps):
            noisy = ()
            if noisy_all is not None:
                noisy = (noisy_all[i],)
            elif not once:
                fresh = torch.randn(reference.shape, generator=noise_generator).to(device, reference.dtype)
                noisy = (scheduler.add_noise(reference, fresh, t.reshape(1)),)
            latents = scheduler.step(step(latents, t, *noisy), t, latents).prev_sample
        synchronize(device)
        seconds = time.perf_counter() - start
        if graph:
            step.release()
    unets.release_reference_cache()
    return latents, seconds, memory.peak


def denoising_loops(
    unets: BootPIGUNets,
    resolution: int,
    refs: list[int],
    steps: int,
    device,
    dtype,
    compiled: bool = False,
    repeats: int = 1,
) -> list[dict]:
    """Seconds and peak memory of a whole denoising loop (UniPC, `steps` steps) per image, one run each.

    The full-size stand-in for a job where no weights exist: text and VAE encoding are left out (they
    are a few percent of a job). Exact mode re-noises the references every step (noise drawn before the
    loop, as the pipeline does; on CUDA also step by step inside it, the earlier way); fast mode once. On
    CUDA each mode also runs with the step replayed as a CUDA graph (`model.step_graph`, what the
    pipeline does there), and the graph's final latents are compared with the eager loop's. `compiled`
    then repeats the graphed loops with the stateless blocks compiled (`model.compiled_blocks`). Every
    loop runs `repeats` times in a row (single loops on a GPU vary with the launch overhead).
    """
    from model.compiled_blocks import compile_stateless_blocks
    from model.step_graph import graphs_available

    side, dim = resolution // 8, unets.base_unet.config.cross_attention_dim
    generator = torch.Generator().manual_seed(0)
    text = torch.randn(1, 77, dim, generator=generator).to(device, dtype)
    on_gpu = graphs_available(torch.device(device))
    variants = [("", False, True)]
    if on_gpu:
        variants += [(", CUDA graph, noise per step", True, False), (", CUDA graph", True, True)]
    inputs = {}
    for k in refs:
        reference = torch.randn(k, 4, side, side, generator=generator).to(device, dtype)
        inputs[k] = reference, torch.randn(1, 4, side, side, generator=generator).to(device, dtype)
    results, eager_latents = [], {}

    def run(k: int, label: str, once: bool, suffix: str, graph: bool, up_front: bool) -> None:
        if once and not up_front:
            return  # nothing is re-noised in the fast mode
        reference, start_latents = inputs[k]
        latents, seconds, peak = denoising_loop(
            unets, reference, start_latents, text, steps, once, graph, device, up_front
        )
        row = {"k": k, "mode": label, "variant": suffix.strip(", ") or "eager", "cuda_graph": graph}
        row |= {"seconds": seconds, "peak_bytes": peak}
        name = f"{resolution}px {steps}-step loop k={k} {label}{suffix}"
        note = ""
        eager = eager_latents.setdefault((k, label), latents)
        if eager is not latents:
            scale = eager.float().abs().max()
            row["max_rel_diff_vs_eager"] = ((latents.float() - eager.float()).abs().max() / scale).item()
            note = f"  final latents vs eager: {row['max_rel_diff_vs_eager']:.1e}"
        print(f"{name:64s} {seconds:8.2f} s/image  peak +{peak / 2**20:7.0f} MiB{note}")
        results.append(row)

    modes = (("exact", False), ("fast (once/job)", True))
    for k in refs:
        for label, once in modes:
            for suffix, graph, up_front in variants:
                for _ in range(repeats):
                    run(k, label, once, suffix, graph, up_front)
    if compiled:
        started = time.perf_counter()
        count = compile_stateless_blocks(unets.ref_unet, unets.base_unet)
        print(f"compiling {count} stateless blocks (compiled on first use, timed in the first loop)")
        suffix = ", compiled" + (", CUDA graph" if on_gpu else "")
        for k in refs:
            for label, once in modes:
                for repeat in range(1 + repeats):  # the first run includes the compilation
                    run(k, label, once, suffix + (" (first)" if repeat == 0 else ""), on_gpu, True)
        print(f"compiled loops, compilation included: {time.perf_counter() - started:.0f} s")
    return results


def end_to_end_jobs(steps: int, refs: list[int], repeats: int) -> list[dict]:
    """Whole jobs on the tiny random-weight model (64 px): exact, direct and fast mode, interleaved."""
    from model.pipeline import BootPIGPipeline
    from model.tiny import make_tiny_model

    with tempfile.TemporaryDirectory() as directory:
        pipe = BootPIGPipeline.from_pretrained(make_tiny_model(directory), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(max(refs))]
    cases = []
    for k in refs:
        for label, impl, schedule in [
            ("exact", AttentionImpl.merged, 1),
            ("direct", AttentionImpl.direct, 1),
            ("fast (once/job)", AttentionImpl.merged, "once"),
        ]:

            def job(impl=impl, schedule=schedule, k=k):
                pipe.unets.attention_impl = impl
                pipe("a dog", photos[:k], steps=steps, reference_schedule=schedule,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip

            cases.append(Case(f"tiny 64px job k={k} {label}", job, 0, 0))
    interleaved(cases, repeats, torch.device("cpu"), warmup=True)
    print(f"\nEnd-to-end job on the tiny model: 64 px, {steps} steps, median of {repeats}")
    results = []
    for case in cases:
        seconds = statistics.median(case.times)
        spread = (max(case.times) - min(case.times)) / seconds if len(case.times) > 1 else 0.0
        peak = case.peak_bytes / 2**20
        print(f"{case.label:34s} {seconds:8.2f}s  spread {spread:4.0%}  peak +{peak:6.0f} MiB")
        results.append(
            {"label": case.label, "median_s": seconds, "spread": spread, "peak_bytes": case.peak_bytes}
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=["tiny", "sd21"], default="tiny")
    parser.add_argument(
        "--resolutions", default=None, help="image sides, e.g. 256,512 (default 64 tiny, 256 sd21)"
    )
    parser.add_argument("--refs", default="1,2,4")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    parser.add_argument("--job-refs", default="1,4", help="reference counts of the tiny end-to-end job")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first round (slow runs)")
    parser.add_argument("--profile", action="store_true", help="print where one exact step's time goes")
    parser.add_argument(
        "--job-steps", type=int, default=20, help="steps of the tiny end-to-end job (0: skip)"
    )
    parser.add_argument("--loop-steps", type=int, default=0, help="also time whole denoising loops (0: skip)")
    parser.add_argument("--loop-repeats", type=int, default=1, help="runs of each whole loop")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--channels-last", action="store_true", help="UNet weights in channels-last memory format"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time the loops with the stateless blocks compiled"
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    refs = [int(x) for x in args.refs.split(",")]
    resolutions = [
        int(x) for x in (args.resolutions or ("64" if args.config == "tiny" else "256")).split(",")
    ]
    torch.manual_seed(0)
    base = (tiny_unet() if args.config == "tiny" else sd21_base_unet()).to(device, dtype).eval()
    if args.channels_last:
        base = base.to(memory_format=torch.channels_last)
    unets = BootPIGUNets(copy.deepcopy(base), base)
    params = sum(p.numel() for p in base.parameters())
    print(f"UNet {args.config}: {params / 1e6:.1f}M parameters, {device}, {args.dtype}, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved rounds (medians of per-round "
          f"ratios of wall time and of process CPU time; spread = (max - min) / median)")  # fmt: skip
    results: dict = {"config": args.config, "dtype": args.dtype, "device": str(device), "steps": {}}
    for resolution in resolutions:
        cases = step_cases(unets, resolution, refs, device, dtype)
        share, table = attention_share(cases[0].run)
        print(f"\n{resolution}px: attention kernels take a = {share:.0%} of a vanilla step")
        interleaved(cases, args.repeats, device, warmup=not args.no_warmup)
        results["steps"][resolution] = {"attention_share": share, "cases": report_steps(cases, share)}
        if args.profile:
            exact = cases[-3 if len(refs) else 0]
            _, exact_table = attention_share(exact.run)
            print(f"\nprofile of one step, {exact.label}:\n{exact_table}")
        if args.loop_steps:
            loops = denoising_loops(
                unets, resolution, refs, args.loop_steps, device, dtype, args.compile, args.loop_repeats
            )
            results["steps"][resolution]["loops"] = loops
    if args.job_steps:
        job_refs = [int(x) for x in args.job_refs.split(",")]
        results["jobs"] = end_to_end_jobs(args.job_steps, job_refs, args.repeats)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
