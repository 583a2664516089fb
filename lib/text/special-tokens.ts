/**
 * Cutting special tokens out of a text before BPE, as transformers' slow tokenizers do: every
 * occurrence of an added token's text becomes that token (leftmost, longest first), and the pieces
 * between are tokenized separately. lstrip / rstrip / single_word act as in transformers. Pure.
 */

export interface AddedToken {
  readonly content: string;
  readonly id: number;
  /** Eat the whitespace on the left of the token. */
  readonly lstrip: boolean;
  /** Eat the whitespace on the right of the token. */
  readonly rstrip: boolean;
  /** Only a token when it stands alone (not glued to a word). */
  readonly singleWord: boolean;
}

/** Splits `text` at every occurrence of a token of `tokens` (which are keyed by content). */
export function splitOnAddedTokens(text: string, tokens: ReadonlyMap<string, AddedToken>): string[] {
  if (tokens.size === 0 || text.length === 0) return [text];
  const contents = [...tokens.keys()].sort((a, b) => b.length - a.length);
  const pieces: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length;) {
    const match = contents.find((c) => text.startsWith(c, i));
    if (match === undefined) {
      i += 1;
      continue;
    }
    if (i > start) pieces.push(text.slice(start, i));
    pieces.push(match);
    i += match.length;
    start = i;
  }
  if (start < text.length) pieces.push(text.slice(start));

  for (let i = 0; i < pieces.length; i++) {
    const token = tokens.get(pieces[i]!);
    if (token === undefined) continue;
    const left = i > 0 ? pieces[i - 1]! : '';
    const right = i + 1 < pieces.length ? pieces[i + 1]! : '';
    if (token.rstrip && right !== '') pieces[i + 1] = right.trimStart();
    if (token.lstrip && left !== '') pieces[i - 1] = left.trimEnd();
    if (token.singleWord && left !== '' && !left.endsWith(' ')) {
      pieces[i - 1] = pieces[i - 1]! + pieces[i]!;
      pieces[i] = '';
    } else if (token.singleWord && right !== '' && !right.startsWith(' ')) {
      pieces[i] = pieces[i]! + pieces[i + 1]!;
      pieces[i + 1] = '';
    }
  }
  return pieces.filter((p) => p !== '');
}
