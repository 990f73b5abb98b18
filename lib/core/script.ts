// The script API: `client.eval()` and `client.defineScript()`. Scripts run by
// EVALSHA; the source goes (EVAL) only when the server answers NOSCRIPT.
import { createHash } from 'node:crypto'
import { isArray, isInt, isPlainObject, checkOptionKeys } from './args'
import { argumentError, invalidArgument } from './errors'
import type { RedisKey, RedisValue } from './types'
import type { RedisClient } from './client'

export interface ScriptOptions {
  /** How many keys every `run()` passes (checked before sending); any number when omitted. */
  keys?: number
}

const SCRIPT_OPTIONS = new Set(['keys'])
/** SHA1s of recently run sources: eval() of the same text does not hash it again. */
const shas = new Map<string, string>()
const SHA_CACHE_MAX = 256

/** The SHA1 of a script's source, as Redis names it (EVALSHA). @internal */
export function scriptSha1(script: unknown, where: string): string {
  if (typeof script !== 'string' || script === '') throw invalidArgument(`${where}: script must be a non-empty string of Lua`)
  let sha = shas.get(script)
  if (sha === undefined) {
    sha = createHash('sha1').update(script, 'utf8').digest('hex')
    if (shas.size >= SHA_CACHE_MAX) shas.delete(shas.keys().next().value as string)
    shas.set(script, sha)
  }
  return sha
}

/**
 * A Lua script bound to a client (`client.defineScript(lua, { keys })`).
 *
 * ```ts
 * const swap = redis.defineScript(
 *   "local v = redis.call('GET', KEYS[1]); redis.call('SET', KEYS[1], ARGV[1]); return v",
 *   { keys: 1 },
 * )
 * const previous = await swap.run(['config:mode'], ['maintenance'])
 * ```
 */
export class Script {
  /** The SHA1 of the source, which EVALSHA names the script by. */
  readonly sha1: string
  /** The number of keys each run takes, when fixed. */
  readonly keys?: number

  /** @internal */
  constructor(
    private readonly client: RedisClient,
    /** The Lua source. */
    readonly source: string,
    options?: ScriptOptions,
  ) {
    try {
      this.sha1 = scriptSha1(source, 'defineScript()')
      if (options !== undefined) {
        if (!isPlainObject(options)) throw invalidArgument('defineScript(): options must be a plain object, e.g. { keys: 1 }')
        checkOptionKeys('defineScript()', options, SCRIPT_OPTIONS)
        if (options.keys !== undefined) {
          if (!isInt(options.keys, 0)) throw invalidArgument(`defineScript(): options.keys must be an integer ≥ 0, got ${String(options.keys)}`)
          this.keys = options.keys
        }
      }
    } catch (e) {
      throw argumentError(e, 'defineScript()')
    }
  }

  /**
   * Runs the script with these KEYS (the client's keyPrefix applied) and ARGV;
   * resolves what it returns (strings, numbers, arrays, null).
   */
  run(keys: RedisKey[] = [], args: Array<RedisValue | number> = []): Promise<unknown> {
    if (!isArray(keys)) return Promise.reject(invalidArgument('run(): keys must be an array'))
    if (!isArray(args)) return Promise.reject(invalidArgument('run(): args must be an array'))
    if (this.keys !== undefined && keys.length !== this.keys) {
      return Promise.reject(invalidArgument(`run(): this script takes ${this.keys} key(s), got ${keys.length}`))
    }
    return this.client.evalSha(this.sha1, this.source, keys, args)
  }
}
