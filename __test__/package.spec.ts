// The npm package as users get it: `npm pack`, then `npm install <tarball>` in a
// fresh folder (npm's default of running no dependency install scripts, no Rust
// needed), loaded from CommonJS and from ESM, typed for TypeScript `strict`, and
// talking to a real server.
import { execFileSync } from 'child_process'
import fs from 'fs'
import os from 'os'
import path from 'path'

import { RedisServer, startRedis, stopAll } from './harness'

const root = path.resolve(__dirname, '..')
let work: string
let app: string
let srv: RedisServer

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
}

beforeAll(async () => {
  srv = await startRedis()
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'atlas-pack-'))
  const tarball = run('npm', ['pack', '--silent', '--pack-destination', work], root).trim().split('\n').pop()!
  app = path.join(work, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  // No PATH to cargo/rustc: nothing may need compiling.
  run('npm', ['install', '--no-audit', '--no-fund', '--offline', path.join(work, tarball)], app, {
    PATH: path.dirname(process.execPath) + ':/usr/bin:/bin',
  })
  // What a Nest app on TypeScript has anyway, for the type checks below (which,
  // like Nest's own tsconfig, skip checking libraries' .d.ts among themselves) and
  // for loading the nest entry (peers are installed by name: legacy-peer-deps may be set).
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '@types/node@20', '@nestjs/common@12', '@nestjs/core@12', '@nestjs/throttler@6', 'reflect-metadata', 'rxjs@7', '@opentelemetry/api@1'], app)
}, 120_000)

afterAll(async () => {
  await stopAll()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

test('the tarball holds the prebuilt binary, the compiled JS and the type declarations', () => {
  const pkg = path.join(app, 'node_modules', '@atlas-erp', 'redis')
  const files = fs.readdirSync(pkg)
  expect(files.some((f) => f.endsWith('.node'))).toBe(true)
  for (const f of ['index.js', 'index.d.ts', 'package.json', 'README.md']) expect(files).toContain(f)
  for (const f of ['index.js', 'index.d.ts', 'nest/index.js', 'nest/index.d.ts', 'ratelimit/throttler.js', 'ratelimit/throttler.d.ts']) {
    expect(fs.existsSync(path.join(pkg, 'dist', f))).toBe(true)
  }
  // Sources, tests and the Rust build stay out of the package.
  for (const f of ['src', 'lib', '__test__', 'target', 'Cargo.toml']) expect(files).not.toContain(f)
})

test('loads from CommonJS and ESM and serves get/set', () => {
  const cjs = `
    const { RedisClient } = require('@atlas-erp/redis')
    RedisClient.connect(${JSON.stringify(srv.url)}).then(async (c) => {
      await c.set('pkg:cjs', 'from-cjs', 60)
      console.log(await c.get('pkg:cjs'))
      await c.close()
    })`
  expect(run(process.execPath, ['-e', cjs], app).trim()).toBe('from-cjs')
  const esm = `
    import { RedisClient, ErrorCode } from '@atlas-erp/redis'
    const c = await RedisClient.connect(${JSON.stringify(srv.url)})
    console.log(await c.get('pkg:cjs'), ErrorCode.Timeout)
    await c.close()`
  expect(run(process.execPath, ['--input-type=module', '-e', esm], app).trim()).toBe('from-cjs ERR_TIMEOUT')
})

test('its types compile under TypeScript strict, entry points included', () => {
  const src = `
    import { RedisClient, RedisError, type ConnectOptions } from '@atlas-erp/redis'
    import type { RedisThrottlerStorage } from '@atlas-erp/redis/throttler'
    const options: ConnectOptions = { host: 'localhost', commandTimeoutMs: 500 }
    export async function f(storage: RedisThrottlerStorage): Promise<string | null> {
      const c = await RedisClient.connect(options)
      const v: string | null = await c.get('k')
      const wrote: boolean = await c.set('k', 'v', { nx: true, ttlMs: 10 })
      await c.set('k', 'v', 60)
      const e: RedisError | undefined = undefined
      void e; void wrote; void storage
      return v
    }`
  fs.writeFileSync(path.join(app, 'check.ts'), src)
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  run(process.execPath, [tsc, '--strict', '--noEmit', '--skipLibCheck', '--module', 'node16', '--moduleResolution', 'node16', 'check.ts'], app)
  // The entry points also resolve under the older `moduleResolution: node` (typesVersions),
  // which many Nest apps' tsconfig still has.
  fs.writeFileSync(
    path.join(app, 'node10.ts'),
    ['nest', 'throttler', 'keyv', 'better-auth', 'otel', 'bullmq'].map((e, i) => `import * as m${i} from '@atlas-erp/redis/${e}'\nvoid m${i}\n`).join(''),
  )
  run(process.execPath, [tsc, '--strict', '--noEmit', '--skipLibCheck', '--module', 'commonjs', '--moduleResolution', 'node', '--experimentalDecorators', 'node10.ts'], app)
  // And a type error is reported (the check is real).
  fs.writeFileSync(path.join(app, 'bad.ts'), `import { RedisClient } from '@atlas-erp/redis'\nexport const n: number = RedisClient.connect()\n`)
  expect(() => run(process.execPath, [tsc, '--strict', '--noEmit', '--skipLibCheck', '--module', 'node16', '--moduleResolution', 'node16', 'bad.ts'], app)).toThrow()
})

// ---- the entry points' contents ------------------------------------------------------------

/** What each entry exports by DESIGN.md's "Package entry points" (the entries that exist), and the rest of today's names. */
const ENTRY_VALUES: Record<string, string[]> = {
  '@atlas-erp/redis': ['RedisClient', 'RedisError', 'ErrorCode', 'ENV_VARS', 'rateLimitHeaders', 'Sessions'],
  '@atlas-erp/redis/nest': ['RedisModule', 'RedisService', 'InjectRedis', 'RedisHealthIndicator', 'RedisClient', 'getRedisToken'],
  '@atlas-erp/redis/throttler': ['RedisThrottlerStorage', 'RedisThrottlerGuard'],
  '@atlas-erp/redis/better-auth': ['redisSecondaryStorage', 'sessionVerifier', 'DEFAULT_KEY_PREFIX'],
  '@atlas-erp/redis/keyv': ['KeyvRedisStore'],
  '@atlas-erp/redis/otel': ['instrumentRedis'],
  '@atlas-erp/redis/bullmq': ['BullMQRedisClient', 'BullMQTransaction', 'ConnectionClosedError', 'CONNECTION_CLOSED_MESSAGE'],
}
/** The main entry's option and result types. */
const ROOT_TYPES = [
  'ConnectOptions', 'TlsOptions', 'SentinelOptions', 'ClusterOptions', 'ClientCacheOptions', 'SetOptions', 'GetExOptions',
  'ScanOptions', 'ClientStats', 'RedisKey', 'RedisValue', 'RateLimitRule', 'RateLimitResult', 'RateLimitAlgorithm',
  'RateLimitReason', 'UnavailablePolicy', 'RedisCache', 'WrapOptions', 'KeyvRedisStoreOptions', 'Session', 'CreatedSession',
  'CheckOptions', 'SessionsOptions', 'RedisSecondaryStorage', 'RedisSecondaryStorageOptions', 'SessionVerifier',
  'SessionVerifierOptions', 'VerifiedSession', 'BetterAuthSessionRecord', 'BetterAuthUser',
  // the typed commands' options and results (lib/core/command-types.ts)
  'FieldValues', 'MemberScanOptions', 'ListSide', 'ZMember', 'ZAddOptions', 'ZRangeBound', 'ScoreBound', 'ZRangeOptions',
  'ZMemberScore', 'StreamTrim', 'XAddOptions', 'StreamEntry', 'DeletedStreamEntry', 'StreamFrom', 'StreamMessages',
  'XReadOptions', 'XReadGroupOptions', 'XGroupCreateOptions', 'XPendingSummary', 'XPendingRange', 'XPendingEntry',
  'XClaimOptions', 'XAutoClaimOptions', 'XAutoClaimResult', 'XAutoClaimIdsResult', 'KeyType', 'ExpireCondition', 'CopyOptions',
  // what the diagnostics channels publish (lib/core/diagnostics.ts)
  'CommandTraceContext', 'ConnectTraceContext', 'RedisEndpoint',
]

/** The package's internals (marked @internal in lib/): none may reach the published types. */
const INTERNAL_NAMES = [
  'runScript', 'siblingKey', 'cachesKey', 'featureState', 'statsWith', 'checkOptionKeys', 'checkOptions',
  'checkNonEmptyString', 'clientArg', 'extendClient', 'ScriptPacer', 'SCRIPT_BATCH', 'THROTTLE_BATCH', 'DeniedCache',
  'RATE_LIMIT_CACHE_SIZE', 'hashTag', 'isUnavailable', 'invalidArgument', 'argumentError', 'checkArgs', 'isPlainObject',
  'showReply', 'NativeClient', 'PendingTable', 'LocalCache', 'keySlot', 'parseStored', 'tokenId',
  'LOCK_SUFFIX', 'pairsArg', 'commandChannel', 'connectChannel', 'describeEndpoint', 'connectStarted', 'connectSettled', 'PACER_LIMITS', 'PacerLimits',
]

function filesUnder(dir: string, suffix: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith(suffix)).map((f) => path.join(dir, f))
}

test('the published .d.ts files name none of the internals', () => {
  // Each name still exists in lib/, so a rename cannot empty this check unnoticed.
  const sources = filesUnder(path.join(root, 'lib'), '.ts').map((f) => fs.readFileSync(f, 'utf8')).join('\n')
  expect(INTERNAL_NAMES.filter((n) => !new RegExp(`\\b${n}\\b`).test(sources))).toEqual([])
  const dts = filesUnder(path.join(app, 'node_modules', '@atlas-erp', 'redis', 'dist'), '.d.ts')
  expect(dts.length).toBeGreaterThan(10)
  const leaks: string[] = []
  for (const f of dts) {
    const text = fs.readFileSync(f, 'utf8')
    for (const n of INTERNAL_NAMES) if (new RegExp(`\\b${n}\\b`).test(text)) leaks.push(`${path.relative(app, f)}: ${n}`)
  }
  expect(leaks).toEqual([])
})

test('every entry point exports its public names, at run time and in its types', () => {
  const js = `
    const entries = ${JSON.stringify(ENTRY_VALUES)}
    const missing = []
    for (const [entry, names] of Object.entries(entries)) {
      const m = require(entry)
      for (const n of names) if (m[n] === undefined) missing.push(entry + ' ' + n)
    }
    console.log(JSON.stringify(missing))`
  expect(JSON.parse(run(process.execPath, ['-e', js], app))).toEqual([])
  const ts = [
    ...Object.entries(ENTRY_VALUES).map(([entry, names], i) => `import { ${names.map((n) => `${n} as v${i}_${n}`).join(', ')} } from '${entry}'`),
    `import type { ${ROOT_TYPES.join(', ')} } from '@atlas-erp/redis'`,
    `export const values = [${Object.entries(ENTRY_VALUES).flatMap(([, names], i) => names.map((n) => `v${i}_${n}`)).join(', ')}]`,
    `export type Types = [${ROOT_TYPES.join(', ')}]`,
  ].join('\n')
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const flags = ['--strict', '--noEmit', '--skipLibCheck', '--experimentalDecorators']
  fs.writeFileSync(path.join(app, 'entries.ts'), ts)
  run(process.execPath, [tsc, ...flags, '--module', 'node16', '--moduleResolution', 'node16', 'entries.ts'], app)
  run(process.execPath, [tsc, ...flags, '--module', 'commonjs', '--moduleResolution', 'node', 'entries.ts'], app)
})

test("RedisClient has every feature whichever entry it came from, in its types and at run time", () => {
  // The features' members, typed, on the RedisClient of the /nest entry alone.
  const ts = `
    import { RedisClient } from '@atlas-erp/redis/nest'
    export async function f(c: RedisClient): Promise<[boolean, number, string | undefined]> {
      const r = await c.rateLimit('k', { limit: 1, windowMs: 1000 })
      const n: number = await c.cache.wrap('k', 1000, () => 1)
      const s = await c.sessions.check('t')
      return [r.allowed, n, s?.userId]
    }`
  fs.writeFileSync(path.join(app, 'features.ts'), ts)
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  for (const resolution of [['node16', 'node16'], ['commonjs', 'node']]) {
    run(process.execPath, [tsc, '--strict', '--noEmit', '--skipLibCheck', '--experimentalDecorators', '--module', resolution[0], '--moduleResolution', resolution[1], 'features.ts'], app)
  }
  // At run time: each entry, loaded alone in a fresh process, gives a RedisClient with the
  // three features (the nest entry exports RedisClient; the others load the same class).
  for (const entry of Object.keys(ENTRY_VALUES)) {
    const js = `
      require(${JSON.stringify(entry)})
      const core = Object.keys(require.cache).find((f) => /[\\\\/]dist[\\\\/]core[\\\\/]client\\.js$/.test(f))
      const proto = core === undefined ? {} : require(core).RedisClient.prototype
      console.log(['rateLimit', 'rateLimitAll', 'cache', 'sessions'].filter((m) => !(m in proto)).join(' ') || 'all')`
    expect(`${entry}: ${run(process.execPath, ['-e', js], app).trim()}`).toBe(`${entry}: all`)
  }
})

test('the main entry and the throttler, keyv, better-auth and bullmq entries load no framework package', () => {
  const js = `
    for (const e of ['@atlas-erp/redis', '@atlas-erp/redis/throttler', '@atlas-erp/redis/keyv', '@atlas-erp/redis/better-auth', '@atlas-erp/redis/bullmq']) require(e)
    const frameworks = /[\\\\/]node_modules[\\\\/](@nestjs|keyv|@keyv|better-auth|@better-auth|bullmq|@opentelemetry|reflect-metadata|rxjs)[\\\\/]/
    const ours = Object.keys(require.cache).filter((f) => f.includes('@atlas-erp'))
    console.log(JSON.stringify({ frameworks: Object.keys(require.cache).filter((f) => frameworks.test(f)), ours: ours.length }))`
  const loaded = JSON.parse(run(process.execPath, ['-e', js], app))
  expect(loaded.frameworks).toEqual([])
  expect(loaded.ours).toBeGreaterThan(10) // the package itself was loaded
  // …while the nest entry does load Nest (so the pattern above finds a framework when there is one).
  const nest = `require('@atlas-erp/redis/nest'); console.log(Object.keys(require.cache).some((f) => /[\\\\/]node_modules[\\\\/]@nestjs[\\\\/]common[\\\\/]/.test(f)))`
  expect(run(process.execPath, ['-e', nest], app).trim()).toBe('true')
  // …and the otel entry loads @opentelemetry/api, its optional peer dependency.
  const otel = `require('@atlas-erp/redis/otel'); console.log(Object.keys(require.cache).some((f) => /[\\\\/]node_modules[\\\\/]@opentelemetry[\\\\/]api[\\\\/]/.test(f)))`
  expect(run(process.execPath, ['-e', otel], app).trim()).toBe('true')
})
