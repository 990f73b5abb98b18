// The in-flight table: lookups by id survive wrap-around, growth and out-of-order completion.
import { PendingTable, type Pending } from '../lib/core/pending'

const call = (id: number, log: number[]): Pending => ({ id, resolve: () => log.push(id), reject: () => log.push(-id) })

test('a call far older than the rest survives the ring filling up behind it', () => {
  const t = new PendingTable()
  const log: number[] = []
  t.add(call(0, log)) // e.g. a BLPOP that never returns
  for (let id = 1; id < 5000; id++) {
    t.add(call(id, log))
    t.take(id)?.resolve(undefined)
  }
  expect(t.size).toBe(1)
  expect(log).toHaveLength(4999)
  t.take(0)?.reject(new Error('x'))
  expect(log[log.length - 1]).toBe(-0)
  expect(t.size).toBe(0)
})

test('out-of-order completion and stale ids', () => {
  const t = new PendingTable()
  const log: number[] = []
  for (let id = 100; id < 3100; id++) t.add(call(id, log))
  for (let id = 3099; id >= 100; id -= 2) t.take(id)?.resolve(undefined)
  expect(t.size).toBe(1500)
  expect(t.take(3099)).toBeUndefined() // already taken
  expect(t.take(99)).toBeUndefined() // never added
  expect(t.drain().map((p) => p.id)).toEqual(Array.from({ length: 1500 }, (_, i) => 100 + 2 * i))
  expect(t.size).toBe(0)
})
