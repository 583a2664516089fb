/** `npm run grow -- --model <folder> --out <folder>`; logic in lib/models/grow-cli.ts. */
import { runGrowCli } from '../lib/models/grow-cli';

void runGrowCli(process.argv.slice(2), process.stdout, process.stderr).then((code) => {
  process.exitCode = code;
});
