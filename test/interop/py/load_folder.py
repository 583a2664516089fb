"""Loads folders with diffusers' from_pretrained, each on its own warnings record, and returns what
diffusers made of their configs.

Request: {"items": [{"kind": "model" | "scheduler" | "pipeline", "path": folder, "subfolder"?: name,
"variant"?: "fp16"}]}. A model's class is its config.json's _class_name, a scheduler's its
scheduler_config.json's; a pipeline loads through DiffusionPipeline.
Response: {"items": [{"class": name, "config": {key: value} (the object's config without the keys diffusers
adds, which start with "_"), "defaulted": [keys the file lacked], "warnings": [...],
"components"?: {name: class} for pipelines, and for a scheduler item with "defaults": true "defaults" (the
class's own default config) and "defaults_warnings" (what constructing it with its defaults warns about:
diffusers' DPMSolverSinglestepScheduler warns at its own defaults)}]}.
"""
import json
import os

import interop  # first: the harness puts diffusers on sys.path

import diffusers


def public_config(config):
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def class_of(path, subfolder, filename):
    with open(os.path.join(path, subfolder or "", filename)) as f:
        return json.load(f)["_class_name"]


def load(item):
    kind, path, sub = item["kind"], item["path"], item.get("subfolder")
    kw = {"subfolder": sub} if sub else {}
    if kind == "model":
        cls = getattr(diffusers, class_of(path, sub, "config.json"))
        obj = cls.from_pretrained(path, variant=item.get("variant"), **kw, **interop.LOAD_KWARGS)
        config = obj.config
    elif kind == "scheduler":
        cls = getattr(diffusers, class_of(path, sub, "scheduler_config.json"))
        obj = cls.from_pretrained(path, **kw)
        config = obj.config
    elif kind == "pipeline":
        obj = diffusers.DiffusionPipeline.from_pretrained(path, variant=item.get("variant"), safety_checker=None, feature_extractor=None, **interop.LOAD_KWARGS)
        config = obj.config
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    out = {"class": type(obj).__name__, "config": public_config(config), "defaulted": sorted(dict(config).get("_use_default_values", []))}
    if kind == "pipeline":
        out["components"] = {k: type(v).__name__ for k, v in obj.components.items() if v is not None}
    return out


def run(req):
    items = []
    for item in req["items"]:
        with interop.Warnings() as w:
            out = load(item)
        out["warnings"] = w.messages
        if item["kind"] == "scheduler" and item.get("defaults"):
            with interop.Warnings() as w:
                out["defaults"] = public_config(getattr(diffusers, out["class"])().config)
            out["defaults_warnings"] = w.messages
        items.append(out)
    return {"items": items}


if __name__ == "__main__":
    interop.main(run)
