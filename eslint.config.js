// Lint rules that carry meaning for a security proxy, on top of the recommended sets.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'certs-dev/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', performance: 'readonly', setImmediate: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Secrets and identities are compared with ===, never with coercion.
      eqeqeq: ['error', 'always'],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'Use crypto.randomBytes / randomUUID: keygate never uses a predictable random source.' }],
      'no-control-regex': 'off',
    },
  },
  {
    // Only the process shells end the process.
    files: ['src/**/*.ts'],
    ignores: ['src/main.ts', 'src/cli/keygate.ts'],
    rules: { 'no-restricted-properties': ['error', { object: 'process', property: 'exit', message: 'Only src/main.ts and the CLI entry end the process.' }, { object: 'Math', property: 'random', message: 'Use crypto.randomBytes / randomUUID.' }] },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.mjs'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
);
