// The Rust command table (src/commands/table/generated.rs) is what the redis-server the
// tests run describes: scripts/gen-command-table.js --check regenerates it from that
// server's COMMAND and compares it with the committed file.
import { execFile } from 'child_process'
import fs from 'fs'
import os from 'os'
import path from 'path'
import { startRedis, stopAll, RedisServer } from './harness'

const ROOT = path.join(__dirname, '..')
const SCRIPT = path.join(ROOT, 'scripts', 'gen-command-table.js')
const TABLE = path.join(ROOT, 'src', 'commands', 'table', 'generated.rs')

interface Run { code: number, stdout: string, stderr: string }

/** Runs the generator with `args`; resolves its exit code and output. */
function generator(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [SCRIPT, ...args], { cwd: ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err)
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr })
    })
  })
}

let server: RedisServer
let tmp: string

beforeAll(async () => {
  server = await startRedis()
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'atlas-command-table-'))
})

afterAll(async () => {
  fs.rmSync(tmp, { recursive: true, force: true })
  await stopAll()
})

test('the committed table matches the test server', async () => {
  const run = await generator('--check', '--port', String(server.port))
  expect(run.stderr).toBe('')
  expect(run.code).toBe(0)
  expect(run.stdout).toContain('matches the server')
})

test('--check fails, naming the entry, when the file differs', async () => {
  // A copy whose GET entry has another arity: the check must see it.
  const table = fs.readFileSync(TABLE, 'utf8')
  const altered = table.replace(/( {4}name: "get",\n {4}arity: )2,/, '$1-2,')
  expect(altered).not.toBe(table)
  const copy = path.join(tmp, 'generated.rs')
  fs.writeFileSync(copy, altered)
  const run = await generator('--check', '--port', String(server.port), '--out', copy)
  expect(run.code).toBe(1)
  expect(run.stderr).toMatch(/different \(1\): get$/m)
  // The copy is left as it was.
  expect(fs.readFileSync(copy, 'utf8')).toBe(altered)
})

test('writing regenerates the committed file byte for byte', async () => {
  const out = path.join(tmp, 'fresh.rs')
  const run = await generator('--port', String(server.port), '--out', out)
  expect(run.code).toBe(0)
  expect(fs.readFileSync(out, 'utf8')).toBe(fs.readFileSync(TABLE, 'utf8'))
})
