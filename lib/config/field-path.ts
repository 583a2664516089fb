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
