// What every GPU test file shares: whether this process can reach a CUDA device (runtimeInfo()'s
// answer, read once and synchronously so that describe blocks can be chosen at collection time), and
// the tier's tolerances. Where CUDA is absent every file's tests are skipped; test/gpu/run.js says why in
// one line before jest starts.
import { loadNative } from '../../lib/native/load';

const info = loadNative().runtimeInfo();

export const CUDA = info.cudaAvailable && info.cudaDeviceCount > 0;
export const DEVICE = 'cuda:0';
export const TORCH_VERSION = info.torchVersion;
export const DEVICE_COUNT = info.cudaDeviceCount;

/** describe on a CUDA machine, describe.skip elsewhere. */
export const describeGpu: jest.Describe = CUDA ? describe : describe.skip;

/**
 * How far a CUDA float32 result may sit from diffusers' CPU float32 one, as a multiple of the fixtures'
 * CPU bounds (forward 1e-5, gradients 5e-5, loops 1e-4). With TF32 off (NVIDIA_TF32_OVERRIDE=0, which
 * test/gpu/run.js sets), cuBLAS/cuDNN still sum in other orders and pick other algorithms (Winograd, FFT,
 * implicit GEMM) than the CPU's: measured elsewhere at a few 1e-6 to 1e-5 relative on convolution stacks of
 * this depth, so ×10 the CPU bound. Stated here, checked on the device run, not derived from first principles.
 */
export const CUDA_TOLERANCE_FACTOR = 10;

/**
 * bf16 autocast against float32, relative to the float32 result's max |value|: bf16 keeps 8 bits of
 * mantissa (2^-8 ≈ 3.9e-3 per rounding), and a tiny U-Net's output passes ~10 roundings that partly
 * cancel: 5e-2. fp16 (11 bits): 1e-2.
 */
export const AUTOCAST_BOUND = { bf16: 5e-2, fp16: 1e-2 } as const;
