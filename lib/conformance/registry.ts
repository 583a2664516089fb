/**
 * Case type → runner. Each family of models registers its runners (scheduler-cases.ts here; the U-Net
 * cases in their own file), and default-registry.ts puts them together. A case whose type has no
 * runner is reported as a failure, never skipped.
 */
import { InvalidArgumentError } from '../errors';
import type { Check } from './compare';
import type { FixtureCase, FixtureSet } from './fixture-set';

/** Runs one case and returns every comparison it made (a thrown error means it could not run). */
export type CaseRunner = (set: FixtureSet, fixtureCase: FixtureCase) => Promise<Check[]>;

export class CaseRegistry {
  readonly #runners = new Map<string, CaseRunner>();

  register(type: string, runner: CaseRunner): this {
    if (this.#runners.has(type)) throw new InvalidArgumentError(`register("${type}"): expected a case type without a runner but one is already registered`);
    this.#runners.set(type, runner);
    return this;
  }

  get(type: string): CaseRunner | undefined {
    return this.#runners.get(type);
  }

  get types(): string[] {
    return [...this.#runners.keys()].sort();
  }
}
