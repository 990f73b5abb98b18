/** The AppOptions of this instance (see config.ts). */
export const APP_OPTIONS = Symbol('APP_OPTIONS')
/** The Better Auth instance. */
export const BETTER_AUTH = Symbol('BETTER_AUTH')
