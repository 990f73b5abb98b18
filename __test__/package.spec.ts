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
  // What a Nest app on TypeScript has anyway, for the type check below (which,
  // like Nest's own tsconfig, skips checking libraries' .d.ts among themselves).
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '@types/node@20', '@nestjs/throttler@6'], app)
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
    ['nest', 'throttler', 'keyv', 'better-auth'].map((e, i) => `import * as m${i} from '@atlas-erp/redis/${e}'\nvoid m${i}\n`).join(''),
  )
  run(process.execPath, [tsc, '--strict', '--noEmit', '--skipLibCheck', '--module', 'commonjs', '--moduleResolution', 'node', '--experimentalDecorators', 'node10.ts'], app)
  // And a type error is reported (the check is real).
  fs.writeFileSync(path.join(app, 'bad.ts'), `import { RedisClient } from '@atlas-erp/redis'\nexport const n: number = RedisClient.connect()\n`)
  expect(() => run(process.execPath, [tsc, '--strict', '--noEmit', '--skipLibCheck', '--module', 'node16', '--moduleResolution', 'node16', 'bad.ts'], app)).toThrow()
})
