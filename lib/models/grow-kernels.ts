/**
 * The small kernels of growing a U-Net to twice its resolution (docs/grow-unet.md): each is a
 * Float32Array in PyTorch's conv layout [out, in, kh, kw] (row-major). Pure arithmetic, no addon.
 *
 * Cross-correlation: tap index 1+k of a 3×3 kernel reads the input at p+k.
 */
import { Rng } from '../data/random';
import { InvalidArgumentError } from '../errors';

/** Per-axis tap choice of the new level's stride-2 downsampler for an old conv_in tap k ∈ {-1, 0, 1}: offset a and phase s. */
const TAP_OF_OLD = [
  { a: -1, s: 0 }, // k = -1: X(2i-1+0) = x(i-1)
  { a: 0, s: 0 }, //  k =  0: X(2i+0+0) = x(i)
  { a: 1, s: 1 }, //  k = +1: X(2i+1+1) = x(i+1)
] as const;

/**
 * The grown model's conv_in [c0, cin, 3, 3]: four shifted copies of the (nearest-upsampled) input.
 * Output channel (2·sa+sb)·cin + c reads input channel c at (p + sa, q + sb); channels from 4·cin on are 0.
 */
export function shiftedCopiesConvIn(c0: number, cin: number): Float32Array {
  if (4 * cin > c0) throw new InvalidArgumentError(`shiftedCopiesConvIn: expected 4·in_channels (${4 * cin}) to be at most block_out_channels[0] (${c0})`);
  const w = new Float32Array(c0 * cin * 9);
  for (let sa = 0; sa < 2; sa++) {
    for (let sb = 0; sb < 2; sb++) {
      for (let c = 0; c < cin; c++) {
        const o = (2 * sa + sb) * cin + c;
        w[((o * cin + c) * 3 + (1 + sa)) * 3 + (1 + sb)] = 1;
      }
    }
  }
  return w;
}

/**
 * The new level's downsampler [c0, c0, 3, 3] (stride 2, padding 1) from the old conv_in [c0, cin, 3, 3]:
 * on the shifted copies of up2(x) it computes exactly the old conv_in on x.
 */
export function downsamplerFromConvIn(oldConvIn: Float32Array, c0: number, cin: number): Float32Array {
  if (oldConvIn.length !== c0 * cin * 9) throw new InvalidArgumentError(`downsamplerFromConvIn: expected a conv_in weight of ${c0}×${cin}×3×3 = ${c0 * cin * 9} values but found ${oldConvIn.length}`);
  const w = new Float32Array(c0 * c0 * 9);
  for (let o = 0; o < c0; o++) {
    for (let c = 0; c < cin; c++) {
      for (let ka = 0; ka < 3; ka++) {
        for (let kb = 0; kb < 3; kb++) {
          const ta = TAP_OF_OLD[ka]!;
          const tb = TAP_OF_OLD[kb]!;
          const inChannel = (2 * ta.s + tb.s) * cin + c;
          w[((o * c0 + inChannel) * 3 + (1 + ta.a)) * 3 + (1 + tb.a)] = oldConvIn[((o * cin + c) * 3 + ka) * 3 + kb]!;
        }
      }
    }
  }
  return w;
}

/** A 3×3 conv [c, c, 3, 3] that copies its input: the center tap is the identity. */
export function identityConv3x3(c: number): Float32Array {
  const w = new Float32Array(c * c * 9);
  for (let i = 0; i < c; i++) w[(i * c + i) * 9 + 4] = 1;
  return w;
}

/** A 1×1 conv [out, in, 1, 1] that passes the first `out` input channels through and drops the rest. */
export function passThroughShortcut(out: number, inChannels: number): Float32Array {
  if (inChannels < out) throw new InvalidArgumentError(`passThroughShortcut: expected at least ${out} input channels but found ${inChannels}`);
  const w = new Float32Array(out * inChannels);
  for (let i = 0; i < out; i++) w[i * inChannels + i] = 1;
  return w;
}

/**
 * conv_out for the grown model [cout, c0, 3, 3]: W' = A⁻¹ W A⁻ᵀ per (out, in) pair, so that the 2×2
 * average of W' applied to a nearest-upsampled input equals W applied to the original. A (rows: old tap
 * −1, 0, +1; columns: new tap) = [[.5,0,0],[.5,1,.5],[0,0,.5]]; A⁻¹ = [[2,0,0],[−1,1,−1],[0,0,2]].
 */
export function convOutForUpsampled(w: Float32Array, cout: number, c0: number): Float32Array {
  if (w.length !== cout * c0 * 9) throw new InvalidArgumentError(`convOutForUpsampled: expected a conv_out weight of ${cout}×${c0}×3×3 = ${cout * c0 * 9} values but found ${w.length}`);
  const inv = [
    [2, 0, 0],
    [-1, 1, -1],
    [0, 0, 2],
  ];
  const out = new Float32Array(w.length);
  for (let p = 0; p < cout * c0; p++) {
    const base = p * 9;
    for (let a = 0; a < 3; a++) {
      for (let b = 0; b < 3; b++) {
        let sum = 0;
        for (let k = 0; k < 3; k++) {
          const ik = inv[a]![k]!;
          if (ik === 0) continue;
          for (let l = 0; l < 3; l++) sum += ik * w[base + k * 3 + l]! * inv[b]![l]!;
        }
        out[base + a * 3 + b] = sum;
      }
    }
  }
  return out;
}

/**
 * torch.nn's default init of a conv or linear layer (kaiming_uniform with a = √5, and the bias alike):
 * uniform in ±1/√fan_in, fan_in = in × kh × kw. Deterministic from `rng`.
 */
export function defaultInitUniform(length: number, fanIn: number, rng: Rng): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = (2 * rng.float() - 1) * bound;
  return out;
}
