"""LoRA files in every layout diffusers v0.31 reads for SD 1.x/2.x pipelines, made by diffusers and peft
themselves from one set of adapters, and what diffusers computes with each of them loaded.

Request:
  "pipeline": folder (StableDiffusionPipeline.from_pretrained);
  "make"?: {"dir": folder, "seed": int}: peft injects rank-4 adapters (init_lora_weights=False, then seeded
      normal values) into the U-Net (attention, feed-forward, proj_in/out, resnets' conv1/conv2/conv_shortcut/
      time_emb_proj, down/upsamplers' conv) and the text encoder (q/k/v/out_proj, fc1/fc2), and writes:
        peft.safetensors        save_lora_weights of get_peft_model_state_dict (unet./text_encoder. lora_A/B)
        diffusers.safetensors   the training scripts' convert_state_dict_to_diffusers (lora.down/up,
                                lora_linear_layer.down/up, lora_A/B elsewhere)
        attn_procs.safetensors  the attention-processor layout save_attn_procs wrote before PEFT, no prefix,
                                U-Net attention only (…processor.to_q_lora.down.weight, to_out_lora)
        attn_procs_te.safetensors  the same with unet. and text_encoder. prefixes (self_attn.to_q_lora…,
                                mlp.fc1.lora_linear_layer…)
        kohya.safetensors       convert_state_dict_to_kohya (lora_unet_, lora_te1_, LoCon convolutions), its
                                .alpha set ≠ rank: 8 (U-Net), 2 (the U-Net's 3×3 convolutions), 6 (text encoder)
        kohya_te.safetensors    the same named lora_te_ (kohya's SD 1.x name)
  "inputs": file with "sample", "timestep", "encoder_hidden_states" (U-Net) and "input_ids" (text encoder);
  "eval": [{"file": path, "out": file}]: for each, a fresh pipeline, load_lora_weights(file), and written to
      `out`: "unet" (pipe.unet(...).sample) and "text_encoder" (last_hidden_state), float32; a file of null
      is the pipeline without LoRA.
Response: {"files": [names written by make], "adapted": {file: {"unet": n, "text_encoder": n}}} (layers
with LoRA after loading).
"""
import os

import interop  # first: the harness puts diffusers, transformers and peft on sys.path

import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_kohya
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

NO_SAFETY = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2",
                "conv_shortcut", "time_emb_proj", "downsamplers.0.conv", "upsamplers.0.conv"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
PROCESSOR = {"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out.0": "to_out", "q_proj": "to_q", "k_proj": "to_k",
             "v_proj": "to_v", "out_proj": "to_out"}


def open_pipeline(folder):
    pipe = StableDiffusionPipeline.from_pretrained(folder, **NO_SAFETY, **interop.LOAD_KWARGS)
    for m in (pipe.unet, pipe.text_encoder, pipe.vae):
        m.eval()
    return pipe


def save(path, tensors):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})


def attn_procs(state, prefix, component):
    """PEFT keys of attention projections → the attention-processor names (to_q_lora.down …)."""
    out = {}
    for key, value in state.items():
        module, _, part = key.rpartition(".lora_")
        for proj, proc in PROCESSOR.items():
            if module.endswith("." + proj):
                parent = module[: -len(proj) - 1]
                mid = ".processor." if component == "unet" else "."
                out[f"{prefix}{parent}{mid}{proc}_lora.{'down' if part == 'A.weight' else 'up'}.weight"] = value
                break
        else:
            if component == "text_encoder":
                out[f"{prefix}{module}.lora_linear_layer.{'down' if part == 'A.weight' else 'up'}.weight"] = value
    return out


def make(pipe, req):
    out_dir = req["dir"]
    gen = torch.Generator().manual_seed(int(req["seed"]))
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=UNET_TARGETS, init_lora_weights=False))
    pipe.text_encoder.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=TE_TARGETS, init_lora_weights=False))
    for model in (pipe.unet, pipe.text_encoder):
        for name, p in model.named_parameters():
            if ".lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    unet = get_peft_model_state_dict(pipe.unet)
    te = get_peft_model_state_dict(pipe.text_encoder)
    files = []

    def lora_file(name, **layers):
        StableDiffusionPipeline.save_lora_weights(out_dir, weight_name=name, safe_serialization=True, **layers)
        files.append(name)

    lora_file("peft.safetensors", unet_lora_layers=unet, text_encoder_lora_layers=te)
    lora_file("diffusers.safetensors", unet_lora_layers=convert_state_dict_to_diffusers(unet),
              text_encoder_lora_layers=convert_state_dict_to_diffusers(te))
    save(os.path.join(out_dir, "attn_procs.safetensors"), attn_procs(unet, "", "unet"))
    save(os.path.join(out_dir, "attn_procs_te.safetensors"),
         {**attn_procs(unet, "unet.", "unet"), **attn_procs(te, "text_encoder.", "text_encoder")})
    files += ["attn_procs.safetensors", "attn_procs_te.safetensors"]

    kohya = convert_state_dict_to_kohya({**{f"unet.{k}": v for k, v in unet.items()},
                                         **{f"text_encoder.{k}": v for k, v in te.items()}})
    for key in [k for k in kohya if k.endswith(".alpha")]:
        down = kohya[key[: -len("alpha")] + "lora_down.weight"]
        alpha = 6.0 if key.startswith("lora_te") else 2.0 if down.dim() == 4 and down.shape[-1] == 3 else 8.0
        kohya[key] = torch.tensor(alpha)
    save(os.path.join(out_dir, "kohya.safetensors"), kohya)
    save(os.path.join(out_dir, "kohya_te.safetensors"), {k.replace("lora_te1_", "lora_te_", 1): v for k, v in kohya.items()})
    files += ["kohya.safetensors", "kohya_te.safetensors"]
    return files


def count_adapted(model):
    return len({name.split(".lora_A")[0] for name, _ in model.named_parameters() if ".lora_A" in name})


def evaluate(folder, inputs, case):
    pipe = open_pipeline(folder)
    adapted = None
    if case.get("file"):
        pipe.load_lora_weights(os.path.dirname(case["file"]), weight_name=os.path.basename(case["file"]))
        adapted = {"unet": count_adapted(pipe.unet), "text_encoder": count_adapted(pipe.text_encoder)}
    unet = pipe.unet(inputs["sample"], inputs["timestep"], encoder_hidden_states=inputs["encoder_hidden_states"]).sample
    te = pipe.text_encoder(inputs["input_ids"])[0]
    interop.save_tensors(case["out"], {"unet": unet.float(), "text_encoder": te.float()})
    return adapted


def run(req):
    result = {}
    if "make" in req:
        result["files"] = make(open_pipeline(req["pipeline"]), req["make"])
    if "eval" in req:
        inputs = interop.load_tensors(req["inputs"])
        result["adapted"] = {c.get("file") or "base": evaluate(req["pipeline"], inputs, c) for c in req["eval"]}
    return result


if __name__ == "__main__":
    interop.main(run)
