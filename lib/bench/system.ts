/**
 * What the machine is and what else it is doing: /proc/stat (all CPUs, steal), /proc/self/stat (this
 * process), /proc/thread-self/schedstat (the JS thread's on-CPU nanoseconds), peak RSS (with a reset
 * through /proc/self/clear_refs where the kernel allows it). Linux; elsewhere the readings are null.
 */
import * as fs from 'fs';
import * as os from 'os';
import { cpuFlags, readCpuinfo } from '../util/cpu';

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux Node runs on). */
const HZ = 100;

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

export interface CpuSample {
  /** performance.now() in ms. */
  at: number;
  /** CPU-seconds all CPUs were busy (user … softirq, without steal and guest). */
  busy: number;
  steal: number;
  /** CPU-seconds of this process (utime + stime). */
  own: number;
}

export function sampleCpu(): CpuSample | null {
  const stat = readText('/proc/stat');
  const self = readText('/proc/self/stat');
  if (stat === null || self === null) return null;
  const v = stat.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = (v[0]! + v[1]! + v[2]! + v[5]! + v[6]!) / HZ;
  const steal = (v[7] ?? 0) / HZ;
  // Fields after the parenthesised command name: utime and stime are the 12th and 13th of them.
  const after = self.slice(self.lastIndexOf(')') + 2).split(' ');
  const own = (Number(after[11]) + Number(after[12])) / HZ;
  return { at: performance.now(), busy, steal, own };
}

export interface Disturbance {
  /** CPU-seconds per second other processes used (cores). */
  otherCpu: number;
  /** CPU-seconds per second the hypervisor took. */
  steal: number;
  /** CPU-seconds per second this process used. */
  ownCpu: number;
}

export function disturbance(a: CpuSample | null, b: CpuSample | null): Disturbance | null {
  if (a === null || b === null) return null;
  const wall = Math.max((b.at - a.at) / 1000, 1e-6);
  const own = b.own - a.own;
  return { otherCpu: Math.max(0, (b.busy - a.busy - own) / wall), steal: Math.max(0, (b.steal - a.steal) / wall), ownCpu: own / wall };
}

/** Nanoseconds the calling OS thread has run on a CPU (JS calls this on the main thread). */
export function threadCpuNs(): number | null {
  const text = readText('/proc/thread-self/schedstat');
  if (text === null) return null;
  const ns = Number(text.split(' ')[0]);
  return Number.isFinite(ns) ? ns : null;
}

/** Resets the kernel's peak-RSS mark (VmHWM) so the next reading is this workload's; false where refused. */
export function resetPeakRss(): boolean {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** Peak resident memory in MB: VmHWM since the last reset, else the process's lifetime peak. */
export function peakRssMb(): number {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(readText('/proc/self/status') ?? '');
  return (m ? Number(m[1]) : process.resourceUsage().maxRSS) / 1024;
}

/** Shared libraries of this process whose name says BLAS (after the addon loaded libtorch). */
export function blasLibraries(): string[] {
  const maps = readText('/proc/self/maps');
  if (maps === null) return [];
  const found = new Set<string>();
  for (const line of maps.split('\n')) {
    const file = line.split(/\s+/)[5];
    if (file && /blas/i.test(file.split('/').pop() ?? '')) {
      try {
        found.add(fs.realpathSync(file));
      } catch {
        found.add(file);
      }
    }
  }
  return [...found];
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  cpuFlags: { avx512f: boolean; avx512bf16: boolean; amxBf16: boolean };
  memoryGb: number;
  os: string;
  node: string;
  loadAverage: number[];
}

export function machineInfo(): MachineInfo {
  const flags = cpuFlags(readCpuinfo());
  return {
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    cpuFlags: { avx512f: flags.has('avx512f'), avx512bf16: flags.has('avx512_bf16'), amxBf16: flags.has('amx_bf16') },
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
