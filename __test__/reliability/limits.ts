// The bounds the reliability specs hold the client to, in one place (docs/reliability.md
// quotes them). Generous on purpose: they separate "recovers" from "never recovers",
// they do not measure speed.

/** commandTimeoutMs of the clients under test. */
export const COMMAND_TIMEOUT_MS = 500

/**
 * How long the client may take to notice a connection that answers nothing (a
 * blackholed path, a command that blocks the server side of it) once a call timed out
 * on it: its health check (timeouts with nothing read, or a PING on a quiet
 * connection). A connection is given up within COMMAND_TIMEOUT_MS + HEALTH_CHECK_MS.
 */
export const HEALTH_CHECK_MS = 2000

/**
 * Calls waiting to be sent, per client, past which a call fails fast (ERR_CONNECTION
 * or ERR_TIMEOUT at once) instead of joining the queue while the connection cannot
 * take them: the cap point 6 of issue 18 asks for, as these specs hold it.
 */
export const SEND_QUEUE_CAP = 10_000
