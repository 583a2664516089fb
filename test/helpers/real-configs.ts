/**
 * The real Stable Diffusion configs of test/fixtures/real-configs, and the same configs made narrow for
 * fast tests: every level, block, layer and option kept (so every tensor name and the v-prediction /
 * upcast_attention / sample_size settings are the real ones), only widths cut (channels, heads, hidden
 * sizes). The tokenizer and vocabulary are the real ones.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

export const REAL_CONFIGS = path.join(__dirname, '..', 'fixtures', 'real-configs');
export type RealConfigName = 'sd-v1-5' | 'sd-v2-1' | 'sd-v2-1-base';

function edit(file: string, changes: Record<string, unknown>): void {
  writeFileSync(file, `${JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), ...changes }, null, 2)}\n`);
}

/** Writes `name`'s config folder to `dir` with widths cut: U-Net [16, 32, 64, 64] (GroupNorm of 8 groups), VAE [16, 32, 64, 64], text encoder 32 wide. */
export function writeNarrowRealConfig(name: RealConfigName, dir: string): string {
  cpSync(path.join(REAL_CONFIGS, name), dir, { recursive: true });
  const sd2 = name !== 'sd-v1-5';
  edit(path.join(dir, 'unet', 'config.json'), {
    block_out_channels: [16, 32, 64, 64],
    norm_num_groups: 8,
    // SD 1.5: 8 heads everywhere; SD 2.x: 5, 10, 20, 20 heads of 64 — here 2, 4, 8, 8 heads of 8.
    attention_head_dim: sd2 ? [2, 4, 8, 8] : 8,
    cross_attention_dim: 32,
  });
  edit(path.join(dir, 'vae', 'config.json'), { block_out_channels: [16, 32, 64, 64], norm_num_groups: 16 });
  edit(path.join(dir, 'text_encoder', 'config.json'), { hidden_size: 32, intermediate_size: 64, num_attention_heads: 4, projection_dim: 32 });
  return dir;
}
