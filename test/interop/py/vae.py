"""Loads an AutoencoderKL folder with diffusers' from_pretrained and runs it on given tensors.

Request: {"model": folder, "inputs": .safetensors with "latents" [B, latent_channels, h, w] (the VAE's own
scale) and "images" [B, in_channels, H, W], "out": .safetensors path}.
Writes "decoded" (vae.decode(latents).sample) and "mean" (vae.encode(images).latent_dist.mean) to out.
Response: {"class": name, "scaling_factor": the loaded config's}.
"""
import interop  # first: the harness puts diffusers on sys.path

import diffusers


def run(req):
    vae = diffusers.AutoencoderKL.from_pretrained(req["model"], **interop.LOAD_KWARGS).eval()
    inputs = interop.load_tensors(req["inputs"])
    decoded = vae.decode(inputs["latents"]).sample
    mean = vae.encode(inputs["images"]).latent_dist.mean
    interop.save_tensors(req["out"], {"decoded": decoded, "mean": mean})
    return {"class": type(vae).__name__, "scaling_factor": vae.config.scaling_factor}


if __name__ == "__main__":
    interop.main(run)
