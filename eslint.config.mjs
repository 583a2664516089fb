// ESLint flat config (`npm run lint`): typescript-eslint's strict type-aware rules for the TypeScript in
// lib/, scripts/ and test/ (typed through tsconfig.test.json, which covers all three), the JS
// recommended rules for the plain CommonJS build scripts, and eslint-config-prettier last so no
// stylistic rule fights Prettier.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'build-*/', 'node_modules/', 'test/fixtures/', 'models/', 'runs/', 'recipes/'] },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.strictTypeChecked],
    languageOptions: {
      parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Messages interpolate numbers everywhere (shapes, steps, byte counts); a number's String() is what we want.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // noUncheckedIndexedAccess types every index read as T | undefined; `!` marks reads whose index a loop
      // bound or an earlier shape check already guarantees (hundreds in tensor/shape code), not a lax habit.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // `x => void_returning(x)` callbacks (event handlers, forEach) are the idiom, not a confusion.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // `_`-prefixed names are deliberately unused (destructured away, positional parameters kept for shape).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // Async methods that implement a Promise-returning interface (caches, batch preparers, hooks) need not
      // await anything; being async makes their throws rejections, which is what callers expect.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['lib/**/*.ts'],
    rules: {
      // The public API re-checks its arguments at runtime (`options === null`, `typeof x !== 'object'`, enum
      // values) for JavaScript callers the types cannot reach; this rule calls every such guard unnecessary.
      '@typescript-eslint/no-unnecessary-condition': 'off',
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests read JSON.parse output, require()d modules and deliberately mistyped values in assertions;
      // a wrong shape fails the test itself, so typing every such read adds noise, not safety.
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // expect(obj.method).toThrow-style checks pass methods unbound on purpose.
      '@typescript-eslint/unbound-method': 'off',
      // Fakes and caught errors are cast to the library's classes (Tensor, OutOfMemoryError) on purpose.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
    },
  },
  {
    files: ['**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
  },
  {
    files: ['test/**/*.js'],
    languageOptions: { globals: { ...globals.jest } },
  },
  {
    files: ['eslint.config.mjs'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'module', globals: { ...globals.node } },
  },
  prettier,
);
