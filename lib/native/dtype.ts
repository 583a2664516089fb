/** difftune's tensor dtypes and their mapping to safetensors dtype names. Pure: no addon. */
import type { NativeDType } from './types';

export type DType = NativeDType;

/** The dtypes a model's parameters may have (float16 needs CUDA: libtorch 1.13 has no CPU fp16 convolution). */
export type ComputeDType = 'float32' | 'bfloat16' | 'float16';

export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];

export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

const TO_SAFETENSORS: Readonly<Record<DType, string>> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && (DTYPES as readonly string[]).includes(value);
}

export function toSafetensorsDtype(dtype: DType): string {
  return TO_SAFETENSORS[dtype];
}

/** The tensor dtype for a safetensors dtype, or undefined for those libtorch 1.13 lacks (U16, U32, U64, F8_*). */
export function fromSafetensorsDtype(name: string): DType | undefined {
  return DTYPES.find((d) => TO_SAFETENSORS[d] === name);
}
