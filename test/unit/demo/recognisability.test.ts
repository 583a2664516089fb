// The digit-recognisability measure of the base model's card: real held-out MNIST digits score high,
// scribble-like images (halves of two different digits), blanks and noise score low; wrong-sized images are refused.
import { distanceBound, loadDigits, measureDigits, recognisability, type DigitSet } from '../../../lib/demo/recognisability';
import { InvalidArgumentError } from '../../../lib/errors';

const images = (count: number, pixels: Uint8Array) => ({ count, width: 28, height: 28, channels: 1, pixels });

let reference: DigitSet;
let real: DigitSet;
let bound: number;

beforeAll(async () => {
  // A part of the train split keeps the test quick; the card uses all of it.
  reference = await loadDigits('train', 3000);
  real = await loadDigits('test', 100);
  bound = distanceBound(real, reference);
});

test('real held-out digits are recognised, mostly as their own digit, across all ten', () => {
  const r = recognisability(images(real.count, real.pixels), reference, { maxDistance: bound });
  expect(r.recognisable).toBeGreaterThan(0.65);
  const right = r.predicted.filter((p, i) => p === real.labels[i]).length;
  expect(right / r.predicted.filter((p) => p >= 0).length).toBeGreaterThan(0.9);
  expect(r.perDigit.filter((n) => n > 0)).toHaveLength(10);
  expect([r.k, r.minVotes]).toEqual([10, 8]);
});

test('chimeras of two different digits, blanks and noise are not', async () => {
  const other = await loadDigits('test', 200);
  // The top half of one digit over the bottom half of another: locally stroke-like, globally no digit.
  const halves = new Uint8Array(100 * 784);
  for (let i = 0; i < 100; i++) {
    halves.set(other.pixels.subarray((100 + i) * 784, (100 + i) * 784 + 392), i * 784);
    const j = 100 + ((i + 5) % 100);
    halves.set(other.pixels.subarray(j * 784 + 392, (j + 1) * 784), i * 784 + 392);
  }
  const onReal = recognisability(images(real.count, real.pixels), reference, { maxDistance: bound }).recognisable;
  const onHalves = recognisability(images(100, halves), reference, { maxDistance: bound }).recognisable;
  expect(onHalves).toBeLessThan(onReal - 0.3);

  let state = 1;
  const noise = Uint8Array.from({ length: 20 * 784 }, () => (state = (state * 48271) % 2147483647) & 255);
  const blank = recognisability(images(20, new Uint8Array(20 * 784)), reference, { maxDistance: bound });
  expect([blank.recognisable, blank.predicted.every((p) => p === -1)]).toEqual([0, true]);
  expect(recognisability(images(20, noise), reference, { maxDistance: bound }).recognisable).toBe(0);
});

test("measureDigits reports the samples next to the real digits' ceiling", async () => {
  const m = await measureDigits(images(10, real.pixels.subarray(0, 10 * 784)), { heldOut: 50 });
  expect(m.realDigits.count).toBe(50);
  expect(m.realDigits.recognisable).toBeGreaterThan(0.5);
  expect(m.realDigits.correct).toBeLessThanOrEqual(m.realDigits.recognisable);
  expect(m.samples.count).toBe(10);
});

test('images that are not 28×28 grayscale, and bad k or minVotes, are refused with the argument named', () => {
  const wrong = { count: 1, width: 32, height: 32, channels: 1, pixels: new Uint8Array(32 * 32) };
  expect(() => recognisability(wrong, reference)).toThrow(InvalidArgumentError);
  expect(() => recognisability(wrong, reference)).toThrow(/28×28 single-channel images .* for images but received "1 of 32×32×1"/);
  const one = images(1, real.pixels.subarray(0, 784));
  expect(() => recognisability(one, reference, { k: 0 })).toThrow(/for options\.k/);
  expect(() => recognisability(one, reference, { k: 5, minVotes: 6 })).toThrow(/minVotes in 1…5 for options\.minVotes/);
});
