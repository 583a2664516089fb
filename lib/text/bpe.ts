/**
 * Byte-pair encoding of one pre-tokenized word, as CLIP's tokenizer does it: the last symbol carries
 * "</w>", and the adjacent pair with the lowest merge rank is merged everywhere (left to right, not
 * overlapping) until no adjacent pair has a rank. Pure.
 */

/** The key of a merge pair in a rank table (symbols never contain a space). */
export function pairKey(first: string, second: string): string {
  return `${first} ${second}`;
}

const END_OF_WORD = '</w>';
const CACHE_LIMIT = 50_000;

export class BytePairEncoder {
  readonly #ranks: ReadonlyMap<string, number>;
  readonly #cache = new Map<string, readonly string[]>();
  /** Words returned as they are (CLIP: `<|startoftext|>` and `<|endoftext|>`). */
  readonly #whole: ReadonlySet<string>;

  /** `ranks` maps pairKey(first, second) to the merge's rank (its line in merges.txt, from 0). */
  constructor(ranks: ReadonlyMap<string, number>, wholeWords: Iterable<string> = []) {
    this.#ranks = ranks;
    this.#whole = new Set(wholeWords);
  }

  /** The BPE symbols of `word` (already in the byte-to-unicode alphabet, non-empty). */
  encode(word: string): readonly string[] {
    if (this.#whole.has(word)) return [word];
    const cached = this.#cache.get(word);
    if (cached !== undefined) return cached;
    const symbols = this.#merge(word);
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(word, symbols);
    return symbols;
  }

  #merge(word: string): readonly string[] {
    // eslint-disable-next-line @typescript-eslint/no-misused-spread -- code points, as Python's list(word) in CLIP's BPE
    const chars = [...word];
    let symbols = chars.slice(0, -1);
    symbols.push(chars[chars.length - 1]! + END_OF_WORD);
    while (symbols.length > 1) {
      let best: [string, string] | undefined;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.#ranks.get(pairKey(symbols[i]!, symbols[i + 1]!));
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = [symbols[i]!, symbols[i + 1]!];
        }
      }
      if (best === undefined) break;
      const [first, second] = best;
      const merged: string[] = [];
      for (let i = 0; i < symbols.length;) {
        if (symbols[i] === first && i + 1 < symbols.length && symbols[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(symbols[i]!);
          i += 1;
        }
      }
      symbols = merged;
    }
    return symbols;
  }
}
