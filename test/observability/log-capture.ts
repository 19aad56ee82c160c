// Test support: a pino logger writing into memory, and parsed access to its lines.

import { type Logger, pino } from "pino";

/** LogLine is one parsed JSON log line. */
export type LogLine = Record<string, unknown> & { level: number; msg?: string };

/** LogCapture collects every line a pino logger writes, raw and parsed. */
export interface LogCapture {
  readonly logger: Logger;
  /** raw is everything written, in order. */
  readonly raw: string[];
  lines(): LogLine[];
  /** finished returns the `finished call` lines of one component. */
  finished(component: "server" | "client"): LogLine[];
}

/** captureLogs returns a logger at `level` (default debug) writing into memory. */
export function captureLogs(level = "debug"): LogCapture {
  const raw: string[] = [];
  const logger = pino({ level }, { write: (s: string) => raw.push(s) });
  const lines = () =>
    raw.flatMap((chunk) =>
      chunk
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l)),
    );
  return {
    logger,
    raw,
    lines,
    finished: (component) =>
      lines().filter((l) => l.msg === "finished call" && l["grpc.component"] === component),
  };
}
