/**
 * Reading and printing the Python-style JSON that diffusers and transformers write: `json.dumps`
 * emits Infinity, -Infinity and NaN as bare tokens (DPMSolverMultistepScheduler's
 * `"lambda_min_clipped": -Infinity`), which JSON.parse rejects.
 */

import { ConfigError } from '../errors';
import { type JsonValue, JsonSyntaxError, parseJson } from '../util/json-parser';

export type { JsonValue } from '../util/json-parser';

/**
 * JSON.parse, plus the bare tokens Infinity, -Infinity and NaN outside strings. A syntax error becomes
 * a ConfigError reading `<file>:<line>:<column>: invalid JSON: <reason>`.
 */
export function parseLenientJson(text: string, file: string): JsonValue {
  try {
    return parseJson(text, { allowNonFinite: true });
  } catch (error) {
    if (error instanceof JsonSyntaxError) {
      throw new ConfigError(`${file}:${error.line}:${error.column}: invalid JSON: ${error.reason}`, { cause: error });
    }
    throw error;
  }
}

/**
 * JSON text with `indent` spaces per level, writing non-finite numbers as Python does (Infinity,
 * -Infinity, NaN) where JSON.stringify would write null; parseLenientJson reads it back. With
 * `inlineScalarArrays`, arrays without objects or arrays inside stay on one line (`[32, 64]`), which
 * keeps printed configs short; otherwise the layout is JSON.stringify's.
 */
export function formatLenientJson(value: unknown, indent = 2, inlineScalarArrays = false): string {
  return format(value, indent, '', inlineScalarArrays);
}

function format(value: unknown, indent: number, pad: string, inline: boolean): string {
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return 'NaN';
    if (value === Infinity) return 'Infinity';
    if (value === -Infinity) return '-Infinity';
    return JSON.stringify(value);
  }
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  const inner = pad + ' '.repeat(indent);
  const sep = indent > 0 ? `,\n${inner}` : ',';
  const open = indent > 0 ? `\n${inner}` : '';
  const close = indent > 0 ? `\n${pad}` : '';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (inline && value.every((item: unknown) => item === null || typeof item !== 'object')) {
      return `[${value.map((item: unknown) => format(item, 0, '', false)).join(indent > 0 ? ', ' : ',')}]`;
    }
    return `[${open}${value.map((item: unknown) => format(item, indent, inner, inline)).join(sep)}${close}]`;
  }
  const entries = Object.entries(value).filter(([, item]) => item !== undefined && typeof item !== 'function');
  if (entries.length === 0) return '{}';
  const colon = indent > 0 ? ': ' : ':';
  return `{${open}${entries.map(([key, item]) => `${JSON.stringify(key)}${colon}${format(item, indent, inner, inline)}`).join(sep)}${close}}`;
}
