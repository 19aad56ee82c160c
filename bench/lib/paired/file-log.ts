// Log files of the paired children: a pino logger at info over
// `pino.destination({ dest, sync: false })` (SonicBoom, asynchronous writes),
// and the size / line count of such a file.

import { createReadStream, statSync } from "node:fs";
import { type Logger, pino } from "pino";
import type { LogSink, LogSummary } from "./protocol.js";

/** FileLog is a pino logger at info writing asynchronously to a file. */
export interface FileLog {
  readonly logger: Logger;
  readonly path: string;
  flush(): Promise<void>;
}

/** openFileLog makes a pino logger at info over `pino.destination({ dest, sync: false })`. */
export function openFileLog(sink: LogSink): FileLog | undefined {
  if (sink.kind === "off") {
    return undefined;
  }
  const dest = pino.destination({ dest: sink.path, sync: false, mkdir: true });
  const logger = pino({ level: "info" }, dest);
  return {
    logger,
    path: sink.path,
    flush: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2_000);
        try {
          dest.flush(() => {
            clearTimeout(timer);
            resolve();
          });
        } catch {
          // Not open yet or nothing to flush.
          clearTimeout(timer);
          resolve();
        }
      }),
  };
}

/** fileBytes is a file's size, or 0 when it does not exist (yet). */
export function fileBytes(path: string | undefined): number {
  if (path === undefined) {
    return 0;
  }
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** summarizeLog counts a log file's bytes and lines, and keeps its last complete line. */
export async function summarizeLog(
  name: string,
  path: string,
  calls: number,
): Promise<LogSummary["files"][0]> {
  let lines = 0;
  let bytes = 0;
  let tail = "";
  for await (const chunk of createReadStream(path)) {
    const buf = chunk as Buffer;
    bytes += buf.length;
    for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) {
      lines++;
    }
    tail = (tail + buf.subarray(Math.max(0, buf.length - 4096)).toString("utf8")).slice(-8192);
  }
  const complete = tail.split("\n").filter((l) => l.trim() !== "");
  return { name, path, bytes, lines, calls, sample: complete[complete.length - 1] ?? "" };
}
