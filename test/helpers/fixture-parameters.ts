/** The parameter list of a fixture U-Net, read from its safetensors header (no addon needed). */
import * as path from 'node:path';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import type { ParameterInfo } from '../../lib/freeze/plan';

export const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');

export async function fixtureParameters(model: string): Promise<ParameterInfo[]> {
  const file = await SafetensorsFile.open(path.join(FIXTURES, model, 'diffusion_pytorch_model.safetensors'));
  try {
    return file.names().map((name) => {
      const info = file.info(name);
      return { name, shape: [...info.shape], dtype: info.dtype };
    });
  } finally {
    await file.close();
  }
}
