// README.md's table of contents and links stay true, and the blocks the scripts rewrite are still there.
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const prose = readme.replace(/```[\s\S]*?```/g, '');

/** GitHub's heading anchor: lower case, punctuation other than - and _ dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

const headings = [...prose.matchAll(/^(#{2,3}) (.+)$/gm)].map((m) => ({ level: m[1]!.length, anchor: slug(m[2]!) }));

test('every #anchor link names a heading, and the contents list every section', () => {
  const anchors = new Set(headings.map((h) => h.anchor));
  const links = [...prose.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
  expect(links.filter((l) => !anchors.has(l))).toEqual([]);
  const contents = /^\*\*Contents:\*\*([\s\S]*?)\n\n/m.exec(readme)?.[1] ?? '';
  const listed = new Set([...contents.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!));
  expect(headings.filter((h) => !listed.has(h.anchor)).map((h) => h.anchor)).toEqual([]);
});

test('links to files in the repository point at files that exist', () => {
  const files = [...prose.matchAll(/\]\(((?:docs|lib|recipes|scripts|test)\/[^)#]+)\)/g)].map((m) => m[1]!);
  expect(files.length).toBeGreaterThan(0);
  expect(files.filter((f) => !fs.existsSync(path.join(ROOT, f)))).toEqual([]);
});

// npm run bench -- --readme, npm run demo -- --readme (with --t2i: demo-t2i) and npm run transfer-study -- --readme (with --data-sizes: data-efficiency) rewrite these.
test.each(['bench', 'demo', 'demo-t2i', 'transfer-study', 'data-efficiency', 'lora-preset-search'])('the %s block is in README.md once', (name) => {
  expect(readme.split(`<!-- ${name}:begin -->`).length).toBe(2);
  expect(readme.indexOf(`<!-- ${name}:begin -->`)).toBeLessThan(readme.indexOf(`<!-- ${name}:end -->`));
});
