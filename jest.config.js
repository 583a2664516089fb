// Three tiers: unit (pure TypeScript, never loads the addon), native (CPU libtorch, run serially
// through one worker because the addon owns one compute thread per process), gpu (opt-in); and interop
// (real diffusers through ../shared/reference), which exists only under `npm run test:interop`
// (test/interop/run.js sets DIFFTUNE_INTEROP_TESTS=1), so `npm test` never runs it.
// Type errors are `npm run typecheck`'s job (tsconfig.test.json covers test/), not jest's: with
// isolatedModules ts-jest only transpiles, and a full type-check per file (isolatedModules off,
// diagnostics on) measured 26 s → 38 s for test/unit cold and 5–9 s → 17 s for one unit file.
const tsJest = ['ts-jest', { diagnostics: false }];
const common = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': tsJest },
  moduleFileExtensions: ['ts', 'js', 'json'],
  setupFiles: ['<rootDir>/test/setup-realm.js'],
};

module.exports = {
  maxWorkers: 1,
  testTimeout: 120000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...common, displayName: 'native', testMatch: ['<rootDir>/test/native/**/*.test.ts'] },
    { ...common, displayName: 'gpu', testMatch: ['<rootDir>/test/gpu/**/*.test.ts'] },
    ...(process.env.DIFFTUNE_INTEROP_TESTS === '1' ? [{ ...common, displayName: 'interop', testMatch: ['<rootDir>/test/interop/**/*.interop.test.ts'] }] : []),
  ],
};
