/** `npm run bench -- [--suite quick|full] [--config <json>] [--out <folder>] | --compare a.json b.json`; logic in lib/bench/. */
import * as path from 'path';
import { runBenchCli } from '../lib/bench/cli';

void runBenchCli(process.argv.slice(2), path.resolve(__dirname, '..', '..')).then((code) => {
  process.exitCode = code;
});
