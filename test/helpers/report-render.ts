import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import sharp from 'sharp';

const ROOT = path.join(__dirname, '..', '..');

/** Debian's `chromium` is on PATH (the Chromium checks skip without it). */
export function hasChromium(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v chromium'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `test` where Chromium is installed, `test.skip` elsewhere. */
export const testWithChromium: jest.It = hasChromium() ? test : test.skip;

/**
 * Renders `reportHtml` in headless Chromium (scripts/check-report.sh, 1200×1800) into `screenshot` and
 * checks what a person would see: the page's size, and that it is not blank — the charts' coloured lines
 * (saturated pixels: max − min channel > 80) are on it, so their PNGs loaded.
 */
export async function expectReportRenders(reportHtml: string, screenshot: string): Promise<void> {
  execFileSync('bash', [path.join(ROOT, 'scripts', 'check-report.sh'), reportHtml, screenshot], { stdio: 'pipe', timeout: 90_000 });
  const { data, info } = await sharp(screenshot).raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height]).toEqual([1200, 1800]);
  let coloured = 0;
  for (let i = 0; i < data.length; i += info.channels) {
    const [r, g, b] = [data[i]!, data[i + 1]!, data[i + 2]!];
    if (Math.max(r, g, b) - Math.min(r, g, b) > 80) coloured++;
  }
  expect(coloured).toBeGreaterThan(100);
}
