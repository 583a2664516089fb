/**
 * Exit codes of a run stopped on a signal, after it wrote a checkpoint: 128 + the signal's number, as a
 * shell reports a process the signal ended (Ctrl-C's SIGINT 130; SIGTERM 143, what `kill`, Docker,
 * Kubernetes and Slurm send). Supervisors tell "stopped" from "failed" (1) and from each other by it.
 */
export const STOP_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

export type StopSignal = keyof typeof STOP_EXIT_CODES;

/** True for an exit code that means "stopped on a signal" rather than failed. */
export function isStopExitCode(code: number | null): boolean {
  return code === STOP_EXIT_CODES.SIGINT || code === STOP_EXIT_CODES.SIGTERM;
}
