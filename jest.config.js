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
    // .js too: NestJS 12 and other framework packages ship ES modules, which jest's CommonJS
    // runtime can only load once compiled (allowJs in __test__/tsconfig.json).
    '^.+\\.m?[tj]sx?$': ['<rootDir>/__test__/esm-transform.js', { tsconfig: '<rootDir>/__test__/tsconfig.json', diagnostics: true }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(@nestjs|@better-auth|better-auth|keyv|@keyv|cache-manager|@noble|nanostores|jose|uncrypto|defu|rou3|better-call|kysely)/)'],
}
