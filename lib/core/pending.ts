/** A call waiting for its reply. @internal */
export interface Pending {
  id: number
  resolve(value: unknown): void
  reject(error: Error): void
}

/**
 * The calls in flight, by id. Ids are handed out in sequence, so a ring
 * indexed by `id & mask` finds them without hashing; it doubles when a slot
 * is still taken (a call far older than the rest, e.g. a blocking BLPOP).
 * @internal
 */
export class PendingTable {
  private slots: Array<Pending | undefined> = new Array(1024)
  private mask = 1023
  size = 0

  add(p: Pending): void {
    let i = p.id & this.mask
    while (this.slots[i] !== undefined) {
      this.grow()
      i = p.id & this.mask
    }
    this.slots[i] = p
    this.size++
  }

  /** Removes and returns the call with this id, if it is still waiting. */
  take(id: number): Pending | undefined {
    const i = id & this.mask
    const p = this.slots[i]
    if (p === undefined || p.id !== id) return undefined
    this.slots[i] = undefined
    this.size--
    return p
  }

  /** Removes and returns every waiting call. */
  drain(): Pending[] {
    const all = this.slots.filter((p): p is Pending => p !== undefined)
    this.slots = new Array(this.slots.length)
    this.size = 0
    return all
  }

  private grow(): void {
    const old = this.slots
    this.slots = new Array(old.length * 2)
    this.mask = this.slots.length - 1
    for (const p of old) if (p !== undefined) this.slots[p.id & this.mask] = p
  }
}
