"""Full sampling loops in diffusers with any scheduler classes: the loop diffusers' pipelines run
(initial noise · init_noise_sigma, then scale_model_input → U-Net → step for every timestep), with one
seeded generator for the initial noise and for the noise step() draws itself (ancestral and SDE classes).

Request: {"model": U-Net folder, "schedulers": [folders with scheduler_config.json (its _class_name picks
the class)], "steps", "seed", "batch", "height", "width", "eta"?: DDIM's eta, "out": file}.
Writes "<i>" (the final latents of the i-th scheduler, NCHW float32) to `out`. Response: {"loops": [{"class",
"timesteps": [...], "load_warnings" (what loading the config warned about), "loop_warnings" (what the loop
did: diffusers' DPMSolverSinglestepScheduler warns in set_timesteps at its own default config), "error"?
(a loop that raised: its exception)}]}.
"""
import inspect
import json
import os
import traceback

import interop  # first: the harness puts diffusers on sys.path

import diffusers
import torch


def sample(unet, scheduler, req):
    g = interop.generator(req["seed"])
    shape = (req["batch"], unet.config.in_channels, req["height"], req["width"])
    latents = torch.randn(shape, generator=g, dtype=torch.float32)
    scheduler.set_timesteps(req["steps"])
    latents = latents * scheduler.init_noise_sigma
    accepts = inspect.signature(scheduler.step).parameters
    kw = {}
    if "generator" in accepts:
        kw["generator"] = g
    if "eta" in accepts and req.get("eta") is not None:
        kw["eta"] = req["eta"]
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(latents, t)
        out = unet(x, t).sample
        latents = scheduler.step(out, t, latents, **kw).prev_sample
    return latents, [float(t) for t in scheduler.timesteps]


def loop(unet, folder, req, samples, i):
    with open(os.path.join(folder, "scheduler_config.json")) as f:
        cls = getattr(diffusers, json.load(f)["_class_name"])
    with interop.Warnings() as load:
        scheduler = cls.from_pretrained(folder)
    with interop.Warnings() as run:
        latents, timesteps = sample(unet, scheduler, req)
    samples[str(i)] = latents.float()
    return {"class": cls.__name__, "timesteps": timesteps, "load_warnings": load.messages, "loop_warnings": run.messages}


def run(req):
    with open(os.path.join(req["model"], "config.json")) as f:
        unet = getattr(diffusers, json.load(f)["_class_name"]).from_pretrained(req["model"], **interop.LOAD_KWARGS).eval()
    samples, loops = {}, []
    for i, folder in enumerate(req["schedulers"]):
        try:
            loops.append(loop(unet, folder, req, samples, i))
        except Exception:  # one class's failure is its test's, not every class's
            loops.append({"error": traceback.format_exc()})
    interop.save_tensors(req["out"], samples)
    return {"loops": loops}


if __name__ == "__main__":
    interop.main(run)
