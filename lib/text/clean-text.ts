/**
 * The text clean-up transformers' Python CLIPTokenizer runs when `ftfy` is not installed: its
 * BasicTokenizer with strip_accents=False and do_split_on_punc=False (see the fixtures' README,
 * "The CLIP tokenizer", step 2). Pure.
 */

/** Unicode category C (Cc, Cf, Cs, Co, Cn): dropped, except \t \n \r. */
const CONTROL = /^\p{C}$/u;
/** What BasicTokenizer counts as whitespace: space, \t, \n, \r and category Zs. */
const WHITESPACE = /^[ \t\n\r\p{Zs}]$/u;
/**
 * What Python's str.split() splits on (str.isspace). After cleaning only " ", U+2028 and U+2029 can
 * remain of these; the others are listed so the split stays Python's whatever comes in.
 */
// eslint-disable-next-line no-control-regex -- Python's str.isspace() counts these control characters as whitespace
const PY_WHITESPACE_RUN = /[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** CJK Unified Ideographs and their extensions and compatibility blocks (not kana, not hangul). */
export function isCjkIdeograph(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** Python's `text.strip().split()`: the non-empty runs between whitespace. */
export function splitPythonWhitespace(text: string): string[] {
  return text.split(PY_WHITESPACE_RUN).filter((word) => word.length > 0);
}

/**
 * Cleans one piece of text (a stretch between special tokens): drops NUL, U+FFFD and category C
 * characters other than \t \n \r; turns whitespace into spaces; puts spaces around CJK ideographs;
 * NFC-normalises; splits on whitespace, lower-cases each word and joins them with single spaces.
 * Accents and punctuation stay.
 */
export function cleanText(text: string): string {
  let cleaned = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd) continue;
    if (ch !== '\t' && ch !== '\n' && ch !== '\r' && CONTROL.test(ch)) continue;
    if (WHITESPACE.test(ch)) cleaned += ' ';
    else if (isCjkIdeograph(cp)) cleaned += ` ${ch} `;
    else cleaned += ch;
  }
  const words = splitPythonWhitespace(cleaned.normalize('NFC')).map((word) => word.toLowerCase());
  // BasicTokenizer splits once more after lower-casing (a lower-cased word cannot gain whitespace).
  return splitPythonWhitespace(words.join(' ')).join(' ');
}
