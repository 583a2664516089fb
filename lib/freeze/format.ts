/** The freeze plan as the text `--dry-run` prints: rules, a per-block table, parameter groups, memory. */
import type { FreezePlan } from './plan';

export function formatPlan(plan: FreezePlan): string {
  const t = plan.totals;
  const lines: string[] = [];
  lines.push(
    `Freeze plan (preset "${plan.preset}"): ${count(t.trainableNumel)} of ${count(t.numel)} parameters train (${percent(t.trainableNumel, t.numel)}), ` +
      `${t.trainableTensors} of ${t.tensors} tensors; ${count(t.frozenNumel)} frozen in ${t.frozenTensors} tensors`,
  );

  if (plan.rules.length > 0) {
    lines.push('', 'Rules, applied in order from all-frozen (the last match wins):');
    lines.push(
      ...table(
        [['action', 'pattern', 'from', 'matched'], ...plan.rules.map((r) => [r.action, r.pattern, r.where, String(r.matched)])],
        [false, false, false, true],
      ),
    );
  }

  lines.push('', 'Blocks:');
  lines.push(
    ...table(
      [
        ['block', 'trainable', 'total', '%', 'tensors'],
        ...plan.blocks.map((b) => [b.block, count(b.trainableNumel), count(b.numel), percent(b.trainableNumel, b.numel), `${b.trainableTensors}/${b.tensors}`]),
        ['total', count(t.trainableNumel), count(t.numel), percent(t.trainableNumel, t.numel), `${t.trainableTensors}/${t.tensors}`],
      ],
      [false, true, true, true, true],
    ),
  );

  if (plan.groups.length > 0) {
    lines.push('', 'Optimizer parameter groups:');
    lines.push(
      ...table(
        [
          ['lr ×', 'weight decay', 'tensors', 'parameters'],
          ...plan.groups.map((g) => [String(g.lrMultiplier), g.weightDecay ? 'yes' : 'no', String(g.tensors), count(g.numel)]),
        ],
        [true, false, true, true],
      ),
    );
  }

  const m = plan.memory;
  lines.push(
    '',
    `Memory: gradients ${bytes(m.gradientBytes)} (fp32), AdamW moments ${bytes(m.adamBytes)} (2 × fp32)` +
      (m.ema ? `, EMA ${bytes(m.emaBytes)} (fp32)` : ', no EMA') +
      ` → optimizer state ${bytes(m.optimizerStateBytes)}`,
  );
  for (const note of plan.notes) lines.push(`Note: ${note}`);
  return lines.join('\n');
}

function table(rows: readonly (readonly string[])[], rightAligned: readonly boolean[]): string[] {
  const widths = rightAligned.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)));
  return rows.map(
    (row) =>
      '  ' +
      row
        .map((cell, c) => (rightAligned[c] === true ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0)))
        .join('  ')
        .trimEnd(),
  );
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function percent(part: number, whole: number): string {
  return whole === 0 ? '-' : `${((100 * part) / whole).toFixed(2)}%`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}
