/**
 * What the CPU can do, from /proc/cpuinfo: the one place its flags are read (the addon loader picks
 * OpenBLAS kernels by them, the bench records them, training refuses slow bf16 by them). Functions take
 * the cpuinfo text so that callers and tests can judge any CPU, not just this machine's.
 */
import * as fs from 'fs';

/** /proc/cpuinfo's text, or '' where there is none (not Linux, or unreadable). */
export function readCpuinfo(): string {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

/** The first processor's feature flags: x86's "flags" line, or Arm's "Features" line; empty when neither. */
export function cpuFlags(cpuinfo: string): Set<string> {
  const line = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? '';
  return new Set(line.split(/\s+/).filter((f) => f.length > 0));
}

/**
 * Whether libtorch 1.13+'s bf16 convolutions and matmuls run on oneDNN, which accumulates in float32 and
 * rounds once per output: it chooses oneDNN for bf16 when the CPU has AVX-512 BW, VL and DQ
 * (mkldnn_bf16_device_check) and oneDNN is in use. Otherwise its own CPU kernels run, which also round
 * partial sums to bf16 (measured: 4-6× the error of oneDNN's on the fixture U-Nets).
 */
export function bf16UsesOnednn(cpuinfo: string, onednn: boolean): boolean {
  const flags = cpuFlags(cpuinfo);
  return onednn && ['avx512bw', 'avx512vl', 'avx512dq'].every((f) => flags.has(f));
}

/**
 * Why bf16 autocast would be slow on this CPU, or null when it has bf16 arithmetic (x86 AVX-512-BF16 or
 * AMX-BF16, Arm's BF16 extension) or when the flags are unknown (no cpuinfo: nothing is refused on a
 * guess). Without it libtorch emulates bf16: every operand is converted to float32 and back, so a
 * training step takes longer than in float32 — ~20-30× on AVX2 CPUs, and still 1.6-3.1× on AVX-512
 * ones (the README's bench on an AVX-512F/BW/VNNI Xeon without BF16: bf16 GEMM 62 vs 303 GFLOP/s).
 */
export function slowBf16Reason(cpuinfo: string, env: NodeJS.ProcessEnv = process.env): string | null {
  // A cap on oneDNN's ISA below its bf16 kernels (how an AVX-512 machine is run as an AVX2 one) leaves
  // bf16 to emulation whatever the CPU has; libtorch 1.13 then also loses oneDNN for float32 once bf16 ran
  // (tensor/runtime.h: noteCpuBf16Compute), so such a run must not touch bf16 at all.
  const capName = env.ONEDNN_MAX_CPU_ISA ? 'ONEDNN_MAX_CPU_ISA' : env.DNNL_MAX_CPU_ISA ? 'DNNL_MAX_CPU_ISA' : undefined;
  const cap = capName === undefined ? undefined : env[capName]!;
  if (cap !== undefined && !/^(ALL|DEFAULT|AVX512_CORE_BF16|AVX512_CORE_FP16|AVX512_CORE_AMX.*|AVX10.*)$/i.test(cap.trim())) {
    return `${capName}=${cap} caps oneDNN below its bf16 kernels (AVX512_CORE_BF16); bf16 would be emulated ~1.5-30× slower than float32`;
  }
  const flags = cpuFlags(cpuinfo);
  if (flags.size === 0) return null;
  if (flags.has('avx512_bf16') || flags.has('amx_bf16') || flags.has('bf16')) return null;
  const x86 = /^flags\s*:/m.test(cpuinfo);
  const absent = x86 ? 'avx512_bf16/amx_bf16' : 'bf16';
  const slower = x86 && flags.has('avx512f') ? '~1.5-3×' : '~20-30×';
  return `this CPU has no bf16 arithmetic (${absent} absent from /proc/cpuinfo's flags); bf16 would be emulated ${slower} slower than float32`;
}
