// bf16 on a CPU without bf16 arithmetic is refused with the reason unless the recipe forces it; the CPU
// is judged from /proc/cpuinfo text passed in, so these tests hold on any machine. Pure.
import { checkMixedPrecision, parseRecipe } from '../../lib/config/recipe';
import { ConfigError } from '../../lib/errors';
import { prepareRecipe } from '../../lib/train/finetune';
import { cpuFlags, slowBf16Reason } from '../../lib/util/cpu';

const x86 = (flags: string) => `processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: ${flags}\nbugs\t\t: spectre_v1\n\nprocessor\t: 1\nflags\t\t: ${flags}\n`;
const AVX2 = x86('fpu sse sse2 avx avx2 fma');
const AVX512 = x86('fpu sse2 avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni');
const COOPER_LAKE = x86('fpu sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16');
const SAPPHIRE_RAPIDS = x86('fpu avx2 avx512f amx_bf16 amx_tile amx_int8');
const ARM_BF16 = 'processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes sve bf16 i8mm\n';
const ARM_PLAIN = 'processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32\n';

test('the flags come from the first processor: x86 "flags", Arm "Features"', () => {
  expect(cpuFlags(COOPER_LAKE).has('avx512_bf16')).toBe(true);
  expect(cpuFlags(ARM_BF16).has('bf16')).toBe(true);
  expect(cpuFlags('').size).toBe(0);
});

test.each([
  ['AVX2 only', AVX2, /avx512_bf16\/amx_bf16 absent from \/proc\/cpuinfo's flags\); bf16 would be emulated ~20-30× slower than float32/],
  ['AVX-512 without BF16', AVX512, /avx512_bf16\/amx_bf16 absent .*emulated ~1\.5-3× slower than float32/],
  ['Arm without BF16', ARM_PLAIN, /\(bf16 absent from/],
])('%s has no bf16 arithmetic', (_cpu, cpuinfo, reason) => {
  expect(slowBf16Reason(cpuinfo)).toMatch(reason);
});

test.each([
  ['AVX-512-BF16', COOPER_LAKE],
  ['AMX-BF16', SAPPHIRE_RAPIDS],
  ['Arm BF16', ARM_BF16],
  ['no /proc/cpuinfo (nothing refused on a guess)', ''],
])('%s: bf16 is not refused', (_cpu, cpuinfo) => {
  expect(slowBf16Reason(cpuinfo)).toBeNull();
});

test.each([
  ['ONEDNN_MAX_CPU_ISA', 'AVX2'],
  ['ONEDNN_MAX_CPU_ISA', 'avx512_core'],
  ['DNNL_MAX_CPU_ISA', 'SSE41'],
])('%s=%s caps oneDNN below bf16: refused even on a CPU with AVX-512-BF16', (name, cap) => {
  expect(slowBf16Reason(COOPER_LAKE, { [name]: cap })).toBe(
    `${name}=${cap} caps oneDNN below its bf16 kernels (AVX512_CORE_BF16); bf16 would be emulated ~1.5-30× slower than float32`,
  );
});

test.each(['ALL', 'AVX512_CORE_BF16', 'avx512_core_amx', ''])('ONEDNN_MAX_CPU_ISA=%j leaves bf16 to the CPU flags', (cap) => {
  expect(slowBf16Reason(COOPER_LAKE, { ONEDNN_MAX_CPU_ISA: cap })).toBeNull();
  expect(slowBf16Reason(AVX2, { ONEDNN_MAX_CPU_ISA: cap })).toMatch(/avx512_bf16\/amx_bf16 absent/);
});

const minimalRaw = { model: { pretrained: 'models/base' }, data: { source: 'mnist', resolution: 16, channels: 1 }, output: 'runs/x' };
const recipe = (train: Record<string, unknown>, device = 'cpu') =>
  parseRecipe(
    {
      model: { pretrained: 'models/base', device },
      data: { source: 'mnist', resolution: 16, channels: 1 },
      train: { steps: 10, lr: 1e-4, ...train },
      output: 'runs/x',
    },
    'r.json',
  );

test('mixedPrecision "bf16" on a CPU without bf16 arithmetic is a ConfigError naming the field, the reason and the way to force it', () => {
  const bf16 = recipe({ mixedPrecision: 'bf16' });
  expect(() => checkMixedPrecision(bf16, AVX2, 'r.json')).toThrow(ConfigError);
  expect(() => checkMixedPrecision(bf16, AVX2, 'r.json')).toThrow(
    'r.json: train.mixedPrecision: "bf16" on cpu is refused: this CPU has no bf16 arithmetic (avx512_bf16/amx_bf16 absent from /proc/cpuinfo\'s flags); ' +
      'bf16 would be emulated ~20-30× slower than float32. Use "no" (float32), or set train.allowSlowBf16 to true to train in bf16 anyway.',
  );
  // prepareRecipe (finetune and --dry-run) judges the CPU it is given.
  expect(() => prepareRecipe({ ...minimalRaw, train: { steps: 10, lr: 1e-4, mixedPrecision: 'bf16' } }, 'r.json', AVX512)).toThrow(
    /train\.mixedPrecision: "bf16" on cpu is refused/,
  );
});

test('bf16 passes where it is fast, on CUDA, when forced, and float32 always', () => {
  expect(() => checkMixedPrecision(recipe({ mixedPrecision: 'bf16' }), COOPER_LAKE)).not.toThrow();
  expect(() => checkMixedPrecision(recipe({ mixedPrecision: 'bf16' }), SAPPHIRE_RAPIDS)).not.toThrow();
  expect(() => checkMixedPrecision(recipe({ mixedPrecision: 'bf16' }, 'cuda:0'), AVX2)).not.toThrow();
  expect(() => checkMixedPrecision(recipe({ mixedPrecision: 'bf16', allowSlowBf16: true }), AVX2)).not.toThrow();
  expect(() => checkMixedPrecision(recipe({ mixedPrecision: 'no' }), AVX2)).not.toThrow();
  expect(() => prepareRecipe({ ...minimalRaw, train: { steps: 10, lr: 1e-4, mixedPrecision: 'bf16', allowSlowBf16: true } }, 'r.json', AVX2)).not.toThrow();
  expect(recipe({}).train.allowSlowBf16).toBe(false);
});
