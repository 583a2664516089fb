/**
 * GPT-2 / CLIP byte-level BPE alphabet: every byte maps to one printable character, so BPE works on
 * strings. The printable Latin-1 bytes ("!"…"~", "¡"…"¬", "®"…"ÿ") map to themselves; the other 68
 * bytes, in increasing order, to U+0100, U+0101, … Pure.
 */

function buildByteEncoder(): readonly string[] {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : 256 + next++);
  return table;
}

/** byte → its character in BPE strings (index 0…255). */
export const BYTE_ENCODER: readonly string[] = buildByteEncoder();

/** The UTF-8 bytes of `text` spelled in the BPE alphabet. */
export function bytesToUnicode(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) out += BYTE_ENCODER[b]!;
  return out;
}
