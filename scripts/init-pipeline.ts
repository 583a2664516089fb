/** `npm run init-pipeline -- --config <folder> --out <folder> --seed S`; logic in lib/models/init-pipeline-cli.ts. */
import { initPipelineCli, runInitPipelineCli } from '../lib/models/init-pipeline-cli';

/** The flags (`--help` prints them); the CLI tests read them from here. */
export const cli = initPipelineCli;

if (require.main === module) {
  void runInitPipelineCli(process.argv.slice(2), process.stdout, process.stderr).then((code) => {
    process.exitCode = code;
  });
}
