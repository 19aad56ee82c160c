import { type Logger, pino } from "pino";

let shared: Logger | undefined;

/**
 * defaultLogger is the pino logger servers and transports use when given
 * none: JSON lines to stdout at the level in `MESH_LOG_LEVEL` (default info;
 * `silent` turns logging off, as the test suite does).
 */
export function defaultLogger(): Logger {
  shared ??= pino({ level: process.env.MESH_LOG_LEVEL ?? "info" });
  return shared;
}

/** SILENT_LOGGER discards everything: what `logger: false` means. */
export const SILENT_LOGGER: Logger = pino({ level: "silent" });
