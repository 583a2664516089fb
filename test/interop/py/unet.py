"""A U-Net in diffusers: loaded from a folder as a user loads it, optionally written back with
save_pretrained (variant, shards, dtype), and run forward on given inputs.

Request: {"model": folder, "subfolder"?: name, "variant"?: "fp16", "inputs"?: file.safetensors with
"sample", "timestep" and optionally "encoder_hidden_states" / "class_labels", "out"?: file.safetensors,
"save"?: [{"dir": folder, "variant"?: name, "max_shard_size"?: int or "200KB", "dtype"?: "float16" | "bfloat16"}]}.
Writes {"output": unet(**inputs).sample} (float32) to `out`. Response: the class, the dtype its parameters
were loaded in, and for "save" the files save_pretrained wrote in each folder ({"saved_files": {dir: [...]}}).

diffusers v0.31 loads a sharded model only with low_cpu_mem_usage, which needs accelerate: here (no
accelerate) from_pretrained cannot open the sharded folders it writes.
"""
import copy
import json
import os

import interop  # first: the harness puts diffusers on sys.path

import diffusers
import torch

interop.enable_sharding()


def load_unet(req):
    sub = req.get("subfolder")
    with open(os.path.join(req["model"], sub or "", "config.json")) as f:
        cls = getattr(diffusers, json.load(f)["_class_name"])
    kw = {"subfolder": sub} if sub else {}
    return cls.from_pretrained(req["model"], variant=req.get("variant"), **kw, **interop.LOAD_KWARGS)


def forward(unet, inputs):
    kw = {}
    if "encoder_hidden_states" in inputs:
        kw["encoder_hidden_states"] = inputs["encoder_hidden_states"]
    if "class_labels" in inputs:
        kw["class_labels"] = inputs["class_labels"]
    return unet(inputs["sample"], inputs["timestep"], **kw).sample


def run(req):
    unet = load_unet(req).eval()
    result = {"class": type(unet).__name__, "dtype": str(next(unet.parameters()).dtype).replace("torch.", "")}
    if "inputs" in req:
        inputs = interop.load_tensors(req["inputs"])
        interop.save_tensors(req["out"], {"output": forward(unet, inputs).float()})
    if req.get("save"):
        result["saved_files"] = {}
    for save in req.get("save") or []:
        model = copy.deepcopy(unet).to(getattr(torch, save["dtype"])) if save.get("dtype") else unet
        model.save_pretrained(save["dir"], variant=save.get("variant"), max_shard_size=save.get("max_shard_size", "10GB"))
        result["saved_files"][save["dir"]] = sorted(os.listdir(save["dir"]))
    return result


if __name__ == "__main__":
    interop.main(run)
