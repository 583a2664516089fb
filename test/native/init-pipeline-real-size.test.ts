/**
 * Opt-in (DIFFTUNE_REAL_SIZE=1; minutes, ~3 GB of disk and ~4 GB of memory): `init-pipeline` on the real
 * SD 1.5 and 2.1 configs writes exactly the tensors diffusers and transformers build from them
 * (test/fixtures/real-configs/key-table-*.json, made with the reference harness): every name and shape,
 * 859,520,964 / 865,910,724 U-Net parameters. The process's peak memory stays below the float32 U-Net
 * held twice: the weights are never all in memory beside the model that listed them.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { initPipeline } from '../../lib/models/init-pipeline';
import { REAL_CONFIGS, type RealConfigName } from '../helpers/real-configs';
import { useTempDir } from '../helpers/temp-dir';

const enabled = process.env.DIFFTUNE_REAL_SIZE === '1';
const maybe = enabled ? describe : describe.skip;

/** The process's peak resident memory so far (VmHWM), in bytes. */
function peakRss(): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  return Number(kb) * 1024;
}

maybe('init-pipeline at real size (DIFFTUNE_REAL_SIZE=1)', () => {
  const tmp = useTempDir('init-real');
  it.each<RealConfigName>(['sd-v1-5', 'sd-v2-1'])(
    '%s: the tensors diffusers builds from the configs, written without a second copy',
    async (name) => {
      const expected = JSON.parse(readFileSync(path.join(REAL_CONFIGS, `key-table-${name}.json`), 'utf8')) as {
        parameters: Record<string, number>;
        diffusers: Record<string, Array<[string, number[]]>>;
      };
      const result = await initPipeline(path.join(REAL_CONFIGS, name), path.join(tmp(), name), { seed: 0, dtype: 'float16' });
      for (const c of result.components) {
        expect(c.parameters).toBe(expected.parameters[c.name]);
        const st = await SafetensorsFile.open(c.file);
        try {
          expect(Object.fromEntries([...st.tensors].map(([n, i]) => [n, i.shape]))).toEqual(Object.fromEntries(expected.diffusers[c.name]!));
        } finally {
          await st.close();
        }
      }
      const unetFloat32 = expected.parameters.unet! * 4;
      expect(peakRss()).toBeLessThan(1.5 * unetFloat32 + 1e9);
    },
    1_800_000,
  );
});

if (!enabled) test('real-size init-pipeline checks are opt-in: DIFFTUNE_REAL_SIZE=1', () => undefined);
