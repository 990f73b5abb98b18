// For the tests only (the package routes in Rust, src/engine/cluster.rs): which node
// holds a key, to check the routing against the cluster's own answer.
//
// The Redis Cluster key slot of a key: CRC16 (XMODEM: polynomial 0x1021, initial
// value 0) of the key's hash tag — or of the whole key when it has none — mod 16384,
// as in the Redis Cluster specification (keyHashSlot() in cluster.c).

/** Slots of a Redis Cluster. @internal */
export const SLOTS = 16384

const TABLE = (() => {
  const t = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i << 8
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1
    t[i] = c & 0xffff
  }
  return t
})()

/** CRC16/XMODEM of `bytes[from, to)`. @internal */
export function crc16(bytes: Uint8Array, from = 0, to = bytes.length): number {
  let crc = 0
  for (let i = from; i < to; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]) & 0xff]
  return crc
}

/**
 * The cluster slot of `key` (its UTF-8 bytes, or a Buffer's bytes): the part
 * between the first `{` and the first `}` after it when that part is not empty,
 * else the whole key.
 *
 * ```ts
 * keySlot('foo')                                                   // 12182
 * keySlot('{user1000}.following') === keySlot('{user1000}.followers') // true
 * ```
 * @internal
 */
export function keySlot(key: string | Uint8Array): number {
  if (typeof key === 'string') {
    // ASCII (the usual case) hashes from the string itself, without a copy
    let ascii = true
    for (let i = 0; i < key.length; i++) {
      if (key.charCodeAt(i) > 0x7f) {
        ascii = false
        break
      }
    }
    if (!ascii) return keySlot(Buffer.from(key, 'utf8'))
    let from = 0
    let to = key.length
    const open = key.indexOf('{')
    if (open >= 0) {
      const close = key.indexOf('}', open + 1)
      if (close > open + 1) {
        from = open + 1
        to = close
      }
    }
    let crc = 0
    for (let i = from; i < to; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ key.charCodeAt(i)) & 0xff]
    return crc & (SLOTS - 1)
  }
  let from = 0
  let to = key.length
  const open = key.indexOf(0x7b) // {
  if (open >= 0) {
    const close = key.indexOf(0x7d, open + 1) // }
    if (close > open + 1) {
      from = open + 1
      to = close
    }
  }
  return crc16(key, from, to) & (SLOTS - 1)
}
