/**
 * Runner for `single_file_load` cases (sd-singlefile-tiny): the original-layout checkpoint is loaded
 * with the configs of the named diffusers folder; every key must land on the component and key of
 * `expected_diffusers_keys` (with its reshape), and each component must equal the expected weights
 * file bit for bit: same keys, dtypes, shapes and bytes. Pure TypeScript.
 */
import { z } from 'zod';
import { readLdmLayout } from '../checkpoint/ldm-configs';
import { loadLdmSingleFile, planLdmConversion, type RawTensor } from '../checkpoint/ldm-single-file';
import { SafetensorsFile } from '../checkpoint/safetensors';
import { decodeTensorData } from '../checkpoint/tensor-data';
import { relError, type Check } from './compare';
import { caseFields, type FixtureCase, type FixtureSet } from './fixture-set';
import type { CaseRegistry } from './registry';
import { TOLERANCES } from './tolerances';

const component = z.enum(['unet', 'vae', 'text_encoder']);
const singleFileCase = z.object({
  checkpoint_file: z.string(),
  from_single_file: z.object({ config: z.string() }).passthrough(),
  components: z.record(component, z.object({ prefix: z.string(), num_keys: z.number().int(), expected_weights_file: z.string() }).passthrough()),
  expected_diffusers_keys: z.record(
    z.string(),
    z.object({ component, key: z.string(), reshape: z.object({ from: z.array(z.number().int()), to: z.array(z.number().int()) }).optional() }),
  ),
});

function exact(name: string, mismatches: string[], total: number): Check {
  const pass = mismatches.length === 0;
  return {
    name,
    rel: pass ? 0 : Infinity,
    bound: TOLERANCES.exact,
    pass,
    note: pass ? undefined : `${mismatches.length} of ${total}: ${mismatches.slice(0, 3).join('; ')}`,
  };
}

/** 0 for identical bytes, else the relative error of the decoded values (Infinity on a dtype/shape mismatch). */
function tensorError(got: RawTensor, expected: RawTensor): number {
  if (got.dtype !== expected.dtype || got.shape.join() !== expected.shape.join()) return Infinity;
  if (
    Buffer.compare(
      Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength),
      Buffer.from(expected.data.buffer, expected.data.byteOffset, expected.data.byteLength),
    ) === 0
  )
    return 0;
  const rel = relError(decodeTensorData(got.dtype, got.data), decodeTensorData(expected.dtype, expected.data));
  return rel === 0 ? Number.MIN_VALUE : rel; // different bytes (e.g. -0 vs 0, NaN payloads) are not bit for bit
}

async function runSingleFileLoad(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, singleFileCase);
  const checkpoint = set.resolve(c.checkpoint_file);
  const config = set.resolve(c.from_single_file.config);
  const checks: Check[] = [];

  const header = await SafetensorsFile.open(checkpoint);
  await header.close(); // only its header is needed here
  const plan = planLdmConversion(header.tensors, readLdmLayout(config), checkpoint);
  const placed = new Map(plan.assignments.map((a) => [a.key.ldm, a]));
  const keyMismatches: string[] = [];
  for (const [ldm, want] of Object.entries(c.expected_diffusers_keys)) {
    const got = placed.get(ldm);
    if (got === undefined) keyMismatches.push(`${ldm} not loaded`);
    else if (got.key.component !== want.component || got.key.diffusers !== want.key)
      keyMismatches.push(`${ldm} → ${got.key.component}/${got.key.diffusers}, expected ${want.component}/${want.key}`);
    else if (want.reshape !== undefined && got.shape.join() !== want.reshape.to.join())
      keyMismatches.push(`${ldm} reshaped to [${got.shape.join(', ')}], expected [${want.reshape.to.join(', ')}]`);
  }
  for (const ldm of placed.keys()) if (!(ldm in c.expected_diffusers_keys)) keyMismatches.push(`${ldm} loaded but not expected`);
  checks.push(exact('expected_diffusers_keys', keyMismatches, Object.keys(c.expected_diffusers_keys).length));
  checks.push(exact('ignored_keys', plan.ignored, plan.ignored.length));

  const loaded = await loadLdmSingleFile(checkpoint, { config });
  for (const [name, spec] of Object.entries(c.components)) {
    const got = loaded.components[name as z.infer<typeof component>];
    const file = await SafetensorsFile.open(set.resolve(spec.expected_weights_file));
    try {
      const keyProblems: string[] = [];
      for (const k of file.names()) if (!got.has(k)) keyProblems.push(`${k} not filled`);
      for (const k of got.keys()) if (!file.has(k)) keyProblems.push(`${k} filled but not in ${spec.expected_weights_file}`);
      checks.push(exact(`${name}/keys`, keyProblems, file.names().length));
      let worst = 0;
      let worstName = '';
      for (const k of file.names()) {
        const g = got.get(k);
        if (g === undefined) continue;
        const info = file.info(k);
        const err = tensorError(g, { dtype: info.dtype, shape: info.shape, data: await file.readBytes(k) });
        if (err > worst) [worst, worstName] = [err, k];
      }
      checks.push({
        name: `${name}/weights`,
        rel: worst,
        bound: TOLERANCES.exact,
        pass: worst === 0,
        note: worst === 0 ? undefined : `worst tensor ${worstName}`,
      });
    } finally {
      await file.close();
    }
  }
  return checks;
}

export function registerSingleFileCases(registry: CaseRegistry): CaseRegistry {
  return registry.register('single_file_load', runSingleFileLoad);
}
