/** metrics.jsonl: one JSON object per line (training loss per step, held-out loss when measured). */
import { promises as fs } from 'fs';
import * as path from 'path';

export class MetricsLog {
  constructor(readonly file: string) {}

  async write(entry: Record<string, number | boolean | string>): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    await fs.appendFile(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
  }
}
