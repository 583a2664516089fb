/** `npm run convert -- --single-file <file> --config <folder> --out <folder>`; logic in lib/checkpoint/convert-cli.ts. */
import { runConvertCli } from '../lib/checkpoint/convert-cli';

void runConvertCli(process.argv.slice(2), process.stdout, process.stderr).then((code) => {
  process.exitCode = code;
});
