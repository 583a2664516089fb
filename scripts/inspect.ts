/**
 * `npm run inspect -- <file.safetensors | model-folder> [--stack]`: prints a checkpoint's metadata and
 * tensor table, or a diffusers model folder's configs and weights files. The logic is in
 * lib/checkpoint/inspect.ts so it can be tested without a build.
 */

import { runInspect, inspectCli } from '../lib/checkpoint/inspect';

/** The flags (`--help` prints them); the CLI tests read them from here. */
export const cli = inspectCli;

if (require.main === module) {
  void runInspect(process.argv.slice(2), process.stdout, process.stderr).then((code) => {
    // exitCode, not process.exit(): let a long table finish flushing to a pipe.
    process.exitCode = code;
  });
}
