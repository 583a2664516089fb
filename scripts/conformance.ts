/**
 * `npm run conformance -- <set-dir | folder-with-index.json>... [--verbose]`: checks difftune against
 * the diffusers reference fixtures. The logic is in lib/conformance/cli.ts.
 */

import { runConformanceCli } from '../lib/conformance/cli';

void runConformanceCli(process.argv.slice(2), process.stdout, process.stderr).then((code) => {
  process.exitCode = code;
});
