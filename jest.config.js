/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  // Only crawl __test__: the Rust target/ dir and examples/ are large and hold no specs.
  roots: ['<rootDir>/__test__'],
  testMatch: ['<rootDir>/__test__/**/*.spec.ts'],
  testTimeout: 30000,
  transform: {
    // isolatedModules is set in __test__/tsconfig.json (the ts-jest option of that name is deprecated).
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: '<rootDir>/__test__/tsconfig.json', diagnostics: true }],
  },
}
