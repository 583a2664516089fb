"""A Stable Diffusion pipeline in diffusers, opened as a user opens it, then used.

Request:
  "pipeline": folder (StableDiffusionPipeline.from_pretrained), or "single_file": file + "config": folder
      (StableDiffusionPipeline.from_single_file(file, config=folder));
  "variant"?: e.g. "fp16" (from_pretrained's variant);
  "lora"?: [{"path": folder or file, "weight_name"?: file name in the folder, "adapter_name"?: name,
      "scale"?: number}]: pipe.load_lora_weights(...) for each, then set_adapters with the scales;
  "txt2img"?: {"prompt", "negative_prompt"?, "guidance_scale", "steps", "latents": file (tensor "latents"),
      "clip_skip"?, "out": file}: pipe(...) with those latents; writes "images" (NCHW in [0, 1], as
      output_type="pt" gives them) and "images_uint8" (NHWC, numpy_to_pil's rounding);
  "unet_forward"?: {"inputs": file with "sample", "timestep", "encoder_hidden_states", "out": file}:
      writes {"output": pipe.unet(...).sample} (LoRA layers active);
  "compare_weights"?: folder: the largest |difference| between each component's weights and those
      StableDiffusionPipeline.from_pretrained(folder) loads, and the names only one of them has;
  "save"?: [{"dir", "variant"?, "max_shard_size"?, "dtype"?}]: save_pretrained(...) of the pipeline as
      opened, cast to dtype, for each (reopened every time: transformers' slow tokenizer saves only once
      without the tokenizers package, and the cast is in place).
Response: {"components": {name: class}, "weights"?: {component: {"max_abs_diff", "only_here", "only_there"}},
"saved_files"?: {dir: {component folder: [files]}}}.

diffusers v0.31 loads a sharded model only with low_cpu_mem_usage, which needs accelerate: here (no
accelerate) from_pretrained cannot open sharded U-Net or VAE folders, though it writes them.
"""
import os

import interop  # first: the harness puts diffusers, transformers and peft on sys.path

import torch
from diffusers import StableDiffusionPipeline

interop.enable_sharding()

NO_SAFETY = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
MODELS = ("unet", "vae", "text_encoder")


def open_pipeline(req):
    if "single_file" in req:
        return StableDiffusionPipeline.from_single_file(req["single_file"], config=req["config"], local_files_only=True, **NO_SAFETY)
    return StableDiffusionPipeline.from_pretrained(req["pipeline"], variant=req.get("variant"), **NO_SAFETY, **interop.LOAD_KWARGS)


def compare_weights(pipe, folder):
    other = StableDiffusionPipeline.from_pretrained(folder, **NO_SAFETY, **interop.LOAD_KWARGS)
    out = {}
    for name in MODELS:
        a, b = getattr(pipe, name).state_dict(), getattr(other, name).state_dict()
        common = [k for k in a if k in b]
        worst = max((float((a[k].float() - b[k].float()).abs().max()) for k in common if a[k].numel()), default=0.0)
        out[name] = {"max_abs_diff": worst, "only_here": sorted(set(a) - set(b)), "only_there": sorted(set(b) - set(a))}
    return out


def run(req):
    pipe = open_pipeline(req)
    pipe.set_progress_bar_config(disable=True)
    for m in MODELS:
        getattr(pipe, m).eval()
    result = {"components": {k: type(v).__name__ for k, v in pipe.components.items() if v is not None}}
    loras = req.get("lora") or []
    for i, lora in enumerate(loras):
        kw = {"weight_name": lora["weight_name"]} if lora.get("weight_name") else {}
        pipe.load_lora_weights(lora["path"], adapter_name=lora.get("adapter_name", f"lora{i}"), **kw)
    if loras:
        pipe.set_adapters([l.get("adapter_name", f"lora{i}") for i, l in enumerate(loras)], [l.get("scale", 1.0) for l in loras])
    if "unet_forward" in req:
        u = req["unet_forward"]
        x = interop.load_tensors(u["inputs"])
        out = pipe.unet(x["sample"], x["timestep"], encoder_hidden_states=x["encoder_hidden_states"]).sample
        interop.save_tensors(u["out"], {"output": out.float()})
    if "txt2img" in req:
        c = req["txt2img"]
        latents = interop.load_tensors(c["latents"])["latents"]
        images = pipe(prompt=c["prompt"], negative_prompt=c.get("negative_prompt"), guidance_scale=c["guidance_scale"],
                      num_inference_steps=c["steps"], latents=latents, clip_skip=c.get("clip_skip"), output_type="pt").images
        interop.save_tensors(c["out"], {"images": images.float(), "images_uint8": interop.image_uint8(images)})
    if "compare_weights" in req:
        result["weights"] = compare_weights(pipe, req["compare_weights"])
    if req.get("save"):
        result["saved_files"] = {}
    for s in req.get("save") or []:
        pipe = open_pipeline(req)
        if s.get("dtype"):
            pipe.to(getattr(torch, s["dtype"]))
        pipe.save_pretrained(s["dir"], variant=s.get("variant"), max_shard_size=s.get("max_shard_size"))
        folders = [d for d in sorted(os.listdir(s["dir"])) if os.path.isdir(os.path.join(s["dir"], d))]
        result["saved_files"][s["dir"]] = {d: sorted(os.listdir(os.path.join(s["dir"], d))) for d in folders}
    return result


if __name__ == "__main__":
    interop.main(run)
