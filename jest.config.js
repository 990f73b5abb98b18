/** Settings shared by both projects. */
const common = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  // Only crawl __test__: the Rust target/ dir and examples/ are large and hold no specs.
  roots: ['<rootDir>/__test__'],
  transform: {
    // isolatedModules is set in __test__/tsconfig.json (the ts-jest option of that name is deprecated).
    // .js too: NestJS 12 and other framework packages ship ES modules, which jest's CommonJS
    // runtime can only load once compiled (allowJs in __test__/tsconfig.json).
    '^.+\\.m?[tj]sx?$': ['<rootDir>/__test__/esm-transform.js', { tsconfig: '<rootDir>/__test__/tsconfig.json', diagnostics: true }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(@nestjs|@better-auth|better-auth|keyv|@keyv|cache-manager|@noble|nanostores|jose|uncrypto|defu|rou3|better-call|kysely)/)'],
}

/**
 * The suites that also run on the embedded memory:// backend (ATLAS_TEST_BACKEND=memory,
 * set by __test__/memory-backend.js): their cases must pass on both, and a difference is
 * a bug in the backend. Inside them, the few cases that stop, kill, pause or restart a
 * server, or start a cluster node, are `realRedisTest` and skipped there.
 *
 * Not run on memory://, because what they test needs a redis-server process or what
 * memory:// leaves out:
 * - connect, tls, security: passwords, ACL users, TLS certificates, CLIENT KILL
 * - faults, reconnect, close: killed, paused, restarted or full (maxmemory) servers,
 *   blocking commands (BLPOP)
 * - nest: a password-protected server and a killed one (its forRoot memory:// case
 *   runs on both)
 * - fuzz: option fuzzing over host/port URLs and a password server
 * - harness, slot, package, pending, layout: the harness itself, cluster slots, the packed
 *   package, lib/'s imports: no server at all
 * - sentinel, cluster*: topologies of redis-server processes (memory:// has neither)
 * - memory: memory://'s own cases and a differential corpus that compares its answers
 *   with a redis-server's (so it runs in the `redis` project)
 */
const MEMORY_SUITES = [
  'client',
  'prefix',
  'validation',
  'cache',
  'client-cache',
  'keyv',
  'sessions',
  'session-cache',
  'better-auth',
  'ratelimit',
  'throttler',
  'typed-commands',
  'scripts',
  'transactions',
]

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 30000,
  projects: [
    {
      ...common,
      displayName: 'redis',
      testMatch: ['<rootDir>/__test__/**/*.spec.ts'],
    },
    {
      ...common,
      displayName: 'memory',
      testMatch: MEMORY_SUITES.map((s) => `<rootDir>/__test__/${s}.spec.ts`),
      setupFiles: ['<rootDir>/__test__/memory-backend.js'],
    },
  ],
}
