/** Every case type difftune can run; each model family adds its runners here, one line each. */
import { CaseRegistry } from './registry';
import { registerSchedulerCases } from './scheduler-cases';

export function defaultRegistry(): CaseRegistry {
  const registry = new CaseRegistry();
  registerSchedulerCases(registry);
  return registry;
}
