// Log files of the paired children: a pino logger at info over connect-mesh's
// createLogDestination (one write per event-loop turn) or, with writer
// "sonic-boom", `pino.destination({ dest, sync: false })` (asynchronous
// writes), and the size / line count of such a file.

import { createReadStream } from "node:fs";
import { type Logger, pino } from "pino";
import { loadMeshLibrary } from "../mesh-library.js";
import type { LogSink, LogSummary } from "./protocol.js";

const { createLogDestination } = await loadMeshLibrary();

/** FileLog is a pino logger at info writing to a file (see LogSink for the writer). */
export interface FileLog {
  readonly logger: Logger;
  readonly path: string;
  /** written counts the characters pino handed to the destination (ASCII JSON: bytes), flushed or not. */
  written(): number;
  flush(): Promise<void>;
}

/** openFileLog makes a pino logger at info over the sink's writer (see LogSink). */
export function openFileLog(sink: LogSink): FileLog | undefined {
  if (sink.kind === "off") {
    return undefined;
  }
  const dest =
    (sink.writer ?? "mesh") === "mesh"
      ? createLogDestination({ dest: sink.path })
      : pino.destination({ dest: sink.path, sync: false, mkdir: true });
  let written = 0;
  const logger = pino(
    {
      level: "info",
      hooks: {
        streamWrite(line) {
          written += line.length;
          return line;
        },
      },
    },
    dest,
  );
  return {
    logger,
    path: sink.path,
    written: () => written,
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
