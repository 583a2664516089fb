/**
 * Runners for the U-Net fixture cases (`unet_forward`, `unet_backward`): what diffusers computed,
 * recomputed with difftune's U-Net and compared by max|got − expected| / max|expected|.
 */
import { z } from 'zod';
import type { UNet } from '../models/unet';
import type { Tensor } from '../native/tensor';

export const UNET_TOLERANCE = { forward: 1e-5, gradient: 5e-5, loop: 1e-4 } as const;

export interface TensorCheck {
  name: string;
  rel: number;
  bound: number;
}

const key = z.string();
const forwardCase = z.object({
  name: z.string(),
  type: z.literal('unet_forward'),
  inputs: z.object({ sample: key, timestep: key, encoder_hidden_states: key.optional(), class_labels: key.optional() }),
  expected: z.object({ sample: key }),
});
const backwardCase = z.object({
  name: z.string(),
  type: z.literal('unet_backward'),
  inputs: z.object({ sample: key, timestep: key, target: key, encoder_hidden_states: key.optional(), class_labels: key.optional() }),
  expected: z.object({
    loss: key,
    sample: key,
    grad_sample: key,
    grad_encoder_hidden_states: key.optional(),
    grad_params: z.record(key),
  }),
});

export type TensorLookup = (key: string) => Tensor;

/** max|got − expected| / max|expected| over all elements (float32/float64 tensors on the CPU). */
export function relError(got: Tensor, expected: Tensor, what: string): number {
  const a = got.toArray();
  const b = expected.toArray();
  if (got.shape.join(',') !== expected.shape.join(',')) {
    throw new Error(`${what}: shape [${got.shape.join(', ')}] differs from the expected [${expected.shape.join(', ')}]`);
  }
  let maxErr = 0;
  let maxRef = 0;
  for (let i = 0; i < b.length; i++) {
    const e = Number(b[i]);
    const d = Math.abs(Number(a[i]) - e);
    if (!(d <= maxErr)) maxErr = Number.isNaN(d) ? Infinity : d;
    const m = e < 0 ? -e : e;
    if (m > maxRef) maxRef = m;
  }
  return maxRef === 0 ? maxErr : maxErr / maxRef;
}

function optional(lookup: TensorLookup, k: string | undefined): Tensor | undefined {
  return k === undefined ? undefined : lookup(k);
}

export async function runUNetForwardCase(unet: UNet, raw: unknown, lookup: TensorLookup): Promise<TensorCheck[]> {
  const c = forwardCase.parse(raw);
  const i = c.inputs;
  using out = await unet.forward(lookup(i.sample), lookup(i.timestep), {
    encoderHiddenStates: optional(lookup, i.encoder_hidden_states),
    classLabels: optional(lookup, i.class_labels),
  });
  return [{ name: 'sample', rel: relError(out, lookup(c.expected.sample), `${c.name}/sample`), bound: UNET_TOLERANCE.forward }];
}

export async function runUNetBackwardCase(unet: UNet, raw: unknown, lookup: TensorLookup): Promise<TensorCheck[]> {
  const c = backwardCase.parse(raw);
  const i = c.inputs;
  const e = c.expected;
  const r = await unet.forwardBackwardMse(lookup(i.sample), lookup(i.timestep), lookup(i.target), {
    encoderHiddenStates: optional(lookup, i.encoder_hidden_states),
    classLabels: optional(lookup, i.class_labels),
    gradNames: Object.keys(e.grad_params),
  });
  try {
    const checks: TensorCheck[] = [
      { name: 'loss', rel: relError(r.loss, lookup(e.loss), `${c.name}/loss`), bound: UNET_TOLERANCE.forward },
      { name: 'sample', rel: relError(r.output, lookup(e.sample), `${c.name}/sample`), bound: UNET_TOLERANCE.forward },
      { name: 'grad_sample', rel: relError(r.gradSample, lookup(e.grad_sample), `${c.name}/grad_sample`), bound: UNET_TOLERANCE.gradient },
    ];
    if (e.grad_encoder_hidden_states !== undefined) {
      if (r.gradEncoderHiddenStates === undefined) throw new Error(`${c.name}: no gradient for encoder_hidden_states`);
      checks.push({
        name: 'grad_encoder_hidden_states',
        rel: relError(r.gradEncoderHiddenStates, lookup(e.grad_encoder_hidden_states), `${c.name}/grad_encoder_hidden_states`),
        bound: UNET_TOLERANCE.gradient,
      });
    }
    for (const [name, k] of Object.entries(e.grad_params)) {
      const g = r.gradParams.get(name);
      if (g === undefined) throw new Error(`${c.name}: no gradient for parameter ${name}`);
      checks.push({ name: `grad_params/${name}`, rel: relError(g, lookup(k), `${c.name}/grad ${name}`), bound: UNET_TOLERANCE.gradient });
    }
    return checks;
  } finally {
    for (const t of [r.output, r.loss, r.gradSample, r.gradEncoderHiddenStates, ...r.gradParams.values()]) t?.dispose();
  }
}
