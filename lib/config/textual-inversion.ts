/**
 * The recipe's `textualInversion` section (diffusers' textual_inversion.py): new tokens `placeholderToken`,
 * `<placeholderToken>_1`, … (`numVectors` in all) whose rows of the text encoder's token embedding start as
 * `initializerToken`'s and are the only weights that train. Images without captions are captioned with a
 * template ("a photo of a {}", diffusers' lists) around the placeholder. Pure.
 */
import { z } from 'zod';

const posInt = z.number().int().positive();

export const textualInversionSchema = z
  .object({
    /** The token prompts will name, e.g. "<cat-toy>"; it must be new to the tokenizer. */
    placeholderToken: z.string().trim().min(1),
    /** One token of the vocabulary (e.g. "toy") whose embedding every new vector starts from. */
    initializerToken: z.string().trim().min(1),
    /** Vectors of the embedding: tokens placeholderToken, placeholderToken_1, … */
    numVectors: posInt.max(75).default(1),
    /** The embeddings' learning rate (default: train.lr). */
    lr: z.number().positive().finite().optional(),
    /** Caption templates of uncaptioned images: diffusers' "object" or "style" list, or your own (each with "{}"). */
    templates: z
      .union([z.enum(['object', 'style']), z.array(z.string().includes('{}', { message: 'a template holds "{}" where the placeholder goes' })).nonempty()])
      .default('object'),
    /** Also write the whole pipeline (tokenizer and text encoder with the new tokens) beside learned_embeds.safetensors, as diffusers' --save_as_full_pipeline. */
    saveAsFullPipeline: z.boolean().default(false),
  })
  .strict();

export type TextualInversionOptions = z.infer<typeof textualInversionSchema>;

/** diffusers' imagenet_templates_small (textual_inversion.py, learnable_property "object"). */
export const OBJECT_TEMPLATES = [
  'a photo of a {}',
  'a rendering of a {}',
  'a cropped photo of the {}',
  'the photo of a {}',
  'a photo of a clean {}',
  'a photo of a dirty {}',
  'a dark photo of the {}',
  'a photo of my {}',
  'a photo of the cool {}',
  'a close-up photo of a {}',
  'a bright photo of the {}',
  'a cropped photo of a {}',
  'a photo of the {}',
  'a good photo of the {}',
  'a photo of one {}',
  'a close-up photo of the {}',
  'a rendition of the {}',
  'a photo of the clean {}',
  'a rendition of a {}',
  'a photo of a nice {}',
  'a good photo of a {}',
  'a photo of the nice {}',
  'a photo of the small {}',
  'a photo of the weird {}',
  'a photo of the large {}',
  'a photo of a cool {}',
  'a photo of a small {}',
] as const;

/** diffusers' imagenet_style_templates_small (learnable_property "style"). */
export const STYLE_TEMPLATES = [
  'a painting in the style of {}',
  'a rendering in the style of {}',
  'a cropped painting in the style of {}',
  'the painting in the style of {}',
  'a clean painting in the style of {}',
  'a dirty painting in the style of {}',
  'a dark painting in the style of {}',
  'a picture in the style of {}',
  'a cool painting in the style of {}',
  'a close-up painting in the style of {}',
  'a bright painting in the style of {}',
  'a cropped painting in the style of {}',
  'a good painting in the style of {}',
  'a close-up painting in the style of {}',
  'a rendition in the style of {}',
  'a nice painting in the style of {}',
  'a small painting in the style of {}',
  'a weird painting in the style of {}',
  'a large painting in the style of {}',
] as const;
