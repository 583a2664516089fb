"""What every interop script shares: the reference harness's bootstrap, the request/response plumbing
with test/interop/helpers/harness.ts, tensor files, and a record of what diffusers warned about.

A script is run as `python3 <script>.py <request.json> <response.json>`: it reads the request, does
its work with the real diffusers (+ transformers, peft) and writes a JSON object to the response file.
Tensors travel in .safetensors files whose paths the request names. Anything diffusers, transformers or
peft log at WARNING or above, and every Python warning, while the script works is returned as
`warnings` (one string each), so a test can require a load to be silent.

The harness is found at $DIFFTUNE_REFERENCE (or $DIFFTUNE_REFERENCE_DIR, as `npm run bench` names it),
else at ../shared/reference from the repository root. Its _bootstrap re-runs this script under a Python
with torch and puts its shims, the diffusers export and the peft export on sys.path; _bootstrap_t2i
adds the transformers export (diffusers' PEFT backend needs transformers too).
"""
import json
import logging
import os
import re
import sys
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
REFERENCE = os.environ.get("DIFFTUNE_REFERENCE") or os.environ.get("DIFFTUNE_REFERENCE_DIR") or os.path.join(REPO, "..", "shared", "reference")
if not os.path.isfile(os.path.join(REFERENCE, "_bootstrap_t2i.py")):
    raise SystemExit(f"no reference harness at {REFERENCE} (set DIFFTUNE_REFERENCE to the folder with _bootstrap_t2i.py)")
sys.path.insert(0, os.path.abspath(REFERENCE))

import _bootstrap  # noqa: E402  (re-exec under a python with torch; shims, diffusers, peft on sys.path)
import _bootstrap_t2i  # noqa: E402,F401  (transformers, the real regex, ftfy blocked)

import torch  # noqa: E402
from huggingface_hub import StateDictSplit  # noqa: E402  (the harness's offline stand-in)
from safetensors.torch import load_file, save_file  # noqa: E402  (the harness's shim: a pure-Python reader/writer)

# diffusers' own advice to install accelerate is about this environment, not about the files loaded.
LOAD_KWARGS = {"low_cpu_mem_usage": False}
WATCHED_LOGGERS = ("diffusers", "transformers", "peft")


class _Collect(logging.Handler):
    def __init__(self, sink):
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record):
        self.sink.append(f"{record.name}: {record.getMessage()}")


class Warnings:
    """Collects diffusers/transformers/peft log records at WARNING and above and Python warnings while active."""

    def __init__(self):
        self.messages = []
        self._handler = _Collect(self.messages)
        self._catch = None

    def __enter__(self):
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).addHandler(self._handler)
        self._catch = warnings.catch_warnings(record=True)
        self._records = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        for r in self._records:
            self.messages.append(f"{r.category.__name__}: {r.message}")
        self._catch.__exit__(*exc)
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).removeHandler(self._handler)
        return False


def load_tensors(path):
    return load_file(path)


def save_tensors(path, tensors):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)


def image_uint8(images):
    """diffusers' numpy_to_pil: [0, 1] images (NHWC numpy or NCHW torch) → (x * 255).round() as uint8, NHWC."""
    if isinstance(images, torch.Tensor):
        images = images.permute(0, 2, 3, 1)
    else:
        images = torch.from_numpy(images)
    return (images.to(torch.float32) * 255).round().to(torch.uint8)


def generator(seed):
    return torch.Generator().manual_seed(int(seed))


_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(size):
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?B|B)\s*", size.upper())
    if not m:
        raise ValueError(f"size {size!r}: expected e.g. 200KB")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def shards(state_dict, *, filename_pattern="model{suffix}.safetensors", max_shard_size="5GB", **_):
    """huggingface_hub's split_state_dict_into_shards_factory (v0.2x): tensors in order, a new shard when the
    next tensor would overflow the current one, a tensor larger than the limit in a shard of its own; shards
    named filename_pattern with suffix -0000i-of-0000n, or no suffix when there is one."""
    limit = parse_size(max_shard_size)
    shard_list, current, current_size, total = [], {}, 0, 0
    for key, tensor in state_dict.items():
        size = tensor.numel() * tensor.element_size()
        total += size
        if size > limit:
            shard_list.append({key: tensor})
            continue
        if current_size + size > limit:
            shard_list.append(current)
            current, current_size = {}, 0
        current[key] = tensor
        current_size += size
    if current:
        shard_list.append(current)
    n = len(shard_list)
    if n == 1:
        name = filename_pattern.format(suffix="")
        return StateDictSplit(False, {"total_size": total}, {name: list(state_dict)}, {k: name for k in state_dict})
    files, where = {}, {}
    for i, shard in enumerate(shard_list):
        name = filename_pattern.format(suffix=f"-{i + 1:05d}-of-{n:05d}")
        files[name] = list(shard)
        where.update({k: name for k in shard})
    return StateDictSplit(True, {"total_size": total}, files, where)


def enable_sharding():
    """save_pretrained(max_shard_size=...) shards through huggingface_hub's split_torch_state_dict_into_shards,
    which the harness's offline stand-in never does: put shards() in its place, so that the files are named
    and filled as diffusers v0.31 with the real huggingface_hub writes them."""
    import diffusers.models.modeling_utils as modeling_utils

    modeling_utils.split_torch_state_dict_into_shards = shards


def main(handler):
    """Runs handler(request) → dict under a Warnings record, one torch thread (deterministic), and writes
    {**result, "warnings": [...]} to the response file."""
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} <request.json> <response.json>")
    with open(sys.argv[1]) as f:
        request = json.load(f)
    torch.set_num_threads(int(request.get("threads", 1)))
    with Warnings() as w, torch.no_grad():
        result = handler(request)
    result = dict(result or {})
    result["warnings"] = w.messages + result.get("warnings", [])
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)
