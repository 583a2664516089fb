/**
 * npm run bench:data: the loader's throughput alone — PNG files written to a temp folder, decoded,
 * resized, randomly cropped and flipped, batched and converted natively to float32 NCHW — for batch 32
 * at resolution 32 and 64, with the default thread budget. The same measurement is the data-loader
 * workload of `npm run bench` (lib/bench/data.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { formatCliError } from '../lib/errors';
import { planThreads } from '../lib/data/threads';
import { loaderThroughput, writeImageFolder } from '../lib/bench/data';
import { defineCli, formatHelp, parseCli, usageHint } from '../lib/util/cli-args';

export const cli = defineCli({
  name: 'bench:data',
  summary:
    "The data loader's throughput alone: 512 PNGs written to a temp folder, decoded, resized, randomly cropped and flipped, batched and converted to float32 NCHW, for batch 32 at resolution 32 and 64 with the default thread budget. Takes no flags.",
  flags: {},
  examples: ['npm run bench:data'],
});

const IMAGES = 512;
const BATCH = 32;
const BATCHES = 48;

async function main(argv: readonly string[]): Promise<void> {
  if (parseCli(cli, argv).help) {
    process.stdout.write(formatHelp(cli));
    return;
  }
  const plan = planThreads();
  console.log(
    `${plan.cores} cores: ${plan.torchThreads} torch thread(s) + ${plan.decodeConcurrency} decoder(s)${plan.warnings.length ? ` (${plan.warnings.join('; ')})` : ''}`,
  );
  for (const resolution of [32, 64]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `difftune-bench-${resolution}-`));
    try {
      const r = await loaderThroughput(await writeImageFolder(dir, IMAGES, resolution, 3), resolution, BATCH, BATCHES);
      console.log(
        `resolution ${resolution}: ${r.batchesPerS.toFixed(1)} batches/s, ${r.imagesPerS.toFixed(0)} images/s, ${((1000 * r.seconds) / BATCHES).toFixed(1)} ms/batch ` +
          `(batch ${BATCH}, ${r.decoders} decoder(s), torch ${r.torchThreads} thread(s), prefetch ${r.prefetch})`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`${formatCliError('bench:data', error)}\n${usageHint(cli, error)}`.trimEnd());
    process.exit(1);
  });
}
