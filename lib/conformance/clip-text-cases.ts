/**
 * Runners for the CLIP text encoder case types of test/fixtures/diffusers (README "cases.json"):
 * clip_text_forward and clip_text_backward. The model is loaded once per set folder.
 */
import { z } from 'zod';
import { ConfigError } from '../errors';
import { loadTextEncoder, type CLIPTextModel } from '../models/clip-text';
import { checkGradParams, checkTensor, type Check } from './compare';
import { allKeys, withTensors } from './case-tensors';
import { caseFields, CASES_FILE, type FixtureCase, type FixtureSet } from './fixture-set';
import { SetModelCache } from './set-model-cache';
import type { CaseRegistry } from './registry';
import { TOLERANCES } from './tolerances';

const key = z.string();

const forwardCase = z.object({
  inputs: z.object({ input_ids: key, attention_mask: key.optional() }),
  expected: z.object({
    last_hidden_state: key,
    pooler_output: key,
    hidden_states: z.array(key).optional(),
    penultimate_final_layer_norm: key.optional(),
  }),
});

const backwardCase = z.object({
  inputs: z.object({ input_ids: key, target: key }),
  expected: z.object({ loss: key, last_hidden_state: key, grad_params: z.record(key) }),
});

const models = new SetModelCache<CLIPTextModel>((dir, device) => loadTextEncoder(dir, { device }));

/** Disposes the cached models (tests call it when done). */
export function releaseClipTextCaseModels(): Promise<void> {
  return models.release();
}

async function runForward(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, forwardCase);
  const encoder = await models.get(set);
  return withTensors(set, fixtureCase, allKeys([c.inputs, c.expected]), async (get) => {
    const e = c.expected;
    const penultimate = e.penultimate_final_layer_norm !== undefined;
    const r = await encoder.encode(get(c.inputs.input_ids), {
      attentionMask: c.inputs.attention_mask === undefined ? undefined : get(c.inputs.attention_mask),
      clipSkip: penultimate ? 1 : 0,
      outputHiddenStates: e.hidden_states !== undefined,
    });
    try {
      const checks = [
        await checkTensor('last_hidden_state', r.lastHiddenState, get(e.last_hidden_state), TOLERANCES.textEncoder),
        await checkTensor('pooler_output', r.pooledOutput, get(e.pooler_output), TOLERANCES.textEncoder),
      ];
      if (e.hidden_states !== undefined) {
        const got = r.hiddenStates ?? [];
        if (got.length !== e.hidden_states.length)
          throw new ConfigError(
            `${set.resolve(CASES_FILE)}: case "${fixtureCase.name}" expects ${e.hidden_states.length} hidden states but the model returned ${got.length}`,
          );
        for (const [i, k] of e.hidden_states.entries()) checks.push(await checkTensor(`hidden_states/${i}`, got[i]!, get(k), TOLERANCES.textEncoder));
      }
      if (penultimate)
        checks.push(await checkTensor('penultimate_final_layer_norm', r.promptEmbeds, get(e.penultimate_final_layer_norm!), TOLERANCES.textEncoder));
      return checks;
    } finally {
      for (const t of [r.lastHiddenState, r.pooledOutput, r.promptEmbeds, ...(r.hiddenStates ?? [])]) t.dispose();
    }
  });
}

async function runBackward(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, backwardCase);
  const encoder = await models.get(set);
  return withTensors(set, fixtureCase, allKeys([c.inputs, c.expected]), async (get) => {
    const e = c.expected;
    const r = await encoder.forwardBackwardMse(get(c.inputs.input_ids), get(c.inputs.target), { gradNames: Object.keys(e.grad_params) });
    try {
      const checks = [
        await checkTensor('loss', r.loss, get(e.loss), TOLERANCES.textEncoder),
        await checkTensor('last_hidden_state', r.output, get(e.last_hidden_state), TOLERANCES.textEncoder),
      ];
      checks.push(...(await checkGradParams(r.gradParams, e.grad_params, get, TOLERANCES.textEncoderGradient)));
      return checks;
    } finally {
      for (const t of [r.output, r.loss, ...r.gradParams.values()]) t.dispose();
    }
  });
}

export function registerClipTextCases(registry: CaseRegistry): CaseRegistry {
  return registry.register('clip_text_forward', runForward).register('clip_text_backward', runBackward);
}
