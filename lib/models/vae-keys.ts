/**
 * Older diffusers-format VAE checkpoints name the mid-block attention weights `query`, `key`, `value`
 * and `proj_attn`; diffusers renames them to `to_q`, `to_k`, `to_v` and `to_out.0` when loading. Pure.
 */
import { ConfigError } from '../errors';

const LEGACY = /^(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$/;
const CURRENT: Record<string, string> = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' };

/** The current name of a VAE state-dict key (unchanged unless it is a legacy attention key). */
export function currentVaeKey(name: string): string {
  const m = LEGACY.exec(name);
  return m === null ? name : `${m[1]}.${CURRENT[m[2]!]}.${m[3]}`;
}

/** The same entries under current names (the tensors are not copied); a name given twice, old and new, is an error. */
export function renameLegacyVaeKeys<T>(weights: ReadonlyMap<string, T>, source: string): Map<string, T> {
  const out = new Map<string, T>();
  for (const [name, value] of weights) {
    const key = currentVaeKey(name);
    if (out.has(key)) throw new ConfigError(`${source}: "${key}" is given twice (under its current and its legacy name)`);
    out.set(key, value);
  }
  return out;
}
