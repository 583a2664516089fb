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

export interface StopSignals extends Disposable {
  /** Aborted at the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
  /** The signal that stopped the run, if one did. */
  readonly stoppedBy: StopSignal | undefined;
}

/**
 * A long run's SIGINT/SIGTERM handling: the first signal calls `onStop` and aborts `signal` (the run
 * stops at its next step with a checkpoint); a second exits at once with the signal's code. Disposing
 * removes the handlers.
 */
export function handleStopSignals(onStop: (signal: StopSignal) => void): StopSignals {
  const controller = new AbortController();
  let stoppedBy: StopSignal | undefined;
  const stop = (signal: StopSignal) => {
    if (controller.signal.aborted) process.exit(STOP_EXIT_CODES[signal]);
    stoppedBy = signal;
    onStop(signal);
    controller.abort();
  };
  const onSigint = () => stop('SIGINT');
  const onSigterm = () => stop('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  return {
    signal: controller.signal,
    get stoppedBy() {
      return stoppedBy;
    },
    [Symbol.dispose]() {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
    },
  };
}
