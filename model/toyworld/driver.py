"""`bootpig toyworld`: build the toy world and run the whole BootPIG recipe through the production code.

Stages, each skipped when DIR/stages/<stage>.json says it finished (so a rerun resumes):
world (render data banks) -> classifier -> encoders (toy CLIP, toy DINO, tiny CLIPSeg) -> vae -> base
(UNet from scratch, reading the toy CLIP's text tower) -> base_check (quality bar through
`AutoPipelineForText2Image`) -> heldout (a DreamBooth-layout folder of unseen subjects) -> bounds
(the renderer as a perfect personalizer and a perfect text-only model, scored like every row) -> synth
(`bootpig synth`) -> train (`bootpig train`) -> eval (`bootpig eval`, one call per row) -> ablation
(noise-filled random erasing) -> report (table, grid picture).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from model.toyworld.bounds import BOUND_ROWS
from model.toyworld.config import BEFORE_IT_EXISTED, ToyWorldConfig
from model.toyworld.oracle import RENDERER_VIEWS, write_oracle_triplets
from model.toyworld.world import PLACEMENTS, SCENE_NAMES, SCENES, SHAPES, Subject, caption, views

log = logging.getLogger(__name__)

STAGES = (
    "world", "classifier", "encoders", "vae", "base", "base_check",
    "heldout", "bounds", "synth", "train", "eval", "ablation", "report",
)  # fmt: skip
EVAL_SCENES = ("grass", "night", "carpet", "sea", "beach", "desert", "wood", "snow")
INDEPENDENT_STAGES = ("encoders", "vae", "classifier")  # need only the world; longest first
HELDOUT_STREAM = 10_000  # held-out appearances come from their own seed stream, never seen in training
UNTRAINED, TEXT_ONLY = "untrained", "text-only"
MAIN_RUN, NOISE_RUN = "white-erasing", "noise-erasing"  # training runs, named by their erasing fill


def _run_one_stage(out: str, config_json: str, name: str) -> None:
    """Entry point of a side-by-side stage process: one thread, no progress bars, logs to stderr."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name}: %(message)s")
    torch.set_num_threads(1)
    ToyWorld(out, ToyWorldConfig.model_validate_json(config_json), progress=False).run(only=name)


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _cli(*args) -> None:
    """Run a production `bootpig` subcommand in this process, failing loudly."""
    from bootpig.cli import main

    argv = [str(a) for a in args]
    log.info("bootpig %s", " ".join(argv))
    status = main(argv)
    if status:
        raise RuntimeError(f"bootpig {argv[0]} failed with exit status {status}")


class ToyWorld:
    def __init__(self, out: str | Path, config: ToyWorldConfig, progress: bool = True):
        self.out = Path(out)
        self.config = config
        self.progress = progress
        self.out.mkdir(parents=True, exist_ok=True)
        config_file = self.out / "config.json"
        current = json.loads(config.model_dump_json())
        if config_file.is_file():
            stored = json.loads(config_file.read_text())
            # A setting added since the folder was built counts as what the run used then.
            defaults = json.loads(ToyWorldConfig().model_dump_json()) | BEFORE_IT_EXISTED
            if {key: stored.get(key, defaults[key]) for key in current} != current:
                raise ValueError(f"{self.out} holds a toy world built with other settings; use a new --out")
        _write_json(config_file, current)
        self.path("stages").mkdir(exist_ok=True)

    def stage_file(self, name: str) -> Path:
        """One result file per stage, so concurrent processes running different stages never clash."""
        return self.path("stages", f"{name}.json")

    @property
    def stages(self) -> dict[str, dict]:
        """Finished stages (in pipeline order) with their seconds and results."""
        return {n: json.loads(self.stage_file(n).read_text()) for n in STAGES if self.stage_file(n).is_file()}

    # ------------------------------------------------------------------------------ layout
    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    @property
    def base_model(self) -> Path:
        return self.path("base-model")

    def checkpoint(self, run: str) -> Path:
        return self.path("bootpig", run, "final")

    def eval_rows(self) -> dict[str, dict]:
        """Row name -> how `bootpig eval` makes it (checkpoint run, references, pooling)."""
        k, schedule = min(4, self.config.heldout_views), self.config.eval_schedule
        rows = {UNTRAINED: {"run": None, "refs": k, "pooling": "softmax"}}
        rows["trained k=1"] = {"run": MAIN_RUN, "refs": 1, "pooling": "softmax", "schedule": schedule}
        for pooling in self.config.poolings:
            rows[f"trained k={k} {pooling}"] = {
                "run": MAIN_RUN, "refs": k, "pooling": pooling, "schedule": schedule,
            }  # fmt: skip
        for schedule in self.config.other_schedules:  # what the schedule costs or gains (docs/speed.md)
            name = {"once": "once", "1": "every step (exact)"}.get(schedule, f"every {schedule} steps")
            rows[f"trained k={k} softmax, reference {name}"] = {
                "run": MAIN_RUN, "refs": k, "pooling": "softmax", "schedule": schedule,
            }  # fmt: skip
        return rows

    def ablation_rows(self) -> dict[str, dict]:
        """The erasing-fill ablation: the same training with torchvision's noise fill."""
        if not self.config.erasing_ablation:
            return {}
        k = min(4, self.config.heldout_views)
        return {
            f"trained k={k} softmax, noise erasing": {
                "run": NOISE_RUN,
                "refs": k,
                "pooling": "softmax",
                "schedule": self.config.eval_schedule,
            }  # fmt: skip
        }

    @staticmethod
    def row_folder(row: str) -> str:
        return "".join(c if c.isalnum() else "-" for c in row).strip("-")

    # ------------------------------------------------------------------------------ running
    def run(self, until: str | None = None, only: str | None = None, processes: int = 1) -> dict[str, dict]:
        """Every unfinished stage in order (up to `until`), or just the stage `only`. With `processes` > 1
        the stages that need only the rendered world run side by side, one process and thread each."""
        for name in (until, only):
            if name is not None and name not in STAGES:
                raise ValueError(f"unknown stage {name!r} (stages: {', '.join(STAGES)})")
        names = [only] if only else list(STAGES[: STAGES.index(until) + 1] if until else STAGES)
        for name in [only] if only else STAGES:
            if processes > 1 and name in INDEPENDENT_STAGES and not only:
                self.run_side_by_side([s for s in INDEPENDENT_STAGES if s in names], processes)
            if self.stage_file(name).is_file():
                log.info("toyworld: %s already done, skipping", name)
            else:
                self.run_stage(name)
            if name == until:
                break
        return self.stages

    def run_side_by_side(self, names: list[str], processes: int) -> None:
        """Unfinished `names` in separate processes (tiny networks use one core each best)."""
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        todo = [n for n in names if not self.stage_file(n).is_file()]
        if len(todo) < 2:
            return
        log.info("toyworld: %s side by side in %d processes", ", ".join(todo), min(processes, len(todo)))
        config = self.config.model_dump_json()
        with ProcessPoolExecutor(min(processes, len(todo)), mp_context=get_context("spawn")) as pool:
            for future in [pool.submit(_run_one_stage, str(self.out), config, n) for n in todo]:
                future.result()  # re-raises a stage's error here

    def run_stage(self, name: str) -> dict:
        torch.manual_seed(self.config.seed)
        started = time.perf_counter()
        log.info("toyworld: stage %s", name)
        stage: Callable[[], dict] = getattr(self, f"stage_{name}")
        result = {"seconds": 0.0, **(stage() or {})}
        result["seconds"] = round(time.perf_counter() - started, 1)
        _write_json(self.stage_file(name), result)
        log.info("toyworld: %s done in %.1f s", name, result["seconds"])
        return result

    # ------------------------------------------------------------------------------ data
    def scenes(self, split: str = "train"):
        from model.toyworld.data import scene_bank

        c = self.config
        count = c.scene_images if split == "train" else max(64, c.scene_images // 10)
        seed = c.seed if split == "train" else c.seed + 1
        return scene_bank(self.path("world", f"scenes-{split}.npz"), count, c.size, seed, self.progress)

    def view_bank(self):
        from model.toyworld.data import view_bank

        c = self.config
        return view_bank(
            self.path("world", "views.npz"),
            c.view_subjects,
            c.views_per_subject,
            c.size,
            c.seed + 2,
            self.progress,
        )

    def stage_world(self) -> dict:
        train, val, bank = self.scenes("train"), self.scenes("val"), self.view_bank()
        return {
            "scene_images": len(train),
            "val_images": len(val),
            "view_images": int(np.prod(bank.images.shape[:2])),
        }

    def stage_classifier(self) -> dict:
        from model.toyworld.classifier import accuracy, save_classifier, train_classifier

        model = train_classifier(self.scenes(), self.config.classifier_steps, self.config.seed, self.progress)
        save_classifier(model, self.path("classifier.safetensors"))
        shape, scene = accuracy(model, self.scenes("val"))
        return {"val_shape_accuracy": shape, "val_scene_accuracy": scene}

    def classifier(self):
        from model.toyworld.classifier import load_classifier

        return load_classifier(self.path("classifier.safetensors"))

    # ------------------------------------------------------------------------------ base model
    def stage_vae(self) -> dict:
        from model.toyworld.base import train_vae

        vae = train_vae(self.scenes(), self.config.vae_steps, self.config.seed, self.progress)
        vae.save_pretrained(self.path("vae"))
        return {"scaling_factor": vae.config.scaling_factor}

    def stage_base(self) -> dict:
        from diffusers import AutoencoderKL

        from model.toyworld.base import save_base_model, text_encoder_from_clip, train_unet

        c = self.config
        bank = self.scenes()
        vae = AutoencoderKL.from_pretrained(self.path("vae"))
        text_encoder = text_encoder_from_clip(self.path("encoders", "clip"))
        curve: list[dict] = []

        def judge(step: int, ema, ema_text_encoder) -> None:
            """The quality bar on the moving average at checkpoints: how many steps the bar needs."""
            if not c.unet_judge_every or (step + 1) % c.unet_judge_every or step + 1 == c.unet_steps:
                return
            from model.toyworld.quality import judge_unet

            result = judge_unet(vae, ema_text_encoder, ema, self.classifier(), c.sample_steps, c.seed)
            curve.append({
                "step": step + 1,
                "shape": result.shape_accuracy,
                "scene": result.scene_accuracy,
                "shape_by_shape": result.shape_accuracy_by_shape,
            })  # fmt: skip
            log.info("toyworld: base UNet at step %d: %s", step + 1, curve[-1])

        unet, text_encoder = train_unet(
            bank, vae, text_encoder, seed=c.seed, progress=self.progress, after_step=judge,
            **c.base_unet_training(),
        )  # fmt: skip
        tmp = self.path(".base-model.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_base_model(tmp, vae, text_encoder, unet)
        shutil.rmtree(self.base_model, ignore_errors=True)
        os.replace(tmp, self.base_model)
        return {"unet_parameters": sum(p.numel() for p in unet.parameters()), "checkpoints": curve}

    def stage_base_check(self) -> dict:
        """The quality bar: the prompted shape and scene, recognised by the classifier."""
        from diffusers import AutoPipelineForText2Image

        from model.pipeline import BootPIGPipeline
        from model.toyworld.quality import quality_bar

        c = self.config
        BootPIGPipeline.from_pretrained(self.base_model, local_files_only=True)  # loads like real SD
        pipe = AutoPipelineForText2Image.from_pretrained(self.base_model, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        result = quality_bar(pipe, self.classifier(), c.quality_samples, c.sample_steps, c.seed)
        images = result.images
        save_grid(
            [images[i : i + 8] for i in range(0, min(len(images), 64), 8)], self.path("base-samples.png")
        )
        return {
            "pipeline_class": type(pipe).__name__,
            "samples": len(images),
            "shape_accuracy": result.shape_accuracy,
            "scene_accuracy": result.scene_accuracy,
            "shape_accuracy_by_shape": result.shape_accuracy_by_shape,
        }

    # ------------------------------------------------------------------------------ encoders, held-out set
    def stage_encoders(self) -> dict:
        from model.toyworld.encoders import train_toy_clip, train_toy_clipseg, train_toy_dino

        c = self.config
        bank = self.scenes()
        views = self.view_bank()
        clip = self.path("encoders", "clip")
        train_toy_clip(bank, clip, c.clip_steps, c.seed, self.progress, views, c.clip_view_steps)
        train_toy_dino(views, self.path("encoders", "dino"), c.dino_steps, c.seed, self.progress)
        train_toy_clipseg(bank, self.path("encoders", "clipseg"), c.clipseg_steps, c.seed, self.progress)
        return {}

    def heldout_subjects(self) -> dict[str, Subject]:
        rng = np.random.default_rng([self.config.seed, HELDOUT_STREAM])
        return {
            f"subject{i:02d}-{SHAPES[i % len(SHAPES)]}": Subject.sample(rng, SHAPES[i % len(SHAPES)])
            for i in range(self.config.heldout_subjects)
        }

    def eval_prompts(self) -> list[tuple[str, str]]:
        """(scene, template) pairs in the DreamBooth prompts-file form ({0} unique token, {1} class)."""
        return [(s, f"a photo of a {{0}} {{1}}, on {SCENES[s]}") for s in EVAL_SCENES[: self.config.prompts]]

    def stage_heldout(self) -> dict:
        """The "user photos": views on white of subjects no stage has seen, in the DreamBooth layout."""
        c = self.config
        root = self.path("heldout")
        rng = np.random.default_rng([c.seed, HELDOUT_STREAM, 1])
        subjects = self.heldout_subjects()
        for name, subject in subjects.items():
            (root / name).mkdir(parents=True, exist_ok=True)
            for i, view in enumerate(views(subject, c.heldout_views, c.size, rng)):
                view.image.save(root / name / f"{i:02d}.png")
        lines = ["Classes", "subject_name,class"] + [f"{n},{s.shape}" for n, s in subjects.items()]
        prompt_lines = [f"'{t}'.format(unique_token, class_token)," for _, t in self.eval_prompts()]
        lines += ["", "Object Prompts", *prompt_lines, "", "Live Subject Prompts", *prompt_lines]
        (root / "prompts_and_classes.txt").write_text("\n".join(lines) + "\n")
        return {"subjects": len(subjects), "views": c.heldout_views}

    def stage_bounds(self) -> dict:
        """What the metrics allow a generator in the prompted scenes (model/toyworld/bounds.py)."""
        vae = self.path("base-model", "vae")
        return {"rows": self.bounds(lambda row: self.path("eval", self.row_folder(row)), vae)}

    def bounds(self, row_folder: Callable[[str], Path], vae_folder: Path) -> dict[str, dict]:
        """The bound rows on this world's held-out subjects and encoders, through the VAE in `vae_folder`
        (the base model's, or a variant's: benchmarks/toyworld_vae_probe.py)."""
        from model.toyworld.bounds import score_bounds

        c = self.config
        return score_bounds(
            row_folder,
            self.path("heldout"),
            self.heldout_subjects(),
            [scene for scene, _ in self.eval_prompts()],
            c.images_per_prompt,
            c.size,
            (self.path("encoders", "clip"), self.path("encoders", "dino")),
            vae_folder,
            c.seed,
            self.progress,
        )

    # ------------------------------------------------------------------------------ the recipe
    def stage_synth(self) -> dict:
        """`bootpig synth` with the toy base model and the tiny CLIPSeg; captions in the toy grammar.

        With `triplet_source` set to a renderer source, oracle triplets instead (model/toyworld/oracle.py).
        """
        from model.synth.captions import Caption
        from model.synth.run import load_captions, save_captions

        c = self.config
        out = self.path("triplets")
        out.mkdir(parents=True, exist_ok=True)
        if c.triplet_source != "synth":
            kept = write_oracle_triplets(
                out, c.synth_count, c.size, c.seed, c.triplet_source == RENDERER_VIEWS, self.progress
            )
            return {"kept": kept, "rejected": 0, "source": c.triplet_source}
        if len(load_captions(out)) < c.synth_count:  # the caption file is synth's source of truth
            rng = np.random.default_rng([c.seed, 3])
            captions = []
            for _ in range(c.synth_count):
                shape, scene = str(rng.choice(SHAPES)), str(rng.choice(SCENE_NAMES))
                captions.append(Caption(caption(shape, scene, str(rng.choice(PLACEMENTS))), shape))
            save_captions(out, captions)
        _cli(
            "synth", "--model", self.base_model, "--segmenter", self.path("encoders", "clipseg"),
            "--count", c.synth_count, "--out", out, "--resolution", c.size, "--steps", c.sample_steps,
            "--negative-prompt", "", "--batch-size", 16, "--device", "cpu", "--dtype", "fp32",
            *c.synth_flags, *(() if self.progress else ("--no-progress",)),
        )  # fmt: skip
        summaries = [json.loads(p.read_text()) for p in out.glob("summary-*.json")]
        return {
            "kept": sum(s["kept"] for s in summaries),
            "rejected": sum(sum(s["rejected"].values()) for s in summaries),
        }

    def stage_train(self) -> dict:
        """`bootpig train` (Algorithm 1, unchanged code) on the triplets."""
        self.train(MAIN_RUN, "white")
        return {}

    def train(self, run: str, erasing_fill: str) -> None:
        import yaml

        config_file = self.path(f"train-{run}.yaml")
        config_file.write_text(yaml.safe_dump(self.train_settings(erasing_fill)))
        _cli(
            "train", "--model", self.base_model, "--data", self.path("triplets"), "--output",
            self.path("bootpig", run), "--config", config_file, "--resume", "--local-files-only",
        )  # fmt: skip

    def train_settings(self, erasing_fill: str) -> dict:
        """The `bootpig train` config file's settings: the run's sizes, then `train_overrides`."""
        c = self.config
        return {
            "resolution": c.size,
            "batch_size": c.train_batch,
            "micro_batch_size": c.train_batch,
            "max_steps": c.train_steps,
            "lr_reference": c.lr,
            "lr_rsa": c.lr,
            "num_workers": 0,
            "mixed_precision": "no",
            "checkpoint_every": max(1, c.train_steps // 3),
            "checkpoints_kept": 1,
            "seed": c.seed,
            "augmentation": {"erasing_fill": erasing_fill, "rotation": c.train_rotation},
            "reference_timestep": c.train_reference_timestep,
            "clean_image_weight_cap": c.train_clean_image_weight_cap,
        } | c.train_overrides

    def stage_eval(self) -> dict:
        """`bootpig eval` with the toy encoders, one call per row (the untrained one adds text-only)."""
        return self.evaluate(self.eval_rows())

    def stage_ablation(self) -> dict:
        """Random erasing filled with noise instead of white: train again and evaluate one row."""
        if not self.config.erasing_ablation:
            return {"skipped": True}
        started = time.perf_counter()
        self.train(NOISE_RUN, "noise")
        return {"train_seconds": round(time.perf_counter() - started, 1)} | self.evaluate(
            self.ablation_rows()
        )

    def evaluate(self, rows: dict[str, dict]) -> dict:
        c = self.config
        result = {}
        for row, spec in rows.items():
            started = time.perf_counter()
            args = ["eval", "--model", self.base_model, "--dataset", self.path("heldout")]
            if spec["run"] is not None:
                args += ["--bootpig", self.checkpoint(spec["run"])]
            else:
                args += ["--baseline", "sd"]
            args += [
                "--out", self.path("eval", self.row_folder(row)), "--max-refs", spec["refs"],
                "--pooling", spec["pooling"], "--segment", "none", "--steps", c.sample_steps,
                "--images-per-prompt", c.images_per_prompt, "--clip-model", self.path("encoders", "clip"),
                "--dino-model", self.path("encoders", "dino"), "--device", "cpu", "--dtype", "fp32",
                "--reference-schedule", spec.get("schedule", 1),
                "--reference-caption", c.eval_reference_caption,
            ]  # fmt: skip
            if c.train_reference_timestep is not None:  # "once" rows: the timestep the training used
                args += ["--reference-timestep", c.train_reference_timestep]
            _cli(*args)
            result[f"{row} seconds"] = round(time.perf_counter() - started, 1)
        return result

    # ------------------------------------------------------------------------------ export
    def export(self, target: str | Path, run: str = MAIN_RUN, examples: int = 4) -> Path:
        """The trained model in one service-loadable folder (fp16 safetensors) plus example subjects."""
        from model.pipeline import BootPIGPipeline

        if not self.checkpoint(run).is_dir():
            raise FileNotFoundError(
                f"no trained weights at {self.checkpoint(run)}: run the train stage first"
            )
        target = Path(target)
        pipe = BootPIGPipeline.from_pretrained(
            self.base_model, self.checkpoint(run), torch_dtype=torch.float16, local_files_only=True
        )
        pipe.save_pretrained(target)
        for name in list(self.heldout_subjects())[:examples]:
            shutil.copytree(self.path("heldout", name), target / "examples" / name, dirs_exist_ok=True)
        return target

    # ------------------------------------------------------------------------------ report
    def row_images(self, row: str, method: str) -> list[tuple[str, str, Path]]:
        """(prompted shape, prompted scene, image) of every generation of one eval row."""
        root = self.path("eval", self.row_folder(row), "generations", method)
        scenes = [s for s, _ in self.eval_prompts()]
        items = []
        for name, subject in self.heldout_subjects().items():
            for p, scene in enumerate(scenes):
                for i in range(self.config.images_per_prompt):
                    items.append((subject.shape, scene, root / name / f"p{p:02d}_{i}.png"))
        return items

    def prompt_accuracy(self, row: str, method: str, classifier) -> dict[str, float]:
        items = self.row_images(row, method)
        shapes, scenes = classifier.predict([Image.open(p) for _, _, p in items])
        return {
            "shape_accuracy": 100 * float(np.mean([s == it[0] for s, it in zip(shapes, items, strict=True)])),
            "scene_accuracy": 100 * float(np.mean([s == it[1] for s, it in zip(scenes, items, strict=True)])),
        }

    def stage_report(self) -> dict:
        classifier = self.classifier()
        rows: dict[str, dict] = {}
        for row in (*BOUND_ROWS, *self.eval_rows(), *self.ablation_rows()):
            metrics_file = self.path("eval", self.row_folder(row), "metrics.json")
            if not metrics_file.is_file():  # a row not run (yet), e.g. the ablation
                continue
            metrics = json.loads(metrics_file.read_text())
            results = metrics["results"]
            if row == BOUND_ROWS[0]:
                rows["reference views"] = {
                    k: results["reference_images"]["overall"][k] for k in ("clip_i", "dino")
                }
            if row == UNTRAINED:
                rows[TEXT_ONLY] = results["sd"]["overall"] | self.prompt_accuracy(row, "sd", classifier)
            rows[row] = results["bootpig"]["overall"] | self.prompt_accuracy(row, "bootpig", classifier)
        _write_json(self.path("results.json"), rows)
        self.path("results.md").write_text(results_table(rows))
        self.write_grid()
        return {"rows": rows}

    def write_grid(self) -> Path:
        """references | text-only | untrained | trained (k=4 softmax, k=1), first prompt, per subject."""
        k = min(4, self.config.heldout_views)
        columns = [(TEXT_ONLY, UNTRAINED, "sd"), (UNTRAINED, UNTRAINED, "bootpig")]
        columns += [
            (f"trained k={k}", f"trained k={k} softmax", "bootpig"),
            ("trained k=1", "trained k=1", "bootpig"),
        ]
        rows = []
        for name in list(self.heldout_subjects())[:8]:
            refs = [Image.open(p) for p in sorted(self.path("heldout", name).glob("*.png"))[:k]]
            cells = refs + [
                Image.open(self.path("eval", self.row_folder(row), "generations", method, name, "p00_0.png"))
                for _, row, method in columns
                if row in self.eval_rows() or row == UNTRAINED
            ]
            rows.append(cells)
        header = [f"ref {i + 1}" for i in range(k)] + [label for label, _, _ in columns]
        return save_grid(rows, self.path("grid.png"), header)


def results_table(rows: dict[str, dict]) -> str:
    def cell(row: dict, key: str) -> str:
        return f"{row[key]:.1f}" if key in row else "–"

    lines = [
        "| row | CLIP-T | CLIP-I | DINO | shape acc. % | scene acc. % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    keys = ("clip_t", "clip_i", "dino", "shape_accuracy", "scene_accuracy")
    lines += [f"| {name} | " + " | ".join(cell(row, k) for k in keys) + " |" for name, row in rows.items()]
    return "\n".join(lines) + "\n"


def save_grid(
    rows: list[list[Image.Image]], path: Path, header: list[str] | None = None, scale: int = 2
) -> Path:
    """Rows of equal-size images as one picture, upscaled (nearest) so 64 px cells stay readable."""
    side = rows[0][0].width * scale
    top = 16 if header else 0
    width = max(len(r) for r in rows)
    canvas = Image.new("RGB", (width * side, top + len(rows) * side), "white")
    draw = ImageDraw.Draw(canvas)
    for x, label in enumerate(header or []):
        draw.text((x * side + 3, 2), label, fill="black")
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            canvas.paste(
                image.convert("RGB").resize((side, side), Image.Resampling.NEAREST),
                (x * side, top + y * side),
            )
    canvas.save(path)
    return path
