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
 * @internal
 */
export class ScriptPacer {
  /** Units started this turn. */
  private used = 0
  private armed = false
  private readonly waiting: Array<() => void> = []

  constructor(readonly perTurn: number) {}

  /** Runs `call` now if this turn has room and nothing waits before it, else at the first turn that has. */
  run<T>(call: () => Promise<T>): Promise<T> {
    if (this.waiting.length === 0 && this.take(1) === 1) return call()
    return new Promise<void>((resolve) =>
      this.later(() => {
        this.used++
        resolve()
      }),
    ).then(call)
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
   * callers, while that turn has room; `go` takes its share with `take`.
   */
  later(go: () => void): void {
    this.waiting.push(go)
    this.arm()
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
    let i = 0
    while (i < waiting.length && this.used < this.perTurn) waiting[i++]()
    waiting.splice(0, i) // once per turn: a long queue is not shifted call by call
    // a turn that started work arms the next, which gives its room back
    if (this.waiting.length > 0 || this.used > 0) this.arm()
  }
}
