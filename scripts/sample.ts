/** `npm run sample -- --model <folder> --out grid.png [...]`; logic in lib/sample/cli.ts. */
import { runSampleCli } from '../lib/sample/cli';

void runSampleCli(process.argv.slice(2), process.stdout, process.stderr).then((code) => {
  process.exitCode = code;
});
