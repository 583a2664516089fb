/**
 * Class-conditional U-Nets (a class embedding): each batch's class labels become the U-Net's
 * class_labels. A U-Net without a class embedding ignores the dataset's labels.
 */
import { ConfigError } from '../errors';
import { classLabelTensor, type UNet } from '../models/unet';
import type { TrainingHooks } from './hooks';

export function classLabels(unet: UNet): TrainingHooks | undefined {
  if (!unet.isClassConditional) return undefined;
  return {
    prepareBatch: async (batch, inputs, _step, scope) => {
      if (batch.labels === null)
        throw new ConfigError('data: this U-Net is class-conditional but the dataset has no class labels (use class subfolders or a built-in dataset)');
      return { ...inputs, classLabels: scope.own(classLabelTensor(batch.labels)) };
    },
    prepareValidation: async (batch, inputs, scope) => (batch.labels === null ? inputs : { ...inputs, classLabels: scope.own(classLabelTensor(batch.labels)) }),
  };
}
