/** `npm run finetune -- --recipe <file.json> [--set key.path=value ...] [--dry-run]`; logic in lib/train/cli.ts. */
import { runFinetuneCli } from '../lib/train/cli';

void runFinetuneCli(process.argv.slice(2), process.stdout, process.stderr, Boolean(process.stdout.isTTY)).then((code) => {
  process.exitCode = code;
});
