// Pure-TypeScript modules must never load the addon: importing the public API and using its
// pure parts leaves it unloaded.
import * as difftune from '../../lib/index';

test('importing difftune and using pure modules does not load the native addon', () => {
  expect(difftune.f16ToF32(0x3c00)).toBe(1);
  expect(difftune.isDType('float32')).toBe(true);
  expect(new difftune.InvalidArgumentError('x').code).toBe('ERR_INVALID_ARG');
  expect(difftune.isNativeLoaded()).toBe(false);
});
