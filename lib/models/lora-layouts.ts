/**
 * The LoRA file layouts diffusers v0.31 reads for SD 1.x/2.x pipelines, as one table of key patterns
 * (our reading of diffusers' lora_conversion_utils.py, state_dict_utils.py and loaders/): which tensor
 * is which adapter's down (A) or up (B) weight or kohya alpha, of which layer of which component. Pure:
 * names in, groups out; every name of the file is accounted for or the file is refused, naming them.
 *
 * - PEFT: `unet.<layer>.lora_A.weight` / `lora_B.weight` (`text_encoder.` for the text encoder).
 * - diffusers' training scripts (`convert_state_dict_to_diffusers`, train_text_to_image_lora.py,
 *   train_dreambooth_lora.py): `unet.<layer>.lora.down.weight` / `lora.up.weight` for attention
 *   projections (other layers stay lora_A/lora_B in the same file) and
 *   `text_encoder.<layer>.lora_linear_layer.down.weight` / `up.weight`.
 * - attention processors (save_attn_procs before PEFT): `<attn>.processor.to_q_lora.down.weight`,
 *   to_k/to_v, `to_out_lora` (→ to_out.0; in the text encoder q_proj/k_proj/v_proj/out_proj), with or
 *   without the `unet.` prefix.
 * - kohya / A1111 / LyCORIS LoCon: `lora_unet_<layer with _>.lora_down.weight` / `.lora_up.weight` /
 *   `.alpha`, `lora_te_…` or `lora_te1_…` for the text encoder; any Linear or Conv2d layer (resnets'
 *   conv1/conv2/conv_shortcut/time_emb_proj, proj_in/proj_out, down/upsamplers' conv).
 * Keys without a component prefix belong to the U-Net (diffusers' legacy files), or to the text
 * encoder when they start with `text_model.`.
 */
import { ConfigError } from '../errors';

export type LoraComponent = 'unet' | 'text_encoder';
export type LoraLayout = 'peft' | 'diffusers' | 'attn-procs' | 'kohya';

/** The layers each component has (names of Linear/Conv2d layers: a `.weight` parameter's prefix). */
export interface LoraTargets {
  unet: readonly string[];
  /** Absent: the caller loads a U-Net alone, and text-encoder weights in the file are an error. */
  textEncoder?: readonly string[];
}

/** One adapter of the file: the names of its tensors. */
export interface LoraKeyGroup {
  component: LoraComponent;
  /** The layer, as the component's state dict names it ("down_blocks.0…to_q", "text_model.encoder.layers.0.self_attn.q_proj"). */
  module: string;
  layout: LoraLayout;
  down: string;
  up: string;
  /** kohya: the scalar alpha tensor, when the file has one. */
  alpha?: string;
}

const COMPONENT_NAMES: Readonly<Record<LoraComponent, string>> = { unet: 'U-Net', text_encoder: 'text encoder' };

/** kohya's name of a layer: the prefix, then the dotted path with every dot an underscore. */
export function kohyaLayerName(component: LoraComponent, module: string): string {
  return `${component === 'unet' ? 'lora_unet' : 'lora_te'}_${module.replace(/\./g, '_')}`;
}

// Old attention-processor names → the projection they adapt, per component.
const PROCESSOR_PROJECTIONS: Readonly<Record<LoraComponent, Readonly<Record<string, string>>>> = {
  unet: { to_q: 'to_q', to_k: 'to_k', to_v: 'to_v', to_out: 'to_out.0' },
  text_encoder: { to_q: 'q_proj', to_k: 'k_proj', to_v: 'v_proj', to_out: 'out_proj' },
};

type Part = 'down' | 'up' | 'alpha';

interface ParsedKey {
  component: LoraComponent;
  /** The layer path (dotted layouts) or kohya's underscore name (resolved later). */
  module: string;
  kohya: boolean;
  layout: LoraLayout;
  part: Part;
}

/** Keys a file may hold that difftune refuses with a reason rather than as unknown. */
function refusal(name: string): string | undefined {
  if (/^text_encoder_2\.|^lora_te2_/.test(name)) return 'a second text encoder (text_encoder_2 / lora_te2_: SDXL); SD 1.x/2.x pipelines have one';
  if (/lora_magnitude_vector|\.dora_scale$/.test(name)) return 'DoRA magnitudes (lora_magnitude_vector / dora_scale), which difftune does not apply';
  if (/\.(hada_w[12]_[ab]|hada_t[12]|lokr_w[12](_[ab])?|lokr_t2|lora_mid\.weight|diff|diff_b|ia3_w)$/.test(name))
    return 'LyCORIS LoHa/LoKr/Tucker/IA3/full-diff tensors, which are not LoRA (only lora_down/lora_up/alpha are read)';
  return undefined;
}

function parseDotted(name: string): ParsedKey | undefined {
  let component: LoraComponent = 'unet';
  let rest = name;
  if (rest.startsWith('unet.')) rest = rest.slice('unet.'.length);
  else if (rest.startsWith('text_encoder.')) {
    component = 'text_encoder';
    rest = rest.slice('text_encoder.'.length);
  } else if (rest.startsWith('text_model.')) component = 'text_encoder';
  // diffusers drops ".processor." from every key before mapping (KEYS_TO_ALWAYS_REPLACE).
  rest = rest.replace(/\.processor\./g, '.');
  let m = /^(.+)\.lora_([AB])\.weight$/.exec(rest);
  if (m) return { component, module: m[1]!, kohya: false, layout: 'peft', part: m[2] === 'A' ? 'down' : 'up' };
  m = /^(.+)\.(?:lora|lora_linear_layer)\.(down|up)\.weight$/.exec(rest);
  if (m) return { component, module: m[1]!, kohya: false, layout: 'diffusers', part: m[2] as Part };
  m = /^(.+)\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/.exec(rest);
  if (m) return { component, module: `${m[1]!}.${PROCESSOR_PROJECTIONS[component][m[2]!]!}`, kohya: false, layout: 'attn-procs', part: m[3] as Part };
  return undefined;
}

function parseKohya(name: string): ParsedKey | undefined {
  const m = /^(lora_unet|lora_te1?)_([^.]+)\.(lora_down\.weight|lora_up\.weight|alpha)$/.exec(name);
  if (!m) return undefined;
  const part: Part = m[3] === 'alpha' ? 'alpha' : m[3] === 'lora_down.weight' ? 'down' : 'up';
  return { component: m[1] === 'lora_unet' ? 'unet' : 'text_encoder', module: m[2]!, kohya: true, layout: 'kohya', part };
}

/** "a, b, c (and 7 more)": the first few of a list, and how many were left out. */
export function listSome(items: readonly string[], few = 5): string {
  const shown = items.slice(0, few).join(', ');
  return items.length > few ? `${shown} (and ${items.length - few} more)` : shown;
}

/**
 * Every tensor of a LoRA file grouped into adapters of `targets`' layers. Refuses (ConfigError naming
 * `file` and the first few keys with the count) keys of no known layout, layers the model lacks, an
 * adapter without its down or up weight or given twice, text-encoder weights when `targets` has no
 * text encoder, and what difftune does not apply (SDXL's second text encoder, DoRA, LyCORIS non-LoRA).
 */
export function groupLoraKeys(names: readonly string[], targets: LoraTargets, file: string): LoraKeyGroup[] {
  const refused = new Map<string, string[]>();
  const unknown: string[] = [];
  const parsed: Array<{ name: string; key: ParsedKey }> = [];
  for (const name of names) {
    const reason = refusal(name);
    if (reason !== undefined) {
      refused.set(reason, [...(refused.get(reason) ?? []), name]);
      continue;
    }
    const key = name.startsWith('lora_') ? parseKohya(name) : parseDotted(name);
    if (key === undefined) unknown.push(name);
    else parsed.push({ name, key });
  }
  for (const [reason, keys] of refused) throw new ConfigError(`${file}: holds ${reason}: ${keys.length} tensor${keys.length === 1 ? '' : 's'}: ${listSome(keys)}`);
  if (unknown.length > 0) {
    throw new ConfigError(
      `${file}: ${unknown.length} tensor${unknown.length === 1 ? ' matches' : 's match'} no LoRA layout difftune reads ` +
        `(PEFT <layer>.lora_A/lora_B.weight, diffusers <layer>.lora.down/up.weight or .lora_linear_layer.down/up.weight, ` +
        `attention processors <attn>.processor.to_q_lora.down/up.weight, kohya lora_unet_/lora_te_<layer>.lora_down/lora_up.weight and .alpha; ` +
        `an optional unet./text_encoder. prefix): ${listSome(unknown)}`,
    );
  }

  const withTe = parsed.filter((p) => p.key.component === 'text_encoder');
  if (withTe.length > 0 && targets.textEncoder === undefined) {
    throw new ConfigError(
      `${file}: holds text-encoder LoRA weights (${withTe.length} tensors, e.g. ${listSome(withTe.map((p) => p.name), 2)}) but only a U-Net is loading it: ` +
        `load it onto a Stable Diffusion pipeline (applyLoraFile(pipeline, file); npm run sample -- --model <pipeline folder> --lora <file>)`,
    );
  }
  const layers: Record<LoraComponent, ReadonlySet<string>> = { unet: new Set(targets.unet), text_encoder: new Set(targets.textEncoder ?? []) };
  const kohyaNames: Record<LoraComponent, Map<string, string>> = {
    unet: new Map(targets.unet.map((m) => [m.replace(/\./g, '_'), m])),
    text_encoder: new Map((targets.textEncoder ?? []).map((m) => [m.replace(/\./g, '_'), m])),
  };

  const noLayer: Record<LoraComponent, string[]> = { unet: [], text_encoder: [] };
  const groups = new Map<string, LoraKeyGroup & { down?: string; up?: string }>();
  const duplicates: string[] = [];
  for (const { name, key } of parsed) {
    const module = key.kohya ? kohyaNames[key.component].get(key.module) : layers[key.component].has(key.module) ? key.module : undefined;
    if (module === undefined) {
      noLayer[key.component].push(name);
      continue;
    }
    const id = `${key.component}:${module}`;
    let group = groups.get(id);
    if (group === undefined) {
      group = { component: key.component, module, layout: key.layout, down: '', up: '' };
      groups.set(id, group);
    } else if (group.layout !== key.layout && !(isMixable(group.layout) && isMixable(key.layout))) {
      duplicates.push(name);
      continue;
    }
    if (key.part === 'alpha') {
      if (group.alpha !== undefined) duplicates.push(name);
      group.alpha = name;
    } else {
      if (group[key.part] !== '') duplicates.push(name);
      group[key.part] = name;
      if (key.layout !== 'peft') group.layout = key.layout;
    }
  }
  for (const component of ['unet', 'text_encoder'] as const) {
    const keys = noLayer[component];
    if (keys.length > 0) {
      // Original (LDM) block names: diffusers maps them only for SDXL's U-Net, not SD 1.x/2.x's.
      const ldm = component === 'unet' && keys.some((k) => /_(input_blocks|middle_block|output_blocks)_/.test(k)) ? ' (original-layout block names such as input_blocks are not mapped, as in diffusers for SD 1.x/2.x)' : '';
      throw new ConfigError(`${file}: ${keys.length} LoRA tensor${keys.length === 1 ? ' names' : 's name'} no Linear/Conv2d layer of this ${COMPONENT_NAMES[component]}${ldm}: ${listSome(keys)}`);
    }
  }
  if (duplicates.length > 0) throw new ConfigError(`${file}: ${duplicates.length} LoRA tensor${duplicates.length === 1 ? '' : 's'} give a layer's weights a second time (in another layout): ${listSome(duplicates)}`);
  const unpaired = [...groups.values()].filter((g) => g.down === '' || g.up === '');
  if (unpaired.length > 0) {
    throw new ConfigError(
      `${file}: ${unpaired.length} LoRA layer${unpaired.length === 1 ? ' lacks' : 's lack'} a down (lora_A) or up (lora_B) weight: ` +
        listSome(unpaired.map((g) => `${g.down || g.up || g.alpha} (${g.down === '' ? 'no down' : 'no up'} weight)`)),
    );
  }
  return [...groups.values()];
}

// One layer's down and up may come in different dotted spellings (a training-script file maps only some names).
function isMixable(layout: LoraLayout): boolean {
  return layout !== 'kohya';
}
