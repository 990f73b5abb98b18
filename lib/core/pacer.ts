import { ErrorCode, RedisError } from './errors'

/** How many callers may wait for a turn, and for how long, before they are refused. @internal */
export interface PacerLimits {
  /** Callers waiting at most; one more is refused at once. */
  maxWaiting: number
  /** A caller whose turn comes later than this after it asked is refused then. */
  maxWaitMs: number
}

/**
 * The default bounds: 10,000 waiting callers is ~300 turns of the rate limiter's 32
 * (a burst no request rate reaches in one tick); 5,000 ms is the default
 * commandTimeoutMs, past which an answer is of no use to the caller anyway.
 * @internal
 */
export const PACER_LIMITS: Readonly<PacerLimits> = Object.freeze({ maxWaiting: 10_000, maxWaitMs: 5_000 })

/** A waiting caller: what to run at its turn, and when it asked. */
interface Waiter {
  go: () => void
  refuse?: (e: RedisError) => void
  at: number
}

/**
 * Spreads a burst of script calls over turns of the event loop: at most
 * `perTurn` units of work start per turn, the rest wait for the next turns
 * (setImmediate), in order. The client writes everything a turn issues as one
 * batch, and Redis answers a batch only when it has run all of it: with a
 * hundred scripts of several µs each, this process would wait idle for the
 * whole batch, then Redis for this process. Smaller batches let Redis run one
 * while this process handles the replies of the one before.
 *
 * The budget is the caller's, because its units differ: the rate limiter's
 * unit is a script call (each `rateLimit` is one EVALSHA; `run`, 32 per turn),
 * the throttler's an increment inside one script call that carries up to 48 of
 * them (`take` and `later`; 48 per call was measured ahead of 32 and 64, since
 * each script call costs Redis about the same whatever its size).
 *
 * The queue is bounded (`limits`): past `maxWaiting` callers, `run` refuses at
 * once, and a caller whose turn comes more than `maxWaitMs` after it asked is
 * refused then, both with ERR_OVERLOADED and before anything was sent — a
 * flood meets a quick, explicit answer (the rate limiter's fail policy) rather
 * than a queue that grows with it.
 * @internal
 */
export class ScriptPacer {
  /** Units started this turn. */
  private used = 0
  private armed = false
  private readonly waiting: Waiter[] = []

  constructor(
    readonly perTurn: number,
    readonly limits: Readonly<PacerLimits> = PACER_LIMITS,
  ) {}

  /** Callers waiting for a turn now. */
  get queued(): number {
    return this.waiting.length
  }

  /**
   * Runs `call` now if this turn has room and nothing waits before it, else at the
   * first turn that has; rejects with ERR_OVERLOADED (without running `call`) when
   * the queue is full or the turn comes too late.
   */
  run<T>(call: () => Promise<T>): Promise<T> {
    if (this.waiting.length === 0 && this.take(1) === 1) return call()
    if (this.waiting.length >= this.limits.maxWaiting) return Promise.reject(this.full())
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({
        go: () => {
          this.used++
          resolve()
        },
        refuse: reject,
        at: performance.now(),
      })
      this.arm()
    }).then(call)
  }

  /** Up to `wanted` units of this turn's room, taken now (0 when it is used up). */
  take(wanted: number): number {
    const n = Math.min(wanted, this.perTurn - this.used)
    if (n <= 0) return 0
    this.used += n
    this.arm()
    return n
  }

  /**
   * Calls `go` at the start of a later turn, in order with the other waiting
   * callers, while that turn has room; `go` takes its share with `take`. (The
   * caller bounds what it queues behind `go` itself: see RedisThrottlerStorage.)
   */
  later(go: () => void): void {
    this.waiting.push({ go, at: performance.now() })
    this.arm()
  }

  /** The refusal of a caller past `maxWaiting`. */
  private full(): RedisError {
    return new RedisError(
      ErrorCode.Overloaded,
      `${this.waiting.length} calls already wait for a turn of this client's script pacer (at most ${this.limits.maxWaiting}); nothing was sent`,
    )
  }

  private arm(): void {
    if (this.armed) return
    this.armed = true
    setImmediate(this.nextTurn)
  }

  private nextTurn = (): void => {
    this.armed = false
    this.used = 0
    const waiting = this.waiting
    const late = performance.now() - this.limits.maxWaitMs
    let i = 0
    while (i < waiting.length && this.used < this.perTurn) {
      const w = waiting[i++]
      if (w.refuse !== undefined && w.at < late) {
        // waited past maxWaitMs: refused, and its room goes to the next one
        w.refuse(new RedisError(ErrorCode.Overloaded, `waited ${Math.round(performance.now() - w.at)} ms for a turn of this client's script pacer (at most ${this.limits.maxWaitMs}); nothing was sent`))
      } else {
        w.go()
      }
    }
    waiting.splice(0, i) // once per turn: a long queue is not shifted call by call
    // a turn that started work arms the next, which gives its room back
    if (this.waiting.length > 0 || this.used > 0) this.arm()
  }
}
