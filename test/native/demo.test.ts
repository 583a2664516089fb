// The transfer demo end to end at a tiny budget: every output is written and summary.json holds the
// fields the README promises. (The full demo, npm run demo, runs the real budget.)
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { demoSummarySchema, runTransferDemo } from '../../lib/demo/transfer-demo';
import { expectReportRenders, hasChromium } from '../helpers/report-render';
import { loadUNet } from '../../lib/models/unet';

const BASE = path.join(__dirname, '..', '..', 'models', 'mnist-ddpm');

test('runTransferDemo writes the fine-tuned folder, grids, curves, report.html and summary.json', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-demo-'));
  try {
    const summary = await runTransferDemo({ out, base: BASE, steps: 4, trainImages: 32, heldOut: 8, batchSize: 8 });
    for (const f of [
      'samples-base.png',
      'samples-finetuned.png',
      'samples-scratch.png',
      'loss.png',
      'loss.svg',
      'report.html',
      'summary.json',
      'finetuned/model_index.json',
    ]) {
      expect([f, fs.existsSync(path.join(out, f))]).toEqual([f, true]);
    }
    using unet = await loadUNet(path.join(out, 'finetuned', 'unet'));
    expect(unet.config.in_channels).toBe(1);
    const meta = await sharp(path.join(out, 'samples-finetuned.png')).metadata();
    expect(meta.width).toBeGreaterThan(8 * 28);
    const saved = demoSummarySchema.parse(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')));
    expect(saved).toEqual(JSON.parse(JSON.stringify(summary)));
    expect(saved.trainableParams).toBe(saved.totalParams);
    expect(saved.curves.finetuned[0]).toEqual({ step: 0, loss: saved.heldOutLoss.base });
    expect(saved.curves.finetuned.at(-1)!.step).toBe(4);
    expect(summary.seconds).toBeGreaterThan(0);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain('src="samples-finetuned.png"');
    expect(html).toContain('src="loss.png"');
    if (hasChromium()) await expectReportRenders(path.join(out, 'report.html'), path.join(out, 'report.png'));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
