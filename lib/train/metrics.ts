/** metrics.jsonl: one JSON object per line (training loss per step, held-out loss when measured). */
import { promises as fs } from 'fs';
import * as path from 'path';
import { withFileErrors } from '../util/fs-errors';
import { createFolder } from '../util/output-folder';

export class MetricsLog {
  constructor(readonly file: string) {}

  async write(entry: Record<string, number | boolean | string>): Promise<void> {
    await createFolder(path.dirname(this.file));
    await withFileErrors(this.file, 'write', () => fs.appendFile(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`));
  }
}
