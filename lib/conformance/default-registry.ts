/** Every case type difftune can run; each model family adds its runners here, one line each. */
import { registerPipelineCases } from './pipeline-cases';
import { CaseRegistry } from './registry';
import { registerSchedulerCases } from './scheduler-cases';
import { registerSingleFileCases } from './single-file-cases';
import { registerTokenizerCases } from './tokenizer-cases';
import { registerUNetCases } from './unet-cases';
import { registerVaeCases } from './vae-cases';
import { registerClipTextCases } from './clip-text-cases';

export function defaultRegistry(): CaseRegistry {
  const registry = new CaseRegistry();
  registerSchedulerCases(registry);
  registerUNetCases(registry);
  registerVaeCases(registry);
  registerClipTextCases(registry);
  registerTokenizerCases(registry);
  registerSingleFileCases(registry);
  registerPipelineCases(registry);
  return registry;
}
