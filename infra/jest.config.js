/** Jest: TypeScript tests under test/, synth only (no AWS credentials, no network, no bundling). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
  },
  // Synthesis of one stack takes a few seconds on a small machine.
  testTimeout: 60000,
};
