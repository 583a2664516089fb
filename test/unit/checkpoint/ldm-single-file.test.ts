/**
 * Single-file (CompVis / LDM) checkpoints against test/fixtures/diffusers/sd-singlefile-tiny: every
 * key maps to the diffusers key of cases.json, every weight of ../sd-pipeline-tiny is filled once and
 * equal bit for bit, diffusers → LDM → diffusers is the identity, SD 1.5's numbering follows from its
 * structure, and malformed input is refused with the key named.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { readLdmLayout, unetLayout } from '../../../lib/checkpoint/ldm-configs';
import { parseUNetConfig, type UNet2DConditionConfig } from '../../../lib/config/unet';
import { ldmKeyTable, type LdmLayout } from '../../../lib/checkpoint/ldm-layout';
import {
  convertLdmSingleFileToFolder,
  fromLdmSingleFile,
  loadLdmSingleFile,
  readDiffusersComponents,
  saveLdmSingleFile,
  toLdmSingleFile,
  type DiffusersComponents,
  type RawStateDict,
  type RawTensor,
} from '../../../lib/checkpoint/ldm-single-file';
import { ConfigError } from '../../../lib/errors';
import { expectSameStateDict, readRaw } from '../../helpers/raw-state-dict';
import { useTempDir } from '../../helpers/temp-dir';

const FIXTURES = path.join(__dirname, '../../fixtures/diffusers');
const SET = path.join(FIXTURES, 'sd-singlefile-tiny');
const PIPELINE = path.join(FIXTURES, 'sd-pipeline-tiny');
const CHECKPOINT = path.join(SET, 'model.safetensors');

interface Expected {
  component: 'unet' | 'vae' | 'text_encoder';
  key: string;
  reshape?: { from: number[]; to: number[] };
}
const cases = JSON.parse(readFileSync(path.join(SET, 'cases.json'), 'utf8')) as {
  cases: Array<{
    type: string;
    num_keys: number;
    reshaped_keys: string[];
    components: Record<string, { prefix: string; num_keys: number; expected_weights_file: string }>;
    expected_diffusers_keys: Record<string, Expected>;
  }>;
};
const theCase = cases.cases.find((c) => c.type === 'single_file_load')!;
const expectedKeys = theCase.expected_diffusers_keys;

describe('sd-singlefile-tiny', () => {
  let layout: LdmLayout;
  let checkpoint: RawStateDict;
  let diffusers: DiffusersComponents;
  beforeAll(async () => {
    layout = readLdmLayout(PIPELINE);
    checkpoint = await readRaw(CHECKPOINT);
    diffusers = await readDiffusersComponents(PIPELINE);
  });

  it('derives exactly the key table of cases.json from the configs', () => {
    const table = ldmKeyTable(layout);
    expect(table).toHaveLength(theCase.num_keys);
    const derived = Object.fromEntries(table.map((k) => [k.ldm, { component: k.component, key: k.diffusers, reshaped: k.reshape !== undefined }]));
    const fromCases = Object.fromEntries(
      Object.entries(expectedKeys).map(([ldm, e]) => [ldm, { component: e.component, key: e.key, reshaped: e.reshape !== undefined }]),
    );
    expect(derived).toEqual(fromCases);
    expect(
      table
        .filter((k) => k.reshape !== undefined)
        .map((k) => k.ldm)
        .sort(),
    ).toEqual([...theCase.reshaped_keys].sort());
  });

  it('maps every checkpoint key to its expected component and key, each once, reshaping the 8 VAE attention weights', async () => {
    expect(checkpoint.size).toBe(theCase.num_keys);
    const loaded = await loadLdmSingleFile(CHECKPOINT, { config: PIPELINE });
    expect(loaded.ignored).toEqual([]);
    for (const [ldm, tensor] of checkpoint) {
      const e = expectedKeys[ldm];
      expect(e).toBeDefined();
      const got = loaded.components[e!.component].get(e!.key);
      expect(got).toBeDefined();
      expect(Buffer.compare(Buffer.from(got!.data), Buffer.from(tensor.data))).toBe(0);
      if (e!.reshape !== undefined) {
        expect(tensor.shape).toEqual(e!.reshape.from);
        expect(got!.shape).toEqual(e!.reshape.to);
      } else {
        expect(got!.shape).toEqual(tensor.shape);
      }
    }
    for (const [component, spec] of Object.entries(theCase.components)) {
      expect(loaded.components[component as Expected['component']].size).toBe(spec.num_keys);
      expect([...checkpoint.keys()].filter((k) => k.startsWith(spec.prefix))).toHaveLength(spec.num_keys);
    }
  });

  it('fills every diffusers weight of sd-pipeline-tiny once, bit for bit', async () => {
    const loaded = await loadLdmSingleFile(CHECKPOINT, { config: PIPELINE });
    for (const [component, spec] of Object.entries(theCase.components)) {
      const expected = await readRaw(path.join(SET, spec.expected_weights_file));
      expectSameStateDict(loaded.components[component as Expected['component']], expected);
    }
  });

  it("round-trips: diffusers → single file gives the fixture file's tensors, and back gives the diffusers weights", () => {
    const single = toLdmSingleFile(diffusers, layout);
    expectSameStateDict(single, checkpoint);
    const back = fromLdmSingleFile(single, layout);
    for (const c of ['unet', 'vae', 'text_encoder'] as const) expectSameStateDict(back.components[c], diffusers[c]);
  });

  describe('files', () => {
    const tmp = useTempDir('ldm-single-file');
    it('writes a single file identical to the fixture, byte for byte, and reads it back', async () => {
      const out = path.join(tmp(), 'model.safetensors');
      await saveLdmSingleFile(out, diffusers, { config: PIPELINE });
      expect(Buffer.compare(readFileSync(out), readFileSync(CHECKPOINT))).toBe(0);
      const loaded = await loadLdmSingleFile(out, { config: PIPELINE });
      for (const c of ['unet', 'vae', 'text_encoder'] as const) expectSameStateDict(loaded.components[c], diffusers[c]);
    });
    it('converts a single file into a diffusers folder', async () => {
      const out = path.join(tmp(), 'folder');
      await convertLdmSingleFileToFolder(CHECKPOINT, out, { config: PIPELINE });
      const written = await readDiffusersComponents(out);
      for (const c of ['unet', 'vae', 'text_encoder'] as const) expectSameStateDict(written[c], diffusers[c]);
      for (const f of ['model_index.json', 'unet/config.json', 'tokenizer/vocab.json', 'scheduler/scheduler_config.json']) {
        expect(readFileSync(path.join(out, f), 'utf8')).toBe(readFileSync(path.join(PIPELINE, f), 'utf8'));
      }
    });
  });

  describe('malformed input', () => {
    const withKeys = (edit: (m: RawStateDict) => void): RawStateDict => {
      const m = new Map(checkpoint);
      edit(m);
      return m;
    };
    const scalar: RawTensor = { dtype: 'F32', shape: [4], data: new Uint8Array(16) };

    it('skips and lists training-only keys', () => {
      const m = withKeys((m) => {
        for (const k of ['betas', 'alphas_cumprod', 'model_ema.decay', 'model_ema.diffusion_modelinput_blocks00weight']) m.set(k, scalar);
      });
      const r = fromLdmSingleFile(m, layout);
      expect(r.ignored).toEqual(['betas', 'alphas_cumprod', 'model_ema.decay', 'model_ema.diffusion_modelinput_blocks00weight']);
      expect(r.components.unet.size).toBe(208);
    });
    it('refuses an unknown key, naming it', () => {
      const m = withKeys((m) => m.set('model.diffusion_model.input_blocks.9.0.in_layers.0.weight', scalar));
      expect(() => fromLdmSingleFile(m, layout, 'x.safetensors')).toThrow(
        /x\.safetensors: cannot convert[\s\S]*1 keys are not part of this structure:\n\s+model\.diffusion_model\.input_blocks\.9\.0/,
      );
    });
    it('refuses a missing key, naming it and counting per component', () => {
      const m = withKeys((m) => {
        m.delete('first_stage_model.decoder.up.0.block.1.conv2.weight');
        m.delete('cond_stage_model.transformer.text_model.final_layer_norm.bias');
      });
      expect(() => fromLdmSingleFile(m, layout)).toThrow(/2 keys are missing \(vae 1, text_encoder 1\)[\s\S]*decoder\.up\.0\.block\.1\.conv2\.weight/);
      // position_ids is optional on both sides.
      expect(
        fromLdmSingleFile(
          withKeys((m) => m.delete('cond_stage_model.transformer.text_model.embeddings.position_ids')),
          layout,
        ).components.text_encoder.size,
      ).toBe(52);
    });
    it('refuses a VAE attention weight of the wrong shape', () => {
      const k = 'first_stage_model.encoder.mid.attn_1.q.weight';
      const m = withKeys((m) => m.set(k, { ...m.get(k)!, shape: [32, 32, 3, 1] }));
      expect(() => fromLdmSingleFile(m, layout)).toThrow(/encoder\.mid\.attn_1\.q\.weight: expected a 1×1 conv weight/);
    });
    it('names a mix of text-encoder layouts and files that are not single files', async () => {
      const m = withKeys((m) => m.set('cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight', scalar));
      expect(() => fromLdmSingleFile(m, layout)).toThrow(
        /text-encoder keys of both layouts[\s\S]*cond_stage_model\.model\.transformer\.resblocks\.0\.attn\.in_proj_weight/,
      );
      await expect(loadLdmSingleFile(path.join(PIPELINE, 'unet/diffusion_pytorch_model.safetensors'), { config: PIPELINE })).rejects.toThrow(
        /not an original-layout Stable Diffusion checkpoint/,
      );
    });
    it('says the configs may not match when the structure differs', () => {
      const wrong: LdmLayout = { ...layout, unet: { ...layout.unet, layersPerBlock: 2 } };
      expect(() => fromLdmSingleFile(checkpoint, wrong)).toThrow(/layers_per_block 2[\s\S]*are they the configs of this checkpoint's model\?/);
    });
    it('asks for the configs folder when none is given', async () => {
      await expect(loadLdmSingleFile(CHECKPOINT)).rejects.toThrow(/pass options\.config, the diffusers folder of the same model/);
      await expect(loadLdmSingleFile(CHECKPOINT, { config: path.join(SET, 'nowhere') })).rejects.toThrow(ConfigError);
    });
    it('refuses to write components with a missing or extra tensor', () => {
      const unet = new Map(diffusers.unet);
      unet.delete('conv_in.weight');
      unet.set('class_embedding.weight', scalar);
      expect(() => toLdmSingleFile({ ...diffusers, unet }, layout)).toThrow(
        /1 tensors have no place[\s\S]*unet: class_embedding\.weight[\s\S]*1 tensors are missing:\n\s+unet: conv_in\.weight/,
      );
    });
  });
});

describe('Stable Diffusion 1.5 structure (4 levels, layers_per_block 2), by construction', () => {
  const sd15: LdmLayout = {
    unet: {
      blockOutChannels: [320, 640, 1280, 1280],
      layersPerBlock: 2,
      downAttention: [true, true, true, false],
      upAttention: [false, true, true, true],
      transformerLayersDown: [1, 1, 1, 1],
      transformerLayersUp: [1, 1, 1, 1],
      transformerLayersMid: 1,
    },
    vae: { blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2, midBlockAttention: true, quantConv: true, postQuantConv: true },
    textEncoder: { numHiddenLayers: 12, hiddenSize: 768, style: 'openai-clip' },
  };
  const table = ldmKeyTable(sd15);
  const toDiffusers = new Map(table.map((k) => [k.ldm, k.diffusers]));
  const unet = (ldm: string): string | undefined => toDiffusers.get(`model.diffusion_model.${ldm}`);
  const vae = (ldm: string): string | undefined => toDiffusers.get(`first_stage_model.${ldm}`);

  it('has the tensor counts of SD 1.5 (U-Net 686, VAE 248, CLIP ViT-L/14 text encoder 196 + position_ids)', () => {
    expect(table.filter((k) => k.component === 'unet')).toHaveLength(686);
    expect(table.filter((k) => k.component === 'vae')).toHaveLength(248);
    expect(table.filter((k) => k.component === 'text_encoder' && !k.optional)).toHaveLength(196);
  });

  it("numbers input and output blocks as diffusers' conversion script does for L = 2 (3i + j + 1, 3i + j)", () => {
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 2; j++) {
        expect(unet(`input_blocks.${3 * i + j + 1}.0.in_layers.0.weight`)).toBe(`down_blocks.${i}.resnets.${j}.norm1.weight`);
        expect(unet(`input_blocks.${3 * i + j + 1}.1.proj_in.weight`)).toBe(i < 3 ? `down_blocks.${i}.attentions.${j}.proj_in.weight` : undefined);
      }
      expect(unet(`input_blocks.${3 * (i + 1)}.0.op.weight`)).toBe(i < 3 ? `down_blocks.${i}.downsamplers.0.conv.weight` : undefined);
      for (let j = 0; j < 3; j++) {
        expect(unet(`output_blocks.${3 * i + j}.0.out_layers.3.weight`)).toBe(`up_blocks.${i}.resnets.${j}.conv2.weight`);
        expect(unet(`output_blocks.${3 * i + j}.1.transformer_blocks.0.attn2.to_k.weight`)).toBe(
          i > 0 ? `up_blocks.${i}.attentions.${j}.transformer_blocks.0.attn2.to_k.weight` : undefined,
        );
      }
    }
  });

  it('puts the upsamplers at .1.conv after a plain block and .2.conv after an attention', () => {
    expect(unet('output_blocks.2.1.conv.weight')).toBe('up_blocks.0.upsamplers.0.conv.weight');
    expect(unet('output_blocks.5.2.conv.weight')).toBe('up_blocks.1.upsamplers.0.conv.weight');
    expect(unet('output_blocks.8.2.conv.weight')).toBe('up_blocks.2.upsamplers.0.conv.weight');
    expect(table.some((k) => k.diffusers.startsWith('up_blocks.3.upsamplers'))).toBe(false);
  });

  it('has a skip connection exactly where the channels change', () => {
    expect(unet('input_blocks.4.0.skip_connection.weight')).toBe('down_blocks.1.resnets.0.conv_shortcut.weight');
    expect(unet('input_blocks.7.0.skip_connection.weight')).toBe('down_blocks.2.resnets.0.conv_shortcut.weight');
    expect(unet('input_blocks.1.0.skip_connection.weight')).toBeUndefined();
    expect(unet('input_blocks.10.0.skip_connection.weight')).toBeUndefined();
    expect(table.filter((k) => /^model\.diffusion_model\.output_blocks\.\d+\.0\.skip_connection\.weight$/.test(k.ldm))).toHaveLength(12);
  });

  it('reverses the VAE decoder levels (decoder.up.{3 − i})', () => {
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 3; j++) expect(vae(`decoder.up.${3 - i}.block.${j}.norm1.weight`)).toBe(`decoder.up_blocks.${i}.resnets.${j}.norm1.weight`);
      expect(vae(`decoder.up.${3 - i}.upsample.conv.weight`)).toBe(i < 3 ? `decoder.up_blocks.${i}.upsamplers.0.conv.weight` : undefined);
    }
    expect(vae('encoder.down.1.block.0.nin_shortcut.weight')).toBe('encoder.down_blocks.1.resnets.0.conv_shortcut.weight');
    expect(vae('decoder.up.1.block.0.nin_shortcut.weight')).toBe('decoder.up_blocks.2.resnets.0.conv_shortcut.weight');
    expect(vae('decoder.mid.attn_1.proj_out.weight')).toBe('decoder.mid_block.attentions.0.to_out.0.weight');
  });
});

describe('other U-Net structures of the fixtures', () => {
  it.each(['unet2dcond-tiny', 'unet2dcond-sd2ish'])("%s: the table has exactly the weights file's keys, and its weights round-trip", async (set) => {
    const dir = path.join(FIXTURES, set);
    const file = path.join(dir, 'config.json');
    const config = parseUNetConfig(JSON.parse(readFileSync(file, 'utf8')), file).config as UNet2DConditionConfig;
    const layout: LdmLayout = { ...readLdmLayout(PIPELINE), unet: unetLayout(config, file) };
    const weights = await readRaw(path.join(dir, 'diffusion_pytorch_model.safetensors'));
    const unetKeys = ldmKeyTable(layout)
      .filter((k) => k.component === 'unet')
      .map((k) => k.diffusers);
    expect(new Set(unetKeys).size).toBe(unetKeys.length);
    expect([...unetKeys].sort()).toEqual([...weights.keys()].sort());
    const rest = await readDiffusersComponents(PIPELINE);
    const single = toLdmSingleFile({ ...rest, unet: weights }, layout);
    expectSameStateDict(fromLdmSingleFile(single, layout).components.unet, weights);
  });
  it('refuses a U-Net structure single files cannot hold', () => {
    const file = path.join(FIXTURES, 'unet2dcond-classcond/config.json');
    const config = parseUNetConfig(JSON.parse(readFileSync(file, 'utf8')), file).config as UNet2DConditionConfig;
    expect(() => unetLayout(config, file)).toThrow(/unet2dcond-classcond\/config\.json: "(num_class_embeds|class_embed_type)" is .*no class embedding/);
    expect(() => unetLayout({ ...config, num_class_embeds: null, class_embed_type: null, layers_per_block: [1, 2] }, file)).toThrow(
      /one layers_per_block for every level/,
    );
  });
});
