/**
 * One fixture set folder of test/fixtures/diffusers: its cases.json (validated with zod) and the
 * tensors of cases.safetensors, loaded per case by key.
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { z } from 'zod';
import { disposeStateDict, loadStateDict, type StateDict } from '../checkpoint/state-dict';
import { ConfigError } from '../errors';
import type { Tensor } from '../native/tensor';

export const fixtureCaseSchema = z
  .object({
    name: z.string().min(1),
    type: z.string().min(1),
    description: z.string().optional(),
  })
  .passthrough();
export type FixtureCase = z.infer<typeof fixtureCaseSchema>;

export const fixtureSetSchema = z
  .object({
    format: z.literal('diffusers-reference-fixtures/1'),
    set: z.string(),
    kind: z.string(),
    config_file: z.string().optional(),
    tensors_file: z.string().nullable().optional(),
    cases: z.array(fixtureCaseSchema),
  })
  .passthrough();
export type FixtureSetFile = z.infer<typeof fixtureSetSchema>;

export const CASES_FILE = 'cases.json';

export class FixtureSet {
  private constructor(
    /** The set folder. */
    readonly dir: string,
    readonly file: FixtureSetFile,
    /** Where the cases run ("cpu", "cuda", "cuda:1"): the models load there and the case tensors move there. */
    readonly device: string,
  ) {}

  static async open(dir: string, options: { device?: string } = {}): Promise<FixtureSet> {
    const path = nodePath.join(dir, CASES_FILE);
    const text = await fs.readFile(path, 'utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`${path}: invalid JSON: ${(error as Error).message}`, { cause: error });
    }
    const parsed = fixtureSetSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ConfigError(`${path}: "${issue.path.join('.')}": ${issue.message}`);
    }
    return new FixtureSet(dir, parsed.data, options.device ?? 'cpu');
  }

  get name(): string {
    return this.file.set;
  }

  get cases(): readonly FixtureCase[] {
    return this.file.cases;
  }

  /** A path relative to the set folder. */
  resolve(relative: string): string {
    return nodePath.join(this.dir, relative);
  }

  /** The set's config file (config.json or scheduler_config.json). */
  get configPath(): string {
    if (this.file.config_file === undefined) throw new ConfigError(`${this.resolve(CASES_FILE)}: no "config_file"`);
    return this.resolve(this.file.config_file);
  }

  /** Loads the tensors stored under `keys` in the set's cases.safetensors, on the set's device. */
  async tensors(keys: readonly string[]): Promise<Map<string, Tensor>> {
    const file = this.file.tensors_file;
    if (file === undefined || file === null) throw new ConfigError(`${this.resolve(CASES_FILE)}: no "tensors_file" to load ${keys[0] ?? 'tensors'} from`);
    const loaded = await loadStateDict(this.resolve(file), { names: [...new Set(keys)] });
    if (this.device === 'cpu') return loaded;
    const moved: StateDict = new Map();
    try {
      for (const [name, t] of loaded) moved.set(name, await t.to(this.device));
      return moved;
    } catch (error) {
      disposeStateDict(moved);
      throw error;
    } finally {
      disposeStateDict(loaded);
    }
  }
}

/** Parses a case's own fields with `schema`; errors name the set, case and field. */
export function caseFields<T extends z.ZodTypeAny>(set: FixtureSet, fixtureCase: FixtureCase, schema: T): z.infer<T> {
  const parsed = schema.safeParse(fixtureCase);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${set.resolve(CASES_FILE)}: case "${fixtureCase.name}" field "${issue.path.join('.')}": ${issue.message}`);
  }
  // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- z.infer of a generic schema is `any` inside the generic; callers see z.infer<T>
  return parsed.data;
}
