/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
  testTimeout: 30_000,
  transform: {
    // NestJS 12, Better Auth, Keyv and cache-manager ship ES modules; jest runs CommonJS.
    // The transform (as in the repo's __test__/esm-transform.js) compiles them, and the
    // app's TypeScript, to CommonJS. Type checking is `npm run typecheck`'s job.
    '^.+\\.m?[tj]sx?$': ['<rootDir>/test/esm-transform.js', { tsconfig: '<rootDir>/test/tsconfig.json' }],
  },
  transformIgnorePatterns: [
    '/node_modules/(?!(@nestjs|@better-auth|better-auth|better-call|keyv|@keyv|cache-manager|@cacheable|cacheable|hookified|@noble|nanostores|jose|uncrypto|defu|rou3|kysely|file-type|strtok3|token-types|uint8array-extras|@tokenizer)/)',
  ],
}
