"""The interop tier's prerequisite check: prints the versions in use as one JSON object, or exits
non-zero with a line saying what is missing (the harness's own messages for torch, diffusers,
transformers and regex; ours for peft)."""
import importlib.util
import json
import sys

import interop  # first: the harness puts diffusers on sys.path
import _bootstrap
import _bootstrap_t2i

import diffusers
import torch
import transformers

peft = _bootstrap.peft_ref()
if peft is None:
    raise SystemExit(f"no peft export at {_bootstrap.PEFT_SRC}: run setup_peft.sh <git dir of github.com/huggingface/peft> in {interop.REFERENCE}")
import peft as peft_module  # noqa: E402

print(json.dumps({
    "python": sys.executable,
    "reference": interop.REFERENCE,
    "torch": torch.__version__,
    "diffusers": diffusers.__version__,
    "transformers": transformers.__version__,
    "peft": peft_module.__version__,
    "scipy": importlib.util.find_spec("scipy") is not None,
}))
