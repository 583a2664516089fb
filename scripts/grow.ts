/** `npm run grow -- --model <folder> --out <folder>`; logic in lib/models/grow-cli.ts. */
import { runGrowCli, growCli } from '../lib/models/grow-cli';

/** The flags (`--help` prints them); the CLI tests read them from here. */
export const cli = growCli;

if (require.main === module) {
  void runGrowCli(process.argv.slice(2), process.stdout, process.stderr).then((code) => {
    process.exitCode = code;
  });
}
