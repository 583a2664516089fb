/**
 * Device strings as recipes and options take them: "cpu", "cuda" (the current GPU) or "cuda:N". Only the
 * form is checked here (config layer, no addon); whether the device exists is lib/native/runtime.ts's
 * deviceProblem, which asks the loaded libtorch.
 */
import { z } from 'zod';

export const DEVICE_PATTERN = /^(cpu|cuda(:(0|[1-9]\d{0,3}))?)$/;

export const DEVICE_FORMS = '"cpu", "cuda" or "cuda:N"';

export const deviceSchema = z.string().regex(DEVICE_PATTERN, { message: `expected a device: ${DEVICE_FORMS}` });

export function isDeviceString(value: unknown): value is string {
  return typeof value === 'string' && DEVICE_PATTERN.test(value);
}
