// The native binding that `napi build` generates at the package root.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const binding: typeof import('../../index') = require('../../index.js')

/** @internal */
export const { NativeClient, NativeSubscriber, routingKeys, slotTag, keySlot } = binding
/** @internal */
export type NativeClient = InstanceType<typeof binding.NativeClient>
/** @internal */
export type NativeSubscriber = InstanceType<typeof binding.NativeSubscriber>
/** @internal */
export type NativeStats = import('../../index').NativeStats

/** Op codes by name, as the native command table numbers them. @internal */
export const OP: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(binding.opNames().map((name, code) => [name, code])),
)

/** Number of arguments each op takes, by op code. @internal */
export const OP_ARITY: readonly number[] = Object.freeze(binding.opArities())

/** Ids of the package's Lua scripts, by name. @internal */
export const SCRIPT: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(binding.scriptNames().map((name, id) => [name, id])),
)
