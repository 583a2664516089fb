/**
 * How a random-weight model's tensors are drawn, by name and shape alone: torch.nn's default
 * initialisation of the layer each tensor belongs to, so a model made tensor by tensor (init-pipeline)
 * has the scale of one built with `fromConfig`. Linear and Conv2d weights and their biases get
 * U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5), here as a Gaussian of that variance because
 * draws are Gaussian; GroupNorm / LayerNorm weights 1 and biases 0; Embedding tables N(0, 1). Pure.
 */
import { InternalError } from '../errors';

export type InitRule =
  /** N(0, std²). */
  | { readonly kind: 'normal'; readonly std: number }
  /** Every element `value`. */
  | { readonly kind: 'constant'; readonly value: number };

/** Fallback for a tensor of no recognised layer: transformers' initializer_range. */
const OTHER_STD = 0.02;

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** torch's uniform(−b, b) with b = 1/√fan_in, as a Gaussian of the same variance (b²/3). */
function defaultLayerInit(fanIn: number): InitRule {
  return { kind: 'normal', std: fanIn > 0 ? 1 / Math.sqrt(3 * fanIn) : 0 };
}

/**
 * The rule for tensor `name` of a model whose tensors are `shapes` (name → shape): a ≥2-D `.weight` is a
 * Linear/Conv2d kernel (fan_in = all but its first dimension) unless it is a bias-less `…embedding…`
 * table; a 1-D `.weight` is a norm's scale; a `.bias` follows its module's weight.
 */
export function initRule(name: string, shapes: ReadonlyMap<string, readonly number[]>): InitRule {
  const shape = shapes.get(name);
  if (shape === undefined) throw new InternalError(`initRule: expected one of the model's tensors, received "${name}"`);
  const dot = name.lastIndexOf('.');
  const module = name.slice(0, dot);
  const leaf = name.slice(dot + 1);
  const weight = shapes.get(`${module}.weight`);
  if (leaf === 'weight' && shape.length >= 2) {
    if (!shapes.has(`${module}.bias`) && /embedding/.test(module)) return { kind: 'normal', std: 1 };
    return defaultLayerInit(numel(shape.slice(1)));
  }
  if (leaf === 'weight' && shape.length === 1) return { kind: 'constant', value: 1 };
  if (leaf === 'bias') return weight !== undefined && weight.length >= 2 ? defaultLayerInit(numel(weight.slice(1))) : { kind: 'constant', value: 0 };
  return { kind: 'normal', std: OTHER_STD };
}
