// Types of prerequisites.js (plain JavaScript, so the launcher can run it before jest).
export interface InteropAvailable {
  available: true;
  python: string;
  reference: string;
  torch: string;
  diffusers: string;
  transformers: string;
  peft: string;
  /** LMSDiscreteScheduler needs SciPy (Debian's python3-scipy). */
  scipy: boolean;
}
export interface InteropMissing {
  available: false;
  /** What is missing and how to set it up, in one line. */
  reason: string;
}
export type InteropPrerequisites = InteropAvailable | InteropMissing;
export const ENV_VAR: string;
export function checkPrerequisites(): InteropPrerequisites;
export function prerequisites(): InteropPrerequisites;
export function referenceDir(): string;
