/**
 * A JSON parser that behaves like JSON.parse, plus what JSON.parse cannot do: report positions as
 * line:column, see duplicate object keys (JSON.parse silently keeps the last one), and optionally
 * accept the bare tokens Infinity, -Infinity and NaN that Python's json module writes.
 *
 * Why not a library: json5 (the maintained parser that reads NaN and ±Infinity, checked at 2.2.3) reads
 * a superset of what Python's json.loads accepts, and a config or safetensors reader must refuse what
 * diffusers would refuse. json5 silently accepts comments, trailing commas, single quotes, unquoted keys,
 * hex and `+1` / `.5` / `1.` numbers, `+Infinity` and `-NaN`, `\x41` escapes, raw tabs and line
 * continuations inside strings, and U+00A0 as whitespace (test/unit/config-json.test.ts's "rejects"
 * cases fail on it); it has no strict mode. It also keeps the last of duplicate keys without telling,
 * and the safetensors header must reject a duplicate tensor name (`onDuplicateKey`), and it has no depth
 * bound for untrusted headers (`maxDepth`). Line:column positions and big integers (rounded to a double,
 * as JSON.parse does) are the same in both.
 */
import { ConfigError } from '../errors';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface JsonParseOptions {
  /** Accept Infinity, -Infinity and NaN outside strings (Python-style JSON). Default false. */
  readonly allowNonFinite?: boolean;
  /**
   * Called when an object repeats a key, before the later value replaces the earlier one. `path` holds
   * the keys (and array indices as strings) from the root to the object. It may throw to reject the
   * text; if it returns, the last value wins as in JSON.parse.
   */
  readonly onDuplicateKey?: (key: string, path: readonly string[], offset: number) => void;
  /** Deepest nesting of arrays and objects accepted, so hostile input cannot exhaust the stack. Default 512. */
  readonly maxDepth?: number;
}

/** Malformed JSON. `reason` has no position; `message` adds `at line L, column C`. */
export class JsonSyntaxError extends ConfigError {
  readonly reason: string;
  /** 0-based index into the text (UTF-16 code units). */
  readonly offset: number;
  /** 1-based. */
  readonly line: number;
  /** 1-based, in UTF-16 code units. */
  readonly column: number;
  constructor(reason: string, text: string, offset: number) {
    const { line, column } = lineColumn(text, offset);
    super(`${reason} at line ${line}, column ${column}`);
    this.reason = reason;
    this.offset = offset;
    this.line = line;
    this.column = column;
  }
}

export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line += 1;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

export function parseJson(text: string, options: JsonParseOptions = {}): JsonValue {
  return new Parser(text, options).parseDocument();
}

class Parser {
  private pos = 0;
  private readonly path: string[] = [];
  private readonly allowNonFinite: boolean;
  private readonly maxDepth: number;

  constructor(
    private readonly text: string,
    private readonly options: JsonParseOptions,
  ) {
    this.allowNonFinite = options.allowNonFinite ?? false;
    this.maxDepth = options.maxDepth ?? 512;
  }

  parseDocument(): JsonValue {
    this.skipWhitespace();
    const value = this.parseValue(0);
    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail(`Unexpected ${this.describeHere()} after the end of the JSON value`);
    return value;
  }

  private fail(reason: string, offset = this.pos): never {
    throw new JsonSyntaxError(reason, this.text, offset);
  }

  private describeHere(): string {
    if (this.pos >= this.text.length) return 'end of input';
    const code = this.text.codePointAt(this.pos) as number;
    const char = String.fromCodePoint(code);
    return code < 0x20 || code === 0x7f ? `character U+${code.toString(16).padStart(4, '0').toUpperCase()}` : `"${char}"`;
  }

  private skipWhitespace(): void {
    const text = this.text;
    let pos = this.pos;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos += 1;
      else break;
    }
    this.pos = pos;
  }

  private parseValue(depth: number): JsonValue {
    const c = this.text.charCodeAt(this.pos);
    switch (c) {
      case 0x7b /* { */:
        return this.parseObject(depth + 1);
      case 0x5b /* [ */:
        return this.parseArray(depth + 1);
      case 0x22 /* " */:
        return this.parseString();
      case 0x74 /* t */:
        return this.parseWord('true', true);
      case 0x66 /* f */:
        return this.parseWord('false', false);
      case 0x6e /* n */:
        return this.parseWord('null', null);
      case 0x4e /* N */:
        if (this.allowNonFinite) return this.parseWord('NaN', NaN);
        break;
      case 0x49 /* I */:
        if (this.allowNonFinite) return this.parseWord('Infinity', Infinity);
        break;
      case 0x2d /* - */:
        if (this.allowNonFinite && this.text.charCodeAt(this.pos + 1) === 0x49) {
          this.pos += 1;
          return -this.parseWord('Infinity', Infinity);
        }
        return this.parseNumber();
      default:
        if (c >= 0x30 && c <= 0x39) return this.parseNumber();
    }
    return this.fail(`Unexpected ${this.describeHere()}, expected a JSON value`);
  }

  private parseWord<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.fail(`Unexpected ${this.describeHere()}, expected ${word}`);
    this.pos += word.length;
    return value;
  }

  private parseNumber(): number {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (match === null) return this.fail(`Malformed number starting with ${this.describeHere()}`);
    this.pos += match[0].length;
    return Number(match[0]);
  }

  private parseString(): string {
    const text = this.text;
    const start = this.pos;
    let pos = start + 1;
    let out = '';
    let chunkStart = pos;
    for (;;) {
      if (pos >= text.length) this.fail('Unterminated string', start);
      const c = text.charCodeAt(pos);
      if (c === 0x22) break;
      if (c < 0x20) {
        this.pos = pos;
        this.fail(`Unexpected ${this.describeHere()} inside a string (control characters must be escaped)`);
      }
      if (c !== 0x5c) {
        pos += 1;
        continue;
      }
      out += text.slice(chunkStart, pos);
      const escape = text.charCodeAt(pos + 1);
      switch (escape) {
        case 0x22:
          out += '"';
          break;
        case 0x5c:
          out += '\\';
          break;
        case 0x2f:
          out += '/';
          break;
        case 0x62:
          out += '\b';
          break;
        case 0x66:
          out += '\f';
          break;
        case 0x6e:
          out += '\n';
          break;
        case 0x72:
          out += '\r';
          break;
        case 0x74:
          out += '\t';
          break;
        case 0x75 /* u */: {
          const hex = text.slice(pos + 2, pos + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('Bad \\u escape in string, expected 4 hex digits', pos);
          out += String.fromCharCode(parseInt(hex, 16));
          pos += 4;
          break;
        }
        default:
          this.fail('Bad escape in string', pos);
      }
      pos += 2;
      chunkStart = pos;
    }
    out += text.slice(chunkStart, pos);
    this.pos = pos + 1;
    return out;
  }

  private enter(depth: number): void {
    if (depth > this.maxDepth) this.fail(`Nesting deeper than ${this.maxDepth} levels`);
  }

  private parseArray(depth: number): JsonValue[] {
    this.enter(depth);
    this.pos += 1;
    const out: JsonValue[] = [];
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x5d) {
      this.pos += 1;
      return out;
    }
    for (;;) {
      this.path.push(String(out.length));
      out.push(this.parseValue(depth));
      this.path.pop();
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x5d) {
        this.pos += 1;
        return out;
      }
      if (c !== 0x2c) this.fail(`Unexpected ${this.describeHere()}, expected "," or "]"`);
      this.pos += 1;
      this.skipWhitespace();
    }
  }

  private parseObject(depth: number): { [key: string]: JsonValue } {
    this.enter(depth);
    this.pos += 1;
    const out: { [key: string]: JsonValue } = {};
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos += 1;
      return out;
    }
    for (;;) {
      if (this.text.charCodeAt(this.pos) !== 0x22) this.fail(`Unexpected ${this.describeHere()}, expected a string key`);
      const keyOffset = this.pos;
      const key = this.parseString();
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== 0x3a) this.fail(`Unexpected ${this.describeHere()}, expected ":"`);
      this.pos += 1;
      this.skipWhitespace();
      if (Object.hasOwn(out, key)) this.options.onDuplicateKey?.(key, [...this.path], keyOffset);
      this.path.push(key);
      const value = this.parseValue(depth);
      this.path.pop();
      // defineProperty so that a "__proto__" key becomes an own property, as with JSON.parse.
      Object.defineProperty(out, key, { value, writable: true, enumerable: true, configurable: true });
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x7d) {
        this.pos += 1;
        return out;
      }
      if (c !== 0x2c) this.fail(`Unexpected ${this.describeHere()}, expected "," or "}"`);
      this.pos += 1;
      this.skipWhitespace();
    }
  }
}
