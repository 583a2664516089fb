/**
 * `npm run conformance -- <set-dir | folder-with-index.json>... [--verbose]`: checks difftune against
 * the diffusers reference fixtures. The logic is in lib/conformance/cli.ts.
 */

import { runConformanceCli, conformanceCli } from '../lib/conformance/cli';

/** The flags (`--help` prints them); the CLI tests read them from here. */
export const cli = conformanceCli;

if (require.main === module) {
  void runConformanceCli(process.argv.slice(2), process.stdout, process.stderr).then((code) => {
    process.exitCode = code;
  });
}
