// difftune → diffusers, configs: every U-Net and scheduler config difftune writes loads in diffusers
// v0.31 without a warning (no key that release does not know; issue 15, item 2), and diffusers reads
// from it the config it reads from the original file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseLenientJson } from '../../lib/config/json';
import { SCHEDULER_CLASSES } from '../../lib/config/scheduler';
import { loadUNet } from '../../lib/models/unet';
import { loadScheduler, Scheduler } from '../../lib/schedulers/scheduler';
import { useTempDir } from '../helpers/temp-dir';
import { describeInterop, FIXTURES, runPython } from './helpers/harness';

const tmp = useTempDir('interop-configs');

interface Loaded {
  class: string;
  config: Record<string, unknown>;
  defaulted: string[];
  warnings: string[];
  defaults?: Record<string, unknown>;
  defaults_warnings?: string[];
}

async function loadAll(items: Array<Record<string, unknown>>): Promise<Loaded[]> {
  return (await runPython('load_folder', { items })).items as Loaded[];
}

const UNET_SETS = [
  'unet2d-tiny',
  'unet2d-classcond',
  'unet2d-ddpmcifar-shape',
  'unet2dcond-tiny',
  'unet2dcond-sd2ish',
  'unet2dcond-classcond',
  'sd-pipeline-tiny/unet',
];

describeInterop('configs difftune writes load in diffusers v0.31 without warnings', () => {
  test('U-Nets: every fixture U-Net saved by difftune reads back as the same diffusers config', async () => {
    const items: Array<Record<string, unknown>> = [];
    for (const set of UNET_SETS) {
      using unet = await loadUNet(path.join(FIXTURES, set));
      const saved = path.join(tmp(), 'unets', set.replace('/', '-'));
      await unet.save(saved);
      items.push({ kind: 'model', path: path.join(FIXTURES, set) }, { kind: 'model', path: saved });
    }
    const loaded = await loadAll(items);
    for (const [i, set] of UNET_SETS.entries()) {
      const [original, ours] = [loaded[2 * i]!, loaded[2 * i + 1]!];
      expect({ set, warnings: ours.warnings }).toEqual({ set, warnings: [] });
      expect({ set, class: ours.class, config: ours.config }).toEqual({ set, class: original.class, config: original.config });
    }
  }, 300_000);

  test('schedulers: every class difftune supports, at its defaults and at every fixture config', async () => {
    const items: Array<Record<string, unknown>> = [];
    const names: string[] = [];
    for (const className of SCHEDULER_CLASSES) {
      using scheduler = await Scheduler.fromConfig({ _class_name: className });
      const saved = path.join(tmp(), 'schedulers', `${className}-defaults`);
      await scheduler.save(saved);
      items.push({ kind: 'scheduler', path: saved, defaults: true });
      names.push(`${className} defaults`);
    }
    const fixtures = path.join(FIXTURES, 'schedulers');
    // Only the classes this build supports: fixture sets for classes being added may come first.
    const sets = fs.readdirSync(fixtures).filter((s) => {
      const file = path.join(fixtures, s, 'scheduler_config.json');
      return (
        fs.existsSync(file) &&
        (SCHEDULER_CLASSES as readonly string[]).includes((parseLenientJson(fs.readFileSync(file, 'utf8'), file) as { _class_name: string })._class_name)
      );
    });
    for (const set of sets) {
      using scheduler = await loadScheduler(path.join(fixtures, set));
      const saved = path.join(tmp(), 'schedulers', set);
      await scheduler.save(saved);
      items.push({ kind: 'scheduler', path: path.join(fixtures, set) }, { kind: 'scheduler', path: saved });
    }
    const loaded = await loadAll(items);
    for (const [i, name] of names.entries()) {
      const ours = loaded[i]!;
      // Silent, unless diffusers' class warns at its own defaults too.
      expect({ name, class: ours.class, warnings: ours.warnings, defaulted: ours.defaulted }).toEqual({
        name,
        class: SCHEDULER_CLASSES[i],
        warnings: ours.defaults_warnings,
        defaulted: [],
      });
      expect({ name, config: ours.config }).toEqual({ name, config: ours.defaults });
    }
    for (const [i, set] of sets.entries()) {
      const [original, ours] = [loaded[names.length + 2 * i]!, loaded[names.length + 2 * i + 1]!];
      // A deprecated setting warns from either file (dpm-dpmsolver-heun's algorithm_type); nothing else may.
      expect({ set, warnings: ours.warnings }).toEqual({ set, warnings: original.warnings });
      expect({ set, class: ours.class, config: ours.config }).toEqual({ set, class: original.class, config: original.config });
    }
  }, 300_000);
});
