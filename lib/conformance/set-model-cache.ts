/**
 * One loaded model per fixture-set folder, shared by every case of that set. A load that fails is
 * forgotten (the next case tries again); release() disposes every model loaded (tests call it when done).
 */
import type { FixtureSet } from './fixture-set';

export class SetModelCache<M extends { dispose(): void }> {
  readonly #models = new Map<string, Promise<M>>();
  readonly #load: (dir: string) => Promise<M>;

  constructor(load: (dir: string) => Promise<M>) {
    this.#load = load;
  }

  get(set: FixtureSet): Promise<M> {
    let model = this.#models.get(set.dir);
    if (model === undefined) {
      model = this.#load(set.dir);
      this.#models.set(set.dir, model);
      model.catch(() => this.#models.delete(set.dir));
    }
    return model;
  }

  async release(): Promise<void> {
    const all = [...this.#models.values()];
    this.#models.clear();
    for (const m of all) (await m.catch(() => undefined))?.dispose();
  }
}
