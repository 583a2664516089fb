/**
 * Text files that should be UTF-8 (captions, metadata.jsonl). Node's 'utf8' decoding turns invalid
 * bytes into U+FFFD without a word, so a caption saved as Latin-1 or UTF-16 trains on garbage; this
 * decodes the same way but says where the first invalid byte is.
 */

const strict = new TextDecoder('utf-8', { fatal: true });
const lossy = new TextDecoder('utf-8');

/**
 * `bytes` as text (a leading BOM dropped). Invalid UTF-8 decodes with U+FFFD replacements, as
 * readFile(file, 'utf8') would, and `onInvalid` gets a sentence naming `file` and the first bad byte.
 */
export function decodeUtf8(bytes: Uint8Array, file: string, onInvalid: (message: string) => void): string {
  try {
    return strict.decode(bytes);
  } catch {
    const text = lossy.decode(bytes);
    const index = text.indexOf('\uFFFD');
    const before = index < 0 ? text : text.slice(0, index);
    const byte = Buffer.byteLength(before, 'utf8') + (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0);
    const line = before.split('\n').length;
    const utf16 = (bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff) ? ' (it starts like UTF-16)' : '';
    onInvalid(
      `${file} is not valid UTF-8${utf16}: byte ${byte} (line ${line}) and any other invalid bytes were read as U+FFFD (\uFFFD); save the file as UTF-8`,
    );
    return text;
  }
}
