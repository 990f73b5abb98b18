// Child processes for the cases that may abort the process (a failed allocation, a
// native crash): run there, an abort is one failed case with its signal and stderr,
// not the end of the jest worker. Children load the package's build (dist/, made by
// `npm run build:ts`), as close.spec.ts and faults.spec.ts do.
import { fork } from 'child_process'
import path from 'path'

export const DIST = path.resolve(__dirname, '..', '..', 'dist')

/** How a child ended, and what it said on the way. */
export interface ChildRun {
  /** Exit code, or null when a signal ended it. */
  code: number | null
  signal: NodeJS.Signals | null
  /** The IPC messages it sent, in order. */
  messages: any[]
  stdout: string
  stderr: string
  /** Killed by us: no message for `idleTimeoutMs`, or past `timeoutMs`. */
  hung: boolean
}

export interface ChildOptions {
  /** Extra environment (ATLAS_DIST is set). */
  env?: Record<string, string>
  /** Killed (SIGKILL) when it sends no message for this long; default 20 s. */
  idleTimeoutMs?: number
  /** Killed (SIGKILL) past this in all; default 120 s. */
  timeoutMs?: number
  /** Node flags of the child. */
  execArgv?: string[]
  /** Every IPC message as it arrives. */
  onMessage?: (m: any) => void
}

/** Forks `file` (a .js file) with an IPC channel; resolves once it has exited, never rejects. */
export function runChild(file: string, opts: ChildOptions = {}): Promise<ChildRun> {
  const idleMs = opts.idleTimeoutMs ?? 20_000
  return new Promise((resolve) => {
    const child = fork(file, [], {
      env: { ...process.env, ATLAS_DIST: DIST, ...opts.env },
      execArgv: opts.execArgv ?? [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    const run: ChildRun = { code: null, signal: null, messages: [], stdout: '', stderr: '', hung: false }
    child.stdout!.on('data', (d) => (run.stdout += d))
    child.stderr!.on('data', (d) => (run.stderr += d))
    const kill = () => {
      run.hung = true
      child.kill('SIGKILL')
    }
    let idle = setTimeout(kill, idleMs)
    const total = setTimeout(kill, opts.timeoutMs ?? 120_000)
    child.on('message', (m) => {
      clearTimeout(idle)
      idle = setTimeout(kill, idleMs)
      run.messages.push(m)
      opts.onMessage?.(m)
    })
    child.on('close', (code, signal) => {
      clearTimeout(idle)
      clearTimeout(total)
      run.code = code
      run.signal = signal
      resolve(run)
    })
  })
}

/** The last `n` lines of a child's stderr, for a failure message. */
export function tailOf(text: string, n = 4): string {
  return text.trim().split('\n').slice(-n).join(' | ')
}

/** How a child that stopped in the middle ended, in words. */
export function death(run: ChildRun): string {
  if (run.hung) return 'hung (killed after no progress)'
  const how = run.signal ? `killed by ${run.signal}` : `exited with code ${run.code}`
  return `the process ${how}: ${tailOf(run.stderr)}`
}
