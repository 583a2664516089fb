#!/usr/bin/env python3
"""Time diffusers' own StableDiffusionPipeline.__call__ on a pipeline folder, phase by phase: the PyTorch
side of `npm run bench`'s txt2img rows (lib/bench/txt2img.ts calls it with the call difftune's row made).

    bench_txt2img.py PIPELINE_DIR [--scheduler CLASS] [--steps N] [--guidance-scale G] [--height H]
                     [--width W] [--prompt P] [--negative-prompt N] [--seed S] [--threads T]
                     [--runs R] [--warmup W] [--vae-slicing] [--vae-tiling]

The reference harness (../shared/reference, or $DIFFTUNE_REFERENCE_DIR) supplies torch, diffusers v0.31
and the transformers export (CLIPTextModel, CLIPTokenizer); its bench_diffusers.py the CPU/RSS readings,
so both bench scripts measure alike. Prints ONE JSON line on stdout.

Phases, split as difftune's side splits them: text encoding is pipe.encode_prompt (prompt and negative
prompt); a denoising step runs from the end of text encoding (or of the previous step) to the step-end
callback, so the first step carries the latents' and timesteps' set-up exactly as on difftune's side; the
decode is pipe.vae.decode. The median/min/max are over every denoising step of the timed calls; the phases
are the median call's (by total time).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop  # noqa: E402,F401  (first: the harness's bootstrap — torch, diffusers, transformers on sys.path)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402

import diffusers  # noqa: E402
from bench_diffusers import blas_libraries, max_rss_mb, reset_max_rss, system_cpu  # noqa: E402  (the harness's)

warnings.filterwarnings("ignore", category=FutureWarning)  # diffusers deprecation notices


def load_pipeline(folder, scheduler_class):
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise SystemExit(f"{folder}: expected a Stable Diffusion pipeline folder with model_index.json")
    cls = getattr(diffusers, scheduler_class, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise SystemExit(f"--scheduler {scheduler_class}: diffusers {diffusers.__version__} has no such scheduler class")
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(
        folder, safety_checker=None, requires_safety_checker=False, **interop.LOAD_KWARGS
    )
    # As difftune's loadStableDiffusion(dir, { schedulerClass }): the folder's scheduler config, another class.
    pipe.scheduler = cls.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class CallTimes:
    def __init__(self):
        self.text_encode = 0.0
        self.steps = []
        self.decode = 0.0
        self.total = 0.0
        self.mark = time.perf_counter()


def timed(fn, on_done):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        end = time.perf_counter()
        on_done(end - t0, end)
        return out

    return wrapper


def bench(args):
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = load_pipeline(args.pipeline_dir, args.scheduler)
    load_s = time.perf_counter() - t0
    if args.vae_slicing:
        pipe.vae.enable_slicing()
    if args.vae_tiling:
        pipe.vae.enable_tiling()

    calls = []

    def on_encode(s, end):
        calls[-1].text_encode += s
        calls[-1].mark = end

    def on_decode(s, _end):
        calls[-1].decode += s

    # Instance attributes shadow the methods __call__ looks up through self.
    pipe.encode_prompt = timed(pipe.encode_prompt, on_encode)
    pipe.vae.decode = timed(pipe.vae.decode, on_decode)

    def on_step_end(_pipe, _i, _t, kwargs):
        c = calls[-1]
        now = time.perf_counter()
        c.steps.append(now - c.mark)
        c.mark = now
        return kwargs

    def call():
        c = CallTimes()
        calls.append(c)
        start = time.perf_counter()
        pipe(
            prompt=args.prompt,
            negative_prompt=args.negative_prompt,
            guidance_scale=args.guidance_scale,
            num_inference_steps=args.steps,
            height=args.height,
            width=args.width,
            generator=torch.Generator().manual_seed(args.seed),
            callback_on_step_end=on_step_end,
            output_type="np",  # no PIL in the harness (its shim); the postprocessing to [0, 1] floats still runs
        )
        c.total = time.perf_counter() - start

    setup_peak_mb = max_rss_mb()
    steps_peak_ok = reset_max_rss()
    for _ in range(args.warmup):
        call()
    sys0, cpu0, wall0 = system_cpu(), time.process_time(), time.perf_counter()
    for _ in range(args.runs):
        call()
    wall = max(time.perf_counter() - wall0, 1e-9)
    own = time.process_time() - cpu0
    sys1 = system_cpu()
    other_cpu = steal = None
    if sys0 and sys1:
        other_cpu = max(0.0, (sys1[0] - sys0[0] - own) / wall)
        steal = (sys1[1] - sys0[1]) / wall

    timed_calls = calls[-args.runs:]
    steps = [s for c in timed_calls for s in c.steps]
    if len(steps) == 0:
        raise SystemExit("no denoising step reported through callback_on_step_end")
    mid = sorted(timed_calls, key=lambda c: c.total)[(len(timed_calls) - 1) // 2]
    result = {
        "pipeline": os.path.basename(os.path.normpath(os.path.abspath(args.pipeline_dir))),
        "median_s": round(statistics.median(steps), 6),
        "min_s": round(min(steps), 6),
        "max_s": round(max(steps), 6),
        "step_times_s": [round(s, 6) for s in steps],
        "text_encode_s": round(mid.text_encode, 6),
        "loop_s": round(sum(mid.steps), 6),
        "decode_s": round(mid.decode, 6),
        "total_s": round(mid.total, 6),
        "load_s": round(load_s, 3),
        "runs": args.runs,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "scheduler": type(pipe.scheduler).__name__,
        "prediction_type": pipe.scheduler.config.get("prediction_type"),
        "cpu_util": round(own / wall, 3),
        "other_cpu": None if other_cpu is None else round(other_cpu, 3),
        "steal": None if steal is None else round(steal, 3),
        "peak_rss_mb": max(setup_peak_mb, max_rss_mb()),
        "setup_peak_rss_mb": setup_peak_mb,
        "steps_peak_rss_mb": max_rss_mb() if steps_peak_ok else None,
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "blas": blas_libraries(),
    }
    print(json.dumps(result))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline_dir", help="Stable Diffusion pipeline folder (model_index.json, unet/, vae/, ...)")
    ap.add_argument("--scheduler", default="DPMSolverMultistepScheduler", help="scheduler class, from the folder's config")
    ap.add_argument("--steps", type=int, default=20, help="num_inference_steps (default 20)")
    ap.add_argument("--guidance-scale", type=float, default=7.5)
    ap.add_argument("--height", type=int, default=None, help="default: the U-Net's sample_size × the VAE factor")
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--prompt", default="a photograph of an astronaut riding a horse on the moon, highly detailed")
    ap.add_argument("--negative-prompt", default=None)
    ap.add_argument("--seed", type=int, default=0, help="torch.Generator().manual_seed (default 0)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    ap.add_argument("--runs", type=int, default=1, help="timed calls (default 1)")
    ap.add_argument("--warmup", type=int, default=0, help="untimed calls first (default 0)")
    ap.add_argument("--vae-slicing", action="store_true", help="pipe.vae.enable_slicing()")
    ap.add_argument("--vae-tiling", action="store_true", help="pipe.vae.enable_tiling()")
    args = ap.parse_args(argv)
    for opt in ("steps", "threads", "runs"):
        if getattr(args, opt) < 1:
            ap.error(f"--{opt} must be >= 1")
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
