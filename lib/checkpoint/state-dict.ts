/**
 * Safetensors files ⇄ native tensors: a state dict is a Map from diffusers key to Tensor.
 * Dtypes libtorch 1.13 lacks (U16/U32/U64, F8_*) stay raw bytes in the TypeScript layer and are
 * refused here, where a tensor must be made of them.
 */
import { UnsupportedDtypeError } from '../errors';
import { fromSafetensorsDtype, toSafetensorsDtype } from '../native/dtype';
import { Tensor } from '../native/tensor';
import { SafetensorsFile, writeSafetensors, type DType as SafetensorsDType, type TensorToWrite } from './safetensors';

export type StateDict = Map<string, Tensor>;

export interface LoadStateDictOptions {
  /** Only these tensors (default: all). */
  names?: readonly string[];
  /** Default "cpu". */
  device?: string;
}

/** Reads tensors from a .safetensors file into native tensors (one read per tensor, by offset). */
export async function loadStateDict(path: string, options: LoadStateDictOptions = {}): Promise<StateDict> {
  const file = await SafetensorsFile.open(path);
  const out: StateDict = new Map();
  try {
    const names = options.names ?? file.names();
    for (const name of names) {
      const info = file.info(name);
      const dtype = fromSafetensorsDtype(info.dtype);
      if (dtype === undefined) {
        throw new UnsupportedDtypeError(
          `${path}: tensor "${name}" has dtype ${info.dtype}, which libtorch tensors in difftune cannot hold ` +
            '(U16/U32/U64/F8 are read and written as raw bytes only; see SafetensorsFile.readBytes)',
        );
      }
      const bytes = await file.readBytes(name);
      out.set(name, await Tensor.fromAsync(bytes, info.shape, { dtype, device: options.device ?? 'cpu' }));
    }
    return out;
  } catch (error) {
    for (const t of out.values()) t.dispose();
    throw error;
  } finally {
    await file.close();
  }
}

/** Writes tensors to a .safetensors file atomically (bytes read back on the compute thread). */
export async function saveStateDict(path: string, tensors: ReadonlyMap<string, Tensor>, metadata?: Readonly<Record<string, string>>): Promise<void> {
  const entries: Array<[string, TensorToWrite]> = [];
  for (const [name, tensor] of tensors) {
    const data = await tensor.data({ raw: true });
    entries.push([name, { dtype: toSafetensorsDtype(tensor.dtype) as SafetensorsDType, shape: tensor.shape, data }]);
  }
  await writeSafetensors(path, entries, metadata);
}

export function disposeStateDict(stateDict: StateDict): void {
  for (const t of stateDict.values()) t.dispose();
  stateDict.clear();
}
