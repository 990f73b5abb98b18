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

/** connectTimeoutMs of the clients under test. */
export const CONNECT_TIMEOUT_MS = 500

/** Reconnect backoff of the clients under test. */
export const RECONNECT = { minDelayMs: 20, maxDelayMs: 200 }

/**
 * The cap on what waits to be sent (point 6 of issue 18): once the commands a client
 * has not yet written to its socket hold this many bytes (encoded), a new call fails
 * at once (ERR_CONNECTION or ERR_TIMEOUT: "unavailable") instead of joining them. A
 * cap in bytes, not calls: it bounds memory, and a burst of many small calls on a
 * healthy connection (which drains) never meets it. One call alone may be larger.
 */
export const SEND_QUEUE_CAP_BYTES = 64 * 1024 * 1024

/** A client that lost its connection serves again this long after the fault ended. */
export const RECOVER_MS = COMMAND_TIMEOUT_MS + HEALTH_CHECK_MS + CONNECT_TIMEOUT_MS + RECONNECT.maxDelayMs + 1000
