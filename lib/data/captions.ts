/** Caption policy per sample: pick one of several, shuffle tags (kohya), drop to "" (classifier-free guidance). */
import type { Rng } from './random';

export interface CaptionOptions {
  readonly captionDropout: number;
  readonly shuffleCaption: boolean;
  readonly keepTokens: number;
}

/**
 * kohya's shuffle_caption with keep_tokens: comma-separated tags, the first `keep` stay in place,
 * the rest are shuffled; joined with ", ".
 */
export function shuffleTags(caption: string, keep: number, rng: Rng): string {
  const tags = caption
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  const fixed = tags.slice(0, keep);
  const rest = tags.slice(keep);
  for (let i = rest.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [rest[i], rest[j]] = [rest[j]!, rest[i]!];
  }
  return [...fixed, ...rest].join(', ');
}

/** The caption of one sample from its candidates and three independent generators. */
export function sampleCaption(candidates: readonly string[], options: CaptionOptions, pick: Rng, shuffle: Rng, dropout: Rng): string {
  // Each choice draws from its own stream, so turning one option on never changes the others' draws.
  const chosen = candidates.length === 1 ? candidates[0]! : candidates[pick.int(candidates.length)]!;
  const dropped = options.captionDropout > 0 && dropout.float() < options.captionDropout;
  if (dropped) return '';
  return options.shuffleCaption ? shuffleTags(chosen, options.keepTokens, shuffle) : chosen;
}

/**
 * Each held-out sample's caption swapped for one of another caption set (another class): sample k gets the
 * caption drawn for the first sample after it, cyclically, whose caption candidates differ from its own.
 * The held-out loss with these beside the one with the right captions says how much the captions steer a
 * text-to-image model (validation.wrongCaptions). `candidates` are the samples' caption lists (null: the
 * sample had none of its own). undefined when every sample has the same candidates: no other caption set.
 */
export function mismatchedCaptions(captions: readonly string[], candidates: ReadonlyArray<readonly string[] | null>): string[] | undefined {
  const keys = candidates.map((c) => JSON.stringify(c));
  // With two caption sets or more, every sample finds one of another set.
  if (new Set(keys).size < 2) return undefined;
  return captions.map((_, k) => {
    let j = (k + 1) % captions.length;
    while (keys[j] === keys[k]) j = (j + 1) % captions.length;
    return captions[j]!;
  });
}
