// The memory plan of a fine-tuning run: activations counted from the architecture block by block, and
// the plan's lines (weights, gradients, optimizer state, the step). Pure: no addon.
import { parseUNetConfig, type UNetConfig } from '../../../lib/config/unet';
import { unetActivations } from '../../../lib/config/unet-activations';
import { formatMemoryPlan, planTrainingMemory, RUNTIME_BYTES, type TrainingMemoryInput } from '../../../lib/train/memory-plan';

// The SD 1.5 U-Net (runwayml/stable-diffusion-v1-5 unet/config.json).
const SD15 = parseUNetConfig(
  {
    _class_name: 'UNet2DConditionModel',
    attention_head_dim: 8,
    block_out_channels: [320, 640, 1280, 1280],
    cross_attention_dim: 768,
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    in_channels: 4,
    out_channels: 4,
    layers_per_block: 2,
    sample_size: 64,
  },
  'sd15',
).config;

// A one-level UNet2DModel: conv_in, one DownBlock2D resnet, no mid block, one UpBlock2D of two resnets.
const ONE_LEVEL = parseUNetConfig(
  {
    _class_name: 'UNet2DModel',
    block_out_channels: [32],
    down_block_types: ['DownBlock2D'],
    up_block_types: ['UpBlock2D'],
    layers_per_block: 1,
    mid_block_type: null,
    norm_num_groups: 8,
  },
  'one-level',
).config;

test('a resnet keeps 3 maps of its input channels and 3 of its output channels', () => {
  const a = unetActivations(ONE_LEVEL, { height: 8, width: 8, textTokens: 0 });
  const p = 64;
  const byName = new Map(a.blocks.map((b) => [b.name, b.elements]));
  expect(byName.get('down_blocks.0')).toBe(6 * 32 * p);
  // Two up resnets, each over [x; skip] = 64 channels → 32.
  expect(byName.get('up_blocks.0')).toBe(2 * (3 * 64 * p + 3 * 32 * p));
  expect(byName.get('conv_out')).toBe(3 * 32 * p);
  // Checkpointing per layer keeps the skips (conv_in's and the resnet's output) and each up resnet's output.
  expect(a.boundaries).toBe(4 * 32 * p);
});

test("SD 1.5 at 64² latents: the level-0 self-attention scores dominate, and checkpointing keeps about one transformer's worth", () => {
  const a = unetActivations(SD15, { height: 64, width: 64, textTokens: 77 });
  const scores = 8 * 4096 * 4096;
  const down0 = a.blocks.find((b) => b.name === 'down_blocks.0')!.elements;
  const up3 = a.blocks.find((b) => b.name === 'up_blocks.3')!.elements;
  expect(down0).toBeGreaterThan(2 * scores);
  expect(up3).toBeGreaterThan(3 * scores);
  expect(up3).toBeLessThan(3 * scores * 1.5);
  // Checkpointed per resnet and per transformer (as diffusers): one level-0 transformer is recomputed at a time.
  const recomputed = (name: string) => a.blocks.find((b) => b.name === name)!.recomputed.reduce((x, [size, count]) => x + size * count, 0);
  expect(recomputed('up_blocks.3')).toBeGreaterThan(scores);
  expect(recomputed('up_blocks.3')).toBeLessThan(up3 / 3);
  expect(a.checkpointed).toBeGreaterThan(recomputed('up_blocks.3') + a.boundaries);
  expect(a.checkpointed).toBeLessThan(a.plain * 0.25);
  // fp32, batch 1: about 4.9 GB without checkpointing, 1.0 GB with it.
  expect(a.plain * 4).toBeGreaterThan(4.4e9);
  expect(a.plain * 4).toBeLessThan(5.2e9);
  expect(a.checkpointed * 4).toBeGreaterThan(0.9e9);
  expect(a.checkpointed * 4).toBeLessThan(1.1e9);
});

function sd15Input(overrides: Partial<TrainingMemoryInput> = {}): TrainingMemoryInput {
  // Two parameters per block stand in for the real list: what matters is their block and size.
  const parameters = [
    { name: 'conv_in.weight', numel: 11_520 },
    { name: 'down_blocks.0.resnets.0.conv1.weight', numel: 200e6 },
    { name: 'mid_block.resnets.0.conv1.weight', numel: 100e6 },
    { name: 'up_blocks.3.resnets.0.conv1.weight', numel: 559.5e6 },
    { name: 'up_blocks.3.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight', numel: 400e3 },
    { name: 'up_blocks.3.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight', numel: 397_184 },
  ];
  return {
    unetConfig: SD15,
    parameters,
    trainable: new Set(parameters.filter((p) => p.name.includes('lora_')).map((p) => p.name)),
    loraNumel: 797_184,
    batch: 1,
    height: 64,
    width: 64,
    imageHeight: 512,
    imageWidth: 512,
    textTokens: 77,
    gradientCheckpointing: true,
    mixedPrecision: 'no',
    ema: false,
    gradientAccumulation: 1,
    ...overrides,
  };
}

test('a LoRA run: weights whole, gradients and optimizer state for the adapters only', () => {
  const plan = planTrainingMemory(sd15Input());
  const line = (label: string) => plan.lines.find((l) => l.label === label)!;
  expect(line('runtime').bytes).toBe(RUNTIME_BYTES);
  expect(line('U-Net weights').bytes).toBe(4 * 859.5e6 + 4 * 11_520);
  expect(line('LoRA weights').bytes).toBe(4 * 797_184);
  expect(line('optimizer state').bytes).toBe(8 * 797_184);
  expect(plan.total).toBe(plan.lines.reduce((a, l) => a + l.bytes, 0));
  expect(plan.activations.used).toBe('checkpointed');
  expect(formatMemoryPlan(plan)).toMatch(/^Memory plan: about \d+\.\d\d GB at the peak/);
  expect(formatMemoryPlan(plan)).toMatch(
    /step: activations \+ gradients\s+\d+ MB {2}batch 1 at 64×64, fp32 activations and gradients: \d\.\d\d GB without gradient checkpointing, \d+ MB with it \(on\)/,
  );
});

test('full fine-tuning: gradients arrive as backward frees activations; accumulation holds them whole', () => {
  const lora = sd15Input();
  const all = new Set(lora.parameters.filter((p) => !p.name.includes('lora_')).map((p) => p.name));
  const full = planTrainingMemory({ ...lora, parameters: lora.parameters.filter((p) => !p.name.includes('lora_')), loraNumel: 0, trainable: all });
  const step = (p: ReturnType<typeof planTrainingMemory>) => p.lines.find((l) => l.label.startsWith('step'))!.bytes;
  const gradients = 4 * 859.5e6 + 4 * 11_520;
  // With checkpointing the gradients (3.4 GB) outweigh what is recomputed: the step is about them plus a block.
  expect(step(full)).toBeGreaterThan(gradients);
  expect(step(full)).toBe(full.activations.checkpointed);
  expect(full.lines.find((l) => l.label === 'optimizer state')!.bytes).toBe(2 * gradients);
  const accumulating = planTrainingMemory({
    ...lora,
    parameters: lora.parameters.filter((p) => !p.name.includes('lora_')),
    loraNumel: 0,
    trainable: all,
    gradientAccumulation: 2,
  });
  expect(step(accumulating)).toBeGreaterThan(step(full));
  const ema = planTrainingMemory({ ...lora, ema: true });
  expect(ema.lines.find((l) => l.label === 'optimizer state')!.bytes).toBe(12 * 797_184);
});

test('checkpointing, bf16 autocast and batch size move the step as the activations do', () => {
  const step = (o: Partial<TrainingMemoryInput>) => planTrainingMemory(sd15Input(o)).lines.find((l) => l.label.startsWith('step'))!.bytes;
  expect(step({ gradientCheckpointing: false })).toBeGreaterThan(1.8 * step({}));
  // About in proportion; smaller tensors count more allocator slack, larger ones less.
  expect(step({ mixedPrecision: 'bf16' }) / step({})).toBeGreaterThan(0.45);
  expect(step({ mixedPrecision: 'bf16' }) / step({})).toBeLessThan(0.6);
  expect(step({ batch: 2 }) / step({})).toBeGreaterThan(1.7);
  expect(step({ batch: 2 }) / step({})).toBeLessThan(2.1);
});

test("a text-to-image run adds the frozen models, and the VAE's encoding when latents are not cached", () => {
  const vaeConfig = { block_out_channels: [128, 256, 512, 512], out_channels: 3, mid_block_add_attention: true } as unknown as NonNullable<
    TrainingMemoryInput['frozen']
  >['vaeConfig'];
  const cached = planTrainingMemory(sd15Input({ frozen: { vaeNumel: 83.65e6, textEncoderNumel: 123.06e6, vaeConfig, encodesImages: false } }));
  expect(cached.lines.find((l) => l.label === 'frozen VAE + text encoder')!.bytes).toBeCloseTo(4 * (83.65e6 + 123.06e6));
  const config: UNetConfig = SD15;
  expect(config._class_name).toBe('UNet2DConditionModel');
  const encoding = planTrainingMemory(
    sd15Input({
      gradientCheckpointing: true,
      batch: 8,
      height: 8,
      width: 8,
      frozen: { vaeNumel: 83.65e6, textEncoderNumel: 123.06e6, vaeConfig, encodesImages: true },
    }),
  );
  expect(encoding.lines.find((l) => l.label.startsWith('step'))!.detail).toMatch(/the VAE's encoding of a batch/);
});
