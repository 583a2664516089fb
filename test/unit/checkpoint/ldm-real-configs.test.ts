/**
 * Single files of the real-size SD 1.5, 2.1 and 2.1-base configs (test/fixtures/real-configs; no weights:
 * keys and shapes only) against the single file diffusers' own convert_diffusers_to_original_stable_diffusion.py
 * writes for them (key-table-*.json, made with the reference harness by make_key_tables.py there): the same
 * single-file keys, each made of the same diffusers key(s), with the same shapes both ways — SD 2.x's
 * OpenCLIP text encoder included (q/k/v fused at the width, 1024). Then the tensors a real SD 2.x file has
 * beyond diffusers' (the 24th block, text_projection, logit_scale) are kept, and a q/k/v cut at the wrong
 * width is refused.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { readLdmLayout } from '../../../lib/checkpoint/ldm-configs';
import { ldmKeyTable, type LdmComponent } from '../../../lib/checkpoint/ldm-layout';
import { planLdmConversion, toLdmSingleFile, type RawTensor } from '../../../lib/checkpoint/ldm-single-file';

const DIR = path.join(__dirname, '../../fixtures/real-configs');

type Row = [ldm: string, shape: number[], component: LdmComponent, diffusers: string[]];
interface KeyTable {
  parameters: Record<LdmComponent, number>;
  diffusers: Record<LdmComponent, Array<[string, number[]]>>;
  single_file: Row[];
}
const tableOf = (name: string): KeyTable => JSON.parse(readFileSync(path.join(DIR, `key-table-${name}.json`), 'utf8')) as KeyTable;
const CONFIGS: Array<[config: string, table: string]> = [
  ['sd-v1-5', 'sd-v1-5'],
  ['sd-v2-1', 'sd-v2-1'],
  ['sd-v2-1-base', 'sd-v2-1'], // make_key_tables.py checked that 2.1-base's tensors are 2.1's
];
const COMPONENTS: LdmComponent[] = ['unet', 'vae', 'text_encoder'];
const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

describe.each(CONFIGS)('%s', (config, tableName) => {
  const expected = tableOf(tableName);
  const layout = readLdmLayout(path.join(DIR, config));
  const ldmShapes = new Map(expected.single_file.map(([ldm, shape]) => [ldm, { shape }]));

  it('reads the text encoder style from the config (gelu: OpenCLIP)', () => {
    expect(layout.textEncoder).toEqual(
      config === 'sd-v1-5' ? { numHiddenLayers: 12, hiddenSize: 768, style: 'openai-clip' } : { numHiddenLayers: 23, hiddenSize: 1024, style: 'open-clip' },
    );
  });

  it("derives the script's single-file keys, each from the same diffusers key(s)", () => {
    const ours = new Map<string, { component: LdmComponent; diffusers: string[] }>();
    for (const key of ldmKeyTable(layout)) {
      if (key.optional === true) continue; // position_ids: transformers 4.40 has no such tensor
      const entry = ours.get(key.ldm) ?? { component: key.component, diffusers: [] };
      entry.diffusers[key.part?.index ?? 0] = key.diffusers;
      ours.set(key.ldm, entry);
    }
    const theirs = new Map(expected.single_file.map(([ldm, , component, diffusers]) => [ldm, { component, diffusers }]));
    expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    expect(Object.fromEntries(ours)).toEqual(Object.fromEntries(theirs));
  });

  it("reads the script's file into tensors of exactly diffusers' names and shapes", () => {
    const plan = planLdmConversion(ldmShapes, layout, `key-table-${tableName}.json`);
    expect({ ignored: plan.ignored, kept: plan.kept }).toEqual({ ignored: [], kept: [] });
    for (const component of COMPONENTS) {
      const got = plan.assignments.filter((a) => a.key.component === component).map((a) => [a.key.diffusers, [...a.shape]]);
      expect(Object.fromEntries(got)).toEqual(Object.fromEntries(expected.diffusers[component]));
      expect(got).toHaveLength(expected.diffusers[component].length);
    }
  });

  it("writes diffusers' tensors back as the script's file: keys and shapes", () => {
    // Shapes only: the conversion never looks into the bytes, so empty data stands in for the weights.
    const components = Object.fromEntries(
      COMPONENTS.map((c) => [
        c,
        new Map(expected.diffusers[c].map(([name, shape]): [string, RawTensor] => [name, { dtype: 'F32', shape, data: new Uint8Array(0) }])),
      ]),
    ) as Record<LdmComponent, Map<string, RawTensor>>;
    const single = toLdmSingleFile(components, layout);
    expect(Object.fromEntries([...single].map(([k, t]) => [k, [...t.shape]]))).toEqual(
      Object.fromEntries(expected.single_file.map(([ldm, shape]) => [ldm, shape])),
    );
  });

  it("has diffusers' parameter counts", () => {
    for (const c of COMPONENTS) expect(expected.diffusers[c].reduce((n, [, shape]) => n + numel(shape), 0)).toBe(expected.parameters[c]);
    // What the issue quotes for the U-Nets.
    expect(expected.parameters.unet).toBe(config === 'sd-v1-5' ? 859_520_964 : 865_910_724);
  });
});

describe('an SD 2.x file as Stability AI publishes it', () => {
  const layout = readLdmLayout(path.join(DIR, 'sd-v2-1'));
  const base = new Map(tableOf('sd-v2-1').single_file.map(([ldm, shape]) => [ldm, { shape }]));
  const open = 'cond_stage_model.model.';
  const lastBlock = [...base.keys()].filter((k) => k.startsWith(`${open}transformer.resblocks.22.`)).map((k) => k.replace('resblocks.22.', 'resblocks.23.'));

  it("keeps the 24th residual block, text_projection and logit_scale, which diffusers' 23-layer CLIPTextModel has no place for", () => {
    const file = new Map(base);
    for (const k of lastBlock) file.set(k, base.get(k.replace('resblocks.23.', 'resblocks.22.'))!);
    file.set(`${open}text_projection`, { shape: [1024, 1024] });
    file.set(`${open}logit_scale`, { shape: [] });
    const plan = planLdmConversion(file, layout, 'v2-1_768-ema-pruned.safetensors');
    expect(lastBlock).toHaveLength(12);
    expect(plan.kept.sort()).toEqual([...lastBlock, `${open}text_projection`, `${open}logit_scale`].sort());
    expect(plan.assignments.filter((a) => a.key.component === 'text_encoder')).toHaveLength(tableOf('sd-v2-1').diffusers.text_encoder.length);
  });

  it('refuses other unknown OpenCLIP keys and a q/k/v that is not three blocks of the width', () => {
    const file = new Map(base);
    file.set(`${open}transformer.resblocks.23.attn.bogus`, { shape: [1] });
    file.set(`${open}transformer.resblocks.4.attn.in_proj_weight`, { shape: [1536, 1024] });
    expect(() => planLdmConversion(file, layout, 'x.safetensors')).toThrow(
      /resblocks\.4\.attn\.in_proj_weight: expected 3 × 1024 rows \(q, k, v of the text encoder's hidden_size 1024\), found \[1536, 1024\][\s\S]*1 keys are not part of this structure:\n\s+cond_stage_model\.model\.transformer\.resblocks\.23\.attn\.bogus/,
    );
  });

  it('refuses kept tensors when the text encoder is written in the SD 1.x layout', () => {
    const sd15 = readLdmLayout(path.join(DIR, 'sd-v1-5'));
    const empty = { unet: new Map(), vae: new Map(), text_encoder: new Map() };
    const kept = new Map([[`${open}text_projection`, { dtype: 'F32' as const, shape: [1024, 1024], data: new Uint8Array(0) }]]);
    expect(() => toLdmSingleFile(empty, sd15, 'sd15', kept)).toThrow(
      /kept single-file tensor cond_stage_model\.model\.text_projection \(the text encoder is written in the openai-clip layout\)/,
    );
  });
});
