/** `npm run convert -- --single-file <file> --config <folder> --out <folder>`; logic in lib/checkpoint/convert-cli.ts. */
import { runConvertCli, convertCli } from '../lib/checkpoint/convert-cli';

/** The flags (`--help` prints them); the CLI tests read them from here. */
export const cli = convertCli;

if (require.main === module) {
  void runConvertCli(process.argv.slice(2), process.stdout, process.stderr).then((code) => {
    process.exitCode = code;
  });
}
