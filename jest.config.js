// Three tiers: unit (pure TypeScript, never loads the addon), native (CPU libtorch, run serially
// through one worker because the addon owns one compute thread per process), gpu (opt-in).
const tsJest = ['ts-jest', { diagnostics: false }];
const common = { testEnvironment: 'node', transform: { '^.+\\.ts$': tsJest }, moduleFileExtensions: ['ts', 'js', 'json'], setupFiles: ['<rootDir>/test/setup-realm.js'] };

module.exports = {
  maxWorkers: 1,
  testTimeout: 120000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...common, displayName: 'native', testMatch: ['<rootDir>/test/native/**/*.test.ts'] },
    { ...common, displayName: 'gpu', testMatch: ['<rootDir>/test/gpu/**/*.test.ts'] },
  ],
};
