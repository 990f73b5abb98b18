// BullMQ's IRedisTransaction (the commands it queues on multi() and pipeline())
// over this package's Pipeline. Scripts go as EVALSHA, the script being loaded
// on the server beforehand (as ioredis does); exec() answers ioredis' shape,
// `[error | null, value]` per command. A long plain pipeline (addBulk) goes in
// parts, so that Redis runs the first while the next is encoded.
import type { IRedisTransaction } from 'bullmq'
import { RedisError } from '../core/errors'
import type { Pipeline } from '../core/transaction'
import { argList, forBullMQ, hashFields, scriptArg } from './shapes'
import type { ScriptDef } from './scripts'

/** What a transaction needs of its client. @internal */
export interface TransactionOwner {
  readonly isCluster: boolean
  /** Loads the scripts this connection may not hold yet (SCRIPT LOAD), before a batch that runs them by SHA. */
  preload(defs: Iterable<ScriptDef>): Promise<void>
  /** The script registered under `name` (defineCommand). */
  scriptNamed(name: string): ScriptDef
  /** Runs `fn` once the connection is ready (at once when it is), with errors as BullMQ reads them. */
  send<T>(fn: () => Promise<T>): Promise<T>
  /** Runs one script call on its own (EVALSHA, EVAL on NOSCRIPT). */
  runCommand(name: string, args: unknown[]): Promise<unknown>
}

/**
 * Commands per part of a plain pipeline. Each part is encoded and written on
 * its own turn of the microtask queue, so Redis runs it while the next is
 * encoded (`addBulk` of 10,000 jobs: the first script used to start only once
 * all 10,000 were encoded, 40–80 ms later). A transaction is never split.
 */
const PART = 1000

/**
 * The builder of `BullMQRedisClient.multi()` (MULTI/EXEC) and `pipeline()`:
 * the commands BullMQ queues on it (BullMQ's IRedisTransaction), then `exec()`.
 */
export class BullMQTransaction implements IRedisTransaction {
  /** The script calls queued, by their index among the commands. */
  private scripts?: Map<number, { def: ScriptDef; args: unknown[] }>
  /** The part being filled; the full ones before it (plain pipelines only). */
  private current: Pipeline
  private readonly full: Pipeline[] = []
  private queued = 0

  /** @internal */
  constructor(
    private readonly owner: TransactionOwner,
    private readonly open: () => Pipeline,
    private readonly atomic: boolean,
  ) {
    this.current = open()
  }

  /** The part the next command goes to (counted as queued). */
  private next(): Pipeline {
    if (!this.atomic && this.current.length === PART) {
      this.full.push(this.current)
      this.current = this.open()
    }
    this.queued++
    return this.current
  }

  hgetall(key: string): this {
    this.next().hgetall(key)
    return this
  }

  hset(key: string, data: Record<string, string | number>): this {
    this.next().command('HSET', key, ...hashFields(data))
    return this
  }

  hscan(key: string, cursor: string | number, options?: { COUNT?: number }): this {
    return this.scan('HSCAN', key, cursor, options)
  }

  smembers(key: string): this {
    this.next().smembers(key)
    return this
  }

  sscan(key: string, cursor: string | number, options?: { COUNT?: number }): this {
    return this.scan('SSCAN', key, cursor, options)
  }

  zrange(key: string, start: number, end: number): this {
    this.next().command('ZRANGE', key, start, end)
    return this
  }

  lrange(key: string, start: number, end: number): this {
    this.next().command('LRANGE', key, start, end)
    return this
  }

  llen(key: string): this {
    this.next().command('LLEN', key)
    return this
  }

  /** DEL; with no keys nothing is queued (and exec() answers no entry for it). */
  del(...keys: string[]): this {
    if (keys.length > 0) this.next().command('DEL', ...keys)
    return this
  }

  runCommand(name: string, args: unknown[]): this {
    const def = this.owner.scriptNamed(name)
    const all = argList(args)
    const keys = new Array<string | Buffer>(def.numberOfKeys)
    for (let i = 0; i < def.numberOfKeys; i++) keys[i] = scriptArg(all[i]) as string | Buffer
    const argv = new Array(Math.max(0, all.length - def.numberOfKeys))
    for (let i = def.numberOfKeys; i < all.length; i++) argv[i - def.numberOfKeys] = scriptArg(all[i])
    ;(this.scripts ??= new Map()).set(this.queued, { def, args: all })
    // A cluster transaction may run on any node, which this client cannot load a script on
    // ahead: the source goes along (EVAL). Elsewhere the SHA (preloaded by exec()).
    if (this.owner.isCluster && this.atomic) this.next().eval(def.lua, keys, argv)
    else this.next().command('EVALSHA', def.sha, def.numberOfKeys, ...keys, ...argv)
    return this
  }

  /**
   * Sends the queued commands: `[error, null]` or `[null, value]` per command,
   * null when a transaction was discarded (a WATCHed key changed).
   */
  async exec(): Promise<[Error | null, any][] | null> {
    const scripts = this.scripts
    if (scripts !== undefined && !this.owner.isCluster) {
      await this.owner.preload(new Set([...scripts.values()].map((s) => s.def)))
    }
    // While the connection is down this waits for it, as the client's own calls do.
    const replies = this.full.length === 0 ? await this.owner.send(() => this.current.exec()) : await this.sendParts()
    if (replies === null) return null
    const out = new Array<[Error | null, any]>(replies.length)
    let retry: number[] | undefined
    for (let i = 0; i < replies.length; i++) {
      const r = replies[i]
      if (r instanceof RedisError) {
        // Not loaded after all (a SCRIPT FLUSH meanwhile, or another cluster node): in a
        // pipeline nothing of that call ran, so it runs again on its own. In a
        // transaction the others did run: the error stays.
        if (r.serverCode === 'NOSCRIPT' && !this.atomic && scripts?.has(i)) (retry ??= []).push(i)
        out[i] = [forBullMQ(r) as Error, null]
      } else {
        out[i] = [null, r]
      }
    }
    if (retry !== undefined) await this.retry(retry, out)
    return out
  }

  /**
   * Sends each part once the one before it is on its way: the client sends
   * what a turn of the microtask queue queued, so awaiting one turn lets it
   * write this part before the next is encoded. Rejects as a single pipeline
   * would (the first part's error), once every part has settled.
   */
  private async sendParts(): Promise<unknown[]> {
    const parts = [...this.full, this.current]
    const sent: Array<Promise<unknown[] | null>> = []
    for (const part of parts) {
      sent.push(this.owner.send(() => part.exec()))
      await null
    }
    const settled = await Promise.allSettled(sent)
    const failed = settled.find((s) => s.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    return settled.flatMap((s) => (s as PromiseFulfilledResult<unknown[]>).value)
  }

  /** Runs the script calls that met NOSCRIPT again, one first (which loads the script), then the rest. */
  private async retry(indexes: number[], out: Array<[Error | null, any]>): Promise<void> {
    const run = (i: number) => {
      const s = this.scripts!.get(i)!
      return this.owner.runCommand(s.def.name, s.args).then(
        (v) => (out[i] = [null, v]),
        (e: unknown) => (out[i] = [e as Error, null]),
      )
    }
    await run(indexes[0])
    await Promise.all(indexes.slice(1).map(run))
  }

  private scan(name: string, key: string, cursor: string | number, options?: { COUNT?: number }): this {
    if (options?.COUNT != null) this.next().command(name, key, String(cursor), 'COUNT', options.COUNT)
    else this.next().command(name, key, String(cursor))
    return this
  }
}
