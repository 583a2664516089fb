"""DDPMPipeline.from_pretrained(<folder>) and a sampling run, as a diffusers user does it.

Request: {"pipeline": folder, "seed": int, "steps": int, "batch": int, "out": file.safetensors}.
Writes to `out`: "images" (float32 NHWC in [0, 1], the pipeline's output_type="np") and "images_uint8"
(what numpy_to_pil makes of them). Response: the U-Net and scheduler classes and the U-Net's
sample_size, plus the warnings of the load and the run.
"""
import interop  # first: the harness puts diffusers on sys.path

import torch
from diffusers import DDPMPipeline


def run(req):
    pipe = DDPMPipeline.from_pretrained(req["pipeline"], **interop.LOAD_KWARGS)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=req["batch"], generator=interop.generator(req["seed"]), num_inference_steps=req["steps"], output_type="np").images
    interop.save_tensors(req["out"], {"images": torch.from_numpy(images), "images_uint8": interop.image_uint8(images)})
    return {"unet_class": type(pipe.unet).__name__, "scheduler_class": type(pipe.scheduler).__name__, "sample_size": pipe.unet.config.sample_size}


if __name__ == "__main__":
    interop.main(run)
