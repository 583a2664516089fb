/** `npm run finetune -- --recipe <file.json> [--set key.path=value ...] [--dry-run]`; logic in lib/train/cli.ts. */
import { runFinetuneCli, finetuneCli } from '../lib/train/cli';

/** The flags (`--help` prints them); the CLI tests read them from here. */
export const cli = finetuneCli;

if (require.main === module) {
  void runFinetuneCli(process.argv.slice(2), process.stdout, process.stderr, process.stdout.isTTY).then((code) => {
    process.exitCode = code;
  });
}
