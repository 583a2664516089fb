// The recipe's text-encoder training and textual inversion: defaults, field-path errors, and the one choice
// of what trains of the encoder (own weights, adapters, or textual inversion's new tokens). Pure.
import { parseRecipe } from '../../lib/config/recipe';
import { parseFreezeOptions } from '../../lib/config/freeze';

const minimal = {
  model: { pretrained: 'sd' },
  data: { source: 'imagefolder', path: 'images', resolution: 32 },
  train: { steps: 10, lr: 1e-4 },
  output: 'runs/x',
};

test('defaults: the encoder frozen, no textual inversion, no encoder lr; lora.textEncoder with diffusers’ attention targets', () => {
  const r = parseRecipe(minimal, 'r.json');
  expect(parseFreezeOptions(r.freeze).textEncoder).toBe('frozen');
  expect(r.textualInversion).toBeNull();
  expect(r.train.textEncoderLr).toBeNull();
  const lora = parseRecipe({ ...minimal, lora: { textEncoder: {} } }, 'r.json').lora;
  expect(lora?.textEncoder).toEqual({ rank: 4, targets: ['q_proj', 'k_proj', 'v_proj', 'out_proj'] });
  expect(parseRecipe({ ...minimal, lora: {} }, 'r.json').lora?.textEncoder).toBeNull();
  const ti = parseRecipe({ ...minimal, textualInversion: { placeholderToken: '<cat-toy>', initializerToken: 'toy' } }, 'r.json').textualInversion;
  expect(ti).toEqual({ placeholderToken: '<cat-toy>', initializerToken: 'toy', numVectors: 1, templates: 'object', saveAsFullPipeline: false });
  expect(parseFreezeOptions({ textEncoder: ['text_model.encoder.layers.1.**'] }).textEncoder).toEqual(['text_model.encoder.layers.1.**']);
});

test.each([
  [
    { lora: { textEncoder: { targets: ['to_q'] } } },
    /r\.json: lora\.textEncoder\.targets\[0\]: Invalid enum value. Expected 'q_proj' \| 'k_proj' \| 'v_proj' \| 'out_proj' \| 'fc1' \| 'fc2'/,
  ],
  [{ lora: { textEncoder: { rank: 0 } } }, /lora\.textEncoder\.rank/],
  [{ freeze: { textEncoder: 'some' } }, /freeze\.textEncoder/],
  [{ freeze: { textEncoder: ['re:('] } }, /freeze\.textEncoder\[0\]/],
  [{ textualInversion: { placeholderToken: '<x>' } }, /textualInversion\.initializerToken: Required/],
  [{ textualInversion: { placeholderToken: '<x>', initializerToken: 'toy', templates: ['a photo'] } }, /textualInversion\.templates.*"\{\}"/],
  [{ textualInversion: { placeholderToken: '<x>', initializerToken: 'toy', numVectors: 0 } }, /textualInversion\.numVectors/],
  [
    { textualInversion: { placeholderToken: '<x>', initializerToken: 'toy' }, lora: {} },
    /r\.json: lora: textualInversion trains only the new tokens' embeddings/,
  ],
  [
    { textualInversion: { placeholderToken: '<x>', initializerToken: 'toy' }, freeze: { textEncoder: 'full' } },
    /freeze\.textEncoder: textualInversion trains only/,
  ],
  [
    { textualInversion: { placeholderToken: '<x>', initializerToken: 'toy' }, dreambooth: { instancePrompt: 'sks' } },
    /dreambooth: textualInversion trains only/,
  ],
  [
    { lora: {}, freeze: { textEncoder: 'full' } },
    /freeze\.textEncoder: this is a LoRA run \(lora\), whose base stays frozen; train the text encoder with lora\.textEncoder/,
  ],
  [{ train: { steps: 1, lr: 1e-4, textEncoderLr: 1e-5 } }, /train\.textEncoderLr: nothing of the text encoder trains/],
])('a bad text-encoder setting names the field (%#)', (extra, message) => {
  expect(() => parseRecipe({ ...minimal, ...extra }, 'r.json')).toThrow(message);
});

test('train.textEncoderLr goes with a training encoder', () => {
  expect(parseRecipe({ ...minimal, train: { steps: 1, lr: 1e-4, textEncoderLr: 1e-5 }, freeze: { textEncoder: 'full' } }, 'r.json').train.textEncoderLr).toBe(
    1e-5,
  );
  expect(
    parseRecipe({ ...minimal, train: { steps: 1, lr: 1e-4, textEncoderLr: 1e-5 }, lora: { textEncoder: { rank: 2 } } }, 'r.json').lora?.textEncoder?.rank,
  ).toBe(2);
});
