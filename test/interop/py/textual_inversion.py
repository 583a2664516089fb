"""Textual inversion embeddings and trained text encoders in diffusers: what a pipeline's tokenizer and text
encoder make of prompts once they are loaded.

Request:
  "cases": [{"pipeline": folder (StableDiffusionPipeline.from_pretrained),
             "embeddings"?: [{"file": path, "token"?: str}]: pipe.load_textual_inversion(file, token=...) for each,
             "prompts": [str], "out": file}]
      For each case, a fresh pipeline; each prompt through pipe.maybe_convert_prompt, the tokenizer (padding to
      max_length, truncation) and pipe.encode_prompt (no guidance): written to `out` as "ids" (int64 → float32,
      [prompts, 77]) and "embeds" (float32, [prompts, 77, D]).
Response: {"cases": [{"vocab": len(tokenizer), "added": {token: id} of the tokens at or above the
vocabulary's size, "tokens": [pipe.tokenizer.tokenize(prompt) of each prompt]}]}.
"""
import interop  # first: the harness puts diffusers, transformers and peft on sys.path

import torch
from diffusers import StableDiffusionPipeline

NO_SAFETY = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def run_case(case):
    pipe = StableDiffusionPipeline.from_pretrained(case["pipeline"], **NO_SAFETY, **interop.LOAD_KWARGS)
    pipe.text_encoder.eval()
    for e in case.get("embeddings") or []:
        pipe.load_textual_inversion(e["file"], token=e.get("token"))
    tok = pipe.tokenizer
    ids, embeds, tokens = [], [], []
    for prompt in case["prompts"]:
        converted = pipe.maybe_convert_prompt(prompt, tok)
        tokens.append(tok.tokenize(converted))
        ids.append(tok(converted, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids[0])
        prompt_embeds, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
        embeds.append(prompt_embeds[0])
    interop.save_tensors(case["out"], {"ids": torch.stack(ids).to(torch.float32), "embeds": torch.stack(embeds).float()})
    added = {t: i for t, i in tok.added_tokens_encoder.items() if i >= tok.vocab_size}
    return {"vocab": len(tok), "added": added, "tokens": tokens}


def run(req):
    return {"cases": [run_case(c) for c in req["cases"]]}


if __name__ == "__main__":
    interop.main(run)
