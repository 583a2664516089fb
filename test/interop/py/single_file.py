"""A diffusers folder → one original-layout (CompVis / LDM) Stable Diffusion checkpoint, the way a
diffusers user makes one: diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py, run as
it is from the export, then the harness's block renumbering for structures other than SD's own (the
script hard-codes 4 levels and 2 layers per block; see make_fixtures_t2i.ldm_block_index).

Request: {"pipeline": folder, "out": file.safetensors}. Response: {"keys": count, "renumbered": count}.
"""
import json
import os
import tempfile

import interop  # first: the harness puts diffusers and transformers on sys.path

import make_fixtures_t2i as t2i  # the harness's: run_conversion_script, ldm_block_index


def run(req):
    src = req["pipeline"]
    with open(os.path.join(src, "unet", "config.json")) as f:
        layers = json.load(f)["layers_per_block"]
    with open(os.path.join(src, "vae", "config.json")) as f:
        levels = len(json.load(f)["block_out_channels"])
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = os.path.join(tmp, "raw.safetensors")
        t2i.run_conversion_script(src, raw_path)
        raw = interop.load_tensors(raw_path)
    ckpt = {t2i.ldm_block_index(k, layers, levels): v for k, v in raw.items()}
    interop.save_tensors(req["out"], ckpt)
    return {"keys": len(ckpt), "renumbered": sum(1 for k in raw if t2i.ldm_block_index(k, layers, levels) != k)}


if __name__ == "__main__":
    interop.main(run)
