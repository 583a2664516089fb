/**
 * The conformance runners for tokenizer_encode and single_file_load (pure TypeScript): every case of
 * clip-tokenizer-tiny and sd-singlefile-tiny passes through the default registry, and a tampered copy
 * of each set fails.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CaseRegistry } from '../../../lib/conformance/registry';
import { defaultRegistry } from '../../../lib/conformance/default-registry';
import { runFixtureSet } from '../../../lib/conformance/run';
import { registerSingleFileCases } from '../../../lib/conformance/single-file-cases';
import { registerTokenizerCases } from '../../../lib/conformance/tokenizer-cases';
import { useTempDir } from '../../helpers/temp-dir';

const FIXTURES = path.join(__dirname, '../../fixtures/diffusers');
const registry = (): CaseRegistry => registerSingleFileCases(registerTokenizerCases(new CaseRegistry()));

describe('conformance: tokenizer and single-file cases', () => {
  const tmp = useTempDir('text-conformance');

  it('the default registry runs both case types', () => {
    expect(defaultRegistry().types).toEqual(expect.arrayContaining(['tokenizer_encode', 'single_file_load']));
  });

  it('passes every clip-tokenizer-tiny case, checking every prompt', async () => {
    const report = await runFixtureSet(path.join(FIXTURES, 'clip-tokenizer-tiny'), registry());
    expect(report.cases.map((c) => [c.name, c.status])).toEqual([
      ['encode_max_length', 'pass'],
      ['encode_max_length_pad_override', 'pass'],
      ['encode_no_padding', 'pass'],
    ]);
    const ids = (name: string): number => report.cases.find((c) => c.name === name)!.checks.filter((k) => k.name.endsWith('/input_ids')).length;
    expect([ids('encode_max_length'), ids('encode_max_length_pad_override'), ids('encode_no_padding')]).toEqual([13, 13, 13]);
  });

  it('passes sd-singlefile-tiny with every weight bit for bit', async () => {
    const report = await runFixtureSet(path.join(FIXTURES, 'sd-singlefile-tiny'), registry());
    const [only] = report.cases;
    expect(only!.status).toBe('pass');
    expect(only!.checks.map((c) => c.name)).toEqual([
      'expected_diffusers_keys',
      'ignored_keys',
      'unet/keys',
      'unet/weights',
      'vae/keys',
      'vae/weights',
      'text_encoder/keys',
      'text_encoder/weights',
    ]);
    expect(only!.checks.every((c) => c.rel === 0)).toBe(true);
  });

  it('fails a tokenizer whose merges differ', async () => {
    const dir = path.join(tmp(), 'clip-tokenizer-tiny');
    cpSync(path.join(FIXTURES, 'clip-tokenizer-tiny'), dir, { recursive: true });
    const merges = readFileSync(path.join(dir, 'merges.txt'), 'utf8').split('\n');
    writeFileSync(path.join(dir, 'merges.txt'), [merges[0], ...merges.slice(2)].join('\n')); // drop the first merge
    const report = await runFixtureSet(dir, registry());
    expect(report.cases.every((c) => c.status === 'fail')).toBe(true);
  });

  it('fails a single file whose expected key table differs', async () => {
    const set = path.join(tmp(), 'sd-singlefile-tiny');
    cpSync(path.join(FIXTURES, 'sd-singlefile-tiny'), set, { recursive: true });
    cpSync(path.join(FIXTURES, 'sd-pipeline-tiny'), path.join(tmp(), 'sd-pipeline-tiny'), { recursive: true });
    const cases = JSON.parse(readFileSync(path.join(set, 'cases.json'), 'utf8')) as {
      cases: Array<{ expected_diffusers_keys: Record<string, { key: string }> }>;
    };
    cases.cases[0]!.expected_diffusers_keys['model.diffusion_model.out.2.weight']!.key = 'conv_norm_out.weight';
    writeFileSync(path.join(set, 'cases.json'), JSON.stringify(cases));
    const report = await runFixtureSet(set, registry());
    expect(report.cases[0]!.status).toBe('fail');
    expect(report.cases[0]!.worst!.name).toBe('expected_diffusers_keys');
  });
});
