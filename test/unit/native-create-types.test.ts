// The native models' create(config) takes the exact struct lib/config builds, not any object: a config
// missing fields or with a wrong field type is a compile error. The @ts-expect-error lines are the test
// (npm run typecheck fails on an unused one); jest only checks that the right structs are accepted.
import { parseClipTextConfig, toNativeClipTextConfig } from '../../lib/config/clip-text';
import { parseUNetConfig } from '../../lib/config/unet';
import { toNativeUNetConfig } from '../../lib/config/unet-native';
import { parseVaeConfig, toNativeVaeConfig } from '../../lib/config/vae';
import type { NativeAutoencoderKLStatic, NativeCLIPTextModelStatic, NativeUNetStatic } from '../../lib/native/types';

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- T is the static interface the caller wants the fake typed as
function fakeStatic<T>(seen: unknown[]): T {
  return {
    create: (config: unknown) => {
      seen.push(config);
      return Promise.resolve({});
    },
  } as unknown as T;
}

test('create() takes the native config structs and refuses anything else at compile time', async () => {
  const seen: unknown[] = [];
  const unet = fakeStatic<NativeUNetStatic>(seen);
  const vae = fakeStatic<NativeAutoencoderKLStatic>(seen);
  const clip = fakeStatic<NativeCLIPTextModelStatic>(seen);

  const unetConfig = toNativeUNetConfig(parseUNetConfig({ _class_name: 'UNet2DModel' }, 'config.json').config);
  const vaeConfig = toNativeVaeConfig(parseVaeConfig({ _class_name: 'AutoencoderKL' }, 'config.json').config);
  const clipConfig = toNativeClipTextConfig(parseClipTextConfig({}, 'config.json').config);
  await unet.create(unetConfig);
  await vae.create(vaeConfig);
  await clip.create(clipConfig);

  // @ts-expect-error a VAE config is not a U-Net config
  await unet.create(vaeConfig);
  // @ts-expect-error a config missing most of the U-Net's fields
  await unet.create({ inChannels: 4 });
  // @ts-expect-error layersPerBlock is one number for the VAE
  await vae.create({ ...vaeConfig, layersPerBlock: [1] });
  // @ts-expect-error eosTokenId is a number
  await clip.create({ ...clipConfig, eosTokenId: '2' });

  expect(seen.slice(0, 3)).toEqual([unetConfig, vaeConfig, clipConfig]);
});
