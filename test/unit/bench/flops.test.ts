import { backwardFlops, countFlops } from '../../../lib/bench/flops';

const input = { levels: 3, height: 16, width: 16, batch: 2, encoderSeqLen: 7 };

describe('countFlops', () => {
  it('counts a conv at its output size: 2·Cout·Cin·k² per output pixel and sample', () => {
    const c = countFlops([{ name: 'conv_in.weight', shape: [32, 3, 3, 3] }], input);
    expect(c.conv).toBe(2 * 32 * 3 * 9 * 16 * 16 * 2);
    expect(c.forward).toBe(c.conv);
  });

  it('places layers by level: down blocks, downsamplers (stride 2), mid block, up blocks, upsamplers', () => {
    const w = [8, 8, 1, 1];
    const one = (name: string): number => countFlops([{ name, shape: w }], input).conv / (2 * 64 * 2);
    expect(one('down_blocks.1.resnets.0.conv1.weight')).toBe(8 * 8);
    expect(one('down_blocks.1.downsamplers.0.conv.weight')).toBe(4 * 4);
    expect(one('mid_block.resnets.0.conv1.weight')).toBe(4 * 4);
    expect(one('up_blocks.0.resnets.0.conv1.weight')).toBe(4 * 4);
    expect(one('up_blocks.0.upsamplers.0.conv.weight')).toBe(8 * 8);
    expect(one('up_blocks.2.resnets.0.conv1.weight')).toBe(16 * 16);
    expect(one('conv_out.weight')).toBe(16 * 16);
  });

  it('counts linears per token: one row for embeddings, text tokens for cross-attention K/V, pixels otherwise', () => {
    const lin = (name: string, shape = [4, 5]): number => countFlops([{ name, shape }], input).linear / (2 * 20 * 2);
    expect(lin('time_embedding.linear_1.weight')).toBe(1);
    expect(lin('down_blocks.0.resnets.0.time_emb_proj.weight')).toBe(1);
    expect(lin('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight')).toBe(7);
    expect(lin('down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight')).toBe(256);
    // LoRA factors run at the host layer's token count.
    expect(lin('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v.lora_A.weight', [2, 10])).toBe(7);
  });

  it("adds attention's two matmuls per to_q: self over N×N, cross over N×text", () => {
    const self = countFlops([{ name: 'mid_block.attentions.0.to_q.weight', shape: [16, 16] }], input);
    expect(self.attention).toBe(2 * 2 * 16 * 16 * 16 * 2);
    const cross = countFlops([{ name: 'mid_block.attentions.0.transformer_blocks.0.attn2.to_q.weight', shape: [16, 16] }], input);
    expect(cross.attention).toBe(2 * 2 * 16 * 7 * 16 * 2);
  });

  it('ignores biases and norms; backward adds input gradients (not conv_in) and trainable weight gradients', () => {
    const layers = [
      { name: 'conv_in.weight', shape: [8, 3, 3, 3] },
      { name: 'conv_in.bias', shape: [8] },
      { name: 'conv_norm_out.weight', shape: [8] },
      { name: 'conv_out.weight', shape: [3, 8, 3, 3] },
      { name: 'mid_block.attentions.0.to_q.weight', shape: [8, 8] },
    ];
    const c = countFlops(layers, input);
    expect(c.perWeight.size).toBe(3);
    const convIn = c.perWeight.get('conv_in.weight')!;
    // weights W = forward − attention: all trainable → (W − conv_in) + W + 2·attention = 2·forward − conv_in.
    expect(backwardFlops(c, () => true)).toBe(2 * c.forward - convIn);
    expect(backwardFlops(c, () => false)).toBe(c.forward - convIn + c.attention);
  });
});
