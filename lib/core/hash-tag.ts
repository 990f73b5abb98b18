/**
 * The `{…}` hash tag for a caller's key: every Redis key of one call shares it,
 * so a script's keys live in one cluster slot. Keys holding a brace (or starting
 * with `~`) are encoded as `~` + base64url, so the mapping stays one-to-one.
 * @internal
 */
export function hashTag(key: string): string {
  if (key.includes('{') || key.includes('}') || key.startsWith('~')) {
    return `{~${Buffer.from(key, 'utf8').toString('base64url')}}`
  }
  return `{${key}}`
}
