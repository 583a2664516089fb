/**
 * Reading one model config.json object against a zod object schema, for every model config: the
 * object check, issues as "file: "key": message (found value)" lines, and the keys the schema does not
 * know. Pure.
 */
import type { z } from 'zod';
import { ConfigError } from '../errors';
import { formatFieldPath } from './field-path';

/** `raw` as an object, or a ConfigError naming `file`. */
export function expectConfigObject(raw: unknown, file: string): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${file}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

function formatIssue(file: string, issue: z.ZodIssue, raw: Record<string, unknown>): string {
  const key = issue.path.join('.');
  const value = issue.path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined), raw);
  return `${file}: "${key}": ${issue.message} (found ${JSON.stringify(value)})`;
}

/** `obj` parsed by `schema` (defaults filled in); every issue becomes one line of one ConfigError. */
export function parseConfigObject<S extends z.AnyZodObject>(schema: S, obj: Record<string, unknown>, file: string): z.infer<S> {
  const result = schema.safeParse(obj);
  if (!result.success) throw new ConfigError(result.error.issues.map((i) => formatIssue(file, i, obj)).join('\n'));
  return result.data;
}

/** The keys of `obj` that neither `schema` nor `bookkeeping` knows, and their values in file order. */
export function unknownConfigKeys(
  schema: z.AnyZodObject,
  obj: Record<string, unknown>,
  bookkeeping: ReadonlySet<string>,
): { unknownKeys: string[]; extra: Record<string, unknown> } {
  const known = new Set(Object.keys(schema.shape as Record<string, unknown>));
  const unknownKeys = Object.keys(obj).filter((k) => !known.has(k) && !bookkeeping.has(k));
  return { unknownKeys, extra: Object.fromEntries(unknownKeys.map((k) => [k, obj[k]])) };
}

/**
 * `value` parsed by `schema`; the first issue becomes a ConfigError "file noun "a.b[0]": message" (no
 * noun and path when the issue is at the root).
 */
export function parseWithSchema<S extends z.ZodTypeAny>(schema: S, value: unknown, file: string, noun = 'field'): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = formatFieldPath('', issue.path);
    throw new ConfigError(`${file}${where === '' ? '' : ` ${noun} "${where}"`}: ${issue.message}`);
  }
  // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- z.infer of a generic schema is `any` inside the generic; callers see z.infer<S>
  return result.data;
}
