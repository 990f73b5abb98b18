// BullMQ's Lua scripts, registered by name with defineCommand() and run by SHA.
import { invalidArgument } from '../core/errors'
import { scriptSha1 } from '../core/script'

/** A script BullMQ registered (defineCommand). @internal */
export interface ScriptDef {
  readonly name: string
  readonly lua: string
  readonly sha: string
  readonly numberOfKeys: number
}

/** @internal */
export function scriptDef(name: string, definition: { numberOfKeys: number; lua: string }): ScriptDef {
  const { numberOfKeys, lua } = definition
  if (typeof name !== 'string' || name === '') throw invalidArgument('defineCommand(): name must be a non-empty string')
  if (!Number.isSafeInteger(numberOfKeys) || numberOfKeys < 0) {
    throw invalidArgument(`defineCommand(${name}): numberOfKeys must be an integer ≥ 0`)
  }
  return { name, lua, sha: scriptSha1(lua, 'defineCommand()'), numberOfKeys }
}
