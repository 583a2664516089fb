/**
 * Python's math.fsum: the correctly rounded sum of doubles (Shewchuk's exact partials, then the
 * round-half-even correction of the final step), so sums computed here equal the manifest's bit for bit.
 */
export class FSum {
  private partials = new Float64Array(32);
  private count = 0;
  private special = 0;

  // No globals (Math.abs, Number.isFinite) in here: under jest's vm context each global lookup is
  // slow enough to make this loop ten times slower.
  add(value: number): void {
    if (!(value - value === 0)) {
      // inf or NaN. Python raises on inf - inf; plain addition gives NaN, which a comparison reports.
      this.special += value;
      return;
    }
    const partials = this.partials;
    const n = this.count;
    let x = value;
    let i = 0;
    for (let j = 0; j < n; j++) {
      let y = partials[j] as number;
      if ((x < 0 ? -x : x) < (y < 0 ? -y : y)) {
        const t = x;
        x = y;
        y = t;
      }
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[i++] = lo;
      x = hi;
    }
    if (i === partials.length) {
      const grown = new Float64Array(partials.length * 2);
      grown.set(partials);
      this.partials = grown;
    }
    this.partials[i] = x;
    this.count = i + 1;
  }

  value(): number {
    if (this.special !== 0 || Number.isNaN(this.special)) return this.special;
    const partials = this.partials;
    let n = this.count;
    if (n === 0) return 0;
    n -= 1;
    let hi = partials[n] as number;
    let lo = 0;
    while (n > 0) {
      const x = hi;
      n -= 1;
      const y = partials[n] as number;
      hi = x + y;
      const yr = hi - x;
      lo = y - yr;
      if (lo !== 0) break;
    }
    if (n > 0 && ((lo < 0 && (partials[n - 1] as number) < 0) || (lo > 0 && (partials[n - 1] as number) > 0))) {
      const y = lo * 2;
      const x = hi + y;
      const yr = x - hi;
      if (y === yr) hi = x;
    }
    return hi;
  }
}

export function fsum(values: Iterable<number>): number {
  const acc = new FSum();
  for (const v of values) acc.add(v);
  return acc.value();
}
