import { ConfigError } from '../errors';

/**
 * Recipe field paths as a reader writes them: `freeze.trainable[2]`, `freeze.lrMultipliers["up_blocks.**"]`.
 * Keys that are not plain identifiers are quoted, so a dotted pattern used as a key stays one key.
 */
export function formatFieldPath(where: string, path: readonly (string | number)[]): string {
  let out = where;
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)) out += out.length === 0 ? key : `.${key}`;
    else out += `[${JSON.stringify(key)}]`;
  }
  return out;
}

/** Keys through which a property walk reaches a prototype (`__proto__` → Object.prototype; `constructor.prototype` too). */
const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Refuses a user-given key path that names a prototype key anywhere: setting through it would change
 * every object in the process (prototype pollution). No recipe or config field has such a name.
 */
export function refusePrototypeKeys(path: readonly (string | number)[], where: string): void {
  const bad = path.filter((key): key is string => typeof key === 'string' && PROTOTYPE_KEYS.has(key));
  if (bad.length === 0) return;
  throw new ConfigError(
    `${where}: expected field names but found ${[...new Set(bad)].map((k) => `"${k}"`).join(', ')}, which would reach Object.prototype; these keys are refused`,
  );
}
