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
