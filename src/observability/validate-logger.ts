import type { Logger } from "pino";

/**
 * validateLogger checks that `logger` looks like pino, at construction.
 * @private
 */
export function validateLogger(logger: unknown, where: string): void {
  const l = logger as Partial<Logger> | undefined;
  if (
    typeof l?.child !== "function" ||
    typeof l.info !== "function" ||
    typeof l.isLevelEnabled !== "function"
  ) {
    throw new TypeError(`${where}: logger must be a pino logger`);
  }
}
