/** `npm run sample -- --model <folder> --out grid.png [...]`; logic in lib/sample/cli.ts. */
import { runSampleCli, sampleCli } from '../lib/sample/cli';

/** The flags (`--help` prints them); the CLI tests read them from here. */
export const cli = sampleCli;

if (require.main === module) {
  void runSampleCli(process.argv.slice(2), process.stdout, process.stderr).then((code) => {
    process.exitCode = code;
  });
}
