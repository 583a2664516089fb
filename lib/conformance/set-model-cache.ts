/**
 * One loaded model per fixture-set folder and device, shared by every case of that set. A load that fails
 * is forgotten (the next case tries again); release() disposes every model loaded (tests call it when done).
 */
import type { FixtureSet } from './fixture-set';

export class SetModelCache<M extends { dispose(): void }> {
  readonly #models = new Map<string, Promise<M>>();
  readonly #load: (dir: string, device: string) => Promise<M>;

  /** `load` must place the model on `device` (the set's): the case tensors are there. */
  constructor(load: (dir: string, device: string) => Promise<M>) {
    this.#load = load;
  }

  get(set: FixtureSet): Promise<M> {
    const key = `${set.device}\0${set.dir}`;
    let model = this.#models.get(key);
    if (model === undefined) {
      model = this.#load(set.dir, set.device);
      this.#models.set(key, model);
      model.catch(() => this.#models.delete(key));
    }
    return model;
  }

  async release(): Promise<void> {
    const all = [...this.#models.values()];
    this.#models.clear();
    for (const m of all) (await m.catch(() => undefined))?.dispose();
  }
}
