/** `npm run bench -- [--suite quick|full] [--config <json>] [--out <folder>] | --compare a.json b.json`; logic in lib/bench/. */
import * as path from 'path';
import { runBenchCli, benchCli } from '../lib/bench/cli';

/** The flags (`--help` prints them); the CLI tests read them from here. */
export const cli = benchCli;

if (require.main === module) {
  void runBenchCli(process.argv.slice(2), path.resolve(__dirname, '..', '..')).then((code) => {
    process.exitCode = code;
  });
}
