/** Reading a case's tensors: every key a case names, loaded once and disposed after the case ran. */
import { disposeStateDict, type StateDict } from '../checkpoint/state-dict';
import { ConfigError } from '../errors';
import type { Tensor } from '../native/tensor';
import { CASES_FILE, type FixtureCase, type FixtureSet } from './fixture-set';

function lookup(set: FixtureSet, fixtureCase: FixtureCase, tensors: StateDict): (k: string) => Tensor {
  return (k) => {
    const t = tensors.get(k);
    if (t === undefined) throw new ConfigError(`${set.resolve(CASES_FILE)}: case "${fixtureCase.name}" names tensor "${k}", which is not in the tensors file`);
    return t;
  };
}

export function allKeys(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => allKeys(v, out));
  else if (value !== null && typeof value === 'object') Object.values(value).forEach((v) => allKeys(v, out));
  return out;
}

export async function withTensors<T>(set: FixtureSet, fixtureCase: FixtureCase, keys: string[], use: (get: (k: string) => Tensor) => Promise<T>): Promise<T> {
  const tensors = await set.tensors(keys);
  try {
    return await use(lookup(set, fixtureCase, tensors));
  } finally {
    disposeStateDict(tensors);
  }
}
