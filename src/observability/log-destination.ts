import { closeSync, constants, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * LogDestinationOptions configures createLogDestination.
 */
export interface LogDestinationOptions {
  /** dest is a file path (opened for appending) or an open file descriptor (1 is stdout). */
  readonly dest: string | number;
  /** mkdir makes the file's directory when it is missing (path only); default true. */
  readonly mkdir?: boolean;
  /**
   * maxBufferedBytes bounds the lines held while the destination cannot take
   * them (a full pipe: EAGAIN); lines beyond it are dropped and counted in
   * `dropped`, so a stuck log reader cannot exhaust memory. Default 16 MiB.
   */
  readonly maxBufferedBytes?: number;
  /**
   * onError receives a write error other than EAGAIN (the lines of that write
   * are dropped and counted). Default: one process warning per error code.
   */
  readonly onError?: (err: NodeJS.ErrnoException) => void;
}

/** LogDestination is a pino destination stream; pass it as pino's second argument. */
export interface LogDestination {
  /** write queues one line (pino writes whole lines); false once lines are being dropped. */
  write(line: string): boolean;
  /** flushSync writes every queued line now (pino's `final` and process exit use it). */
  flushSync(): void;
  /** flush writes every queued line, then calls `cb`. */
  flush(cb?: (err?: Error) => void): void;
  /** reopen closes and reopens a path destination (after log rotation moved the file). */
  reopen(): void;
  /** end writes what is queued and closes a path destination (until then it is kept, for the exit flush); later writes are dropped. */
  end(): void;
  /** dropped counts lines lost to a full `maxBufferedBytes`, a write error or `end`. */
  readonly dropped: number;
}

/** LOG_DESTINATION_DEFAULTS are the defaults documented on LogDestinationOptions. */
export const LOG_DESTINATION_DEFAULTS = Object.freeze({
  mkdir: true,
  maxBufferedBytes: 16 * 1024 * 1024,
});

// Queued lines of every destination not yet ended are written when the
// process exits (an open one holds its file descriptor until `end` anyway).
const open = new Set<LogDestination>();
let exitHooked = false;
function onExit(): void {
  for (const d of open) d.flushSync();
}

/**
 * createLogDestination returns a pino destination that writes the lines
 * queued during one turn of the event loop with one synchronous write, after
 * the turn (setImmediate): one system call for many calls' log lines, and
 * every line written in order, even when the process exits.
 *
 * Why not `pino.destination({ sync: false })`: SonicBoom appends each line to
 * the pending string and measures it with `Buffer.byteLength`, which flattens
 * the whole pending string on every line, so a busy logger copies ~8 KB per
 * line (measured on a mesh server logging each call: ~28% of what it
 * allocated per call). Here a batch is joined and encoded once.
 *
 * A full non-blocking pipe (EAGAIN) keeps the lines and retries; other write
 * errors drop the batch (counted, see `onError`). Writing a batch blocks the
 * event loop for that write: right for files and terminals; a pipe to a slow
 * reader is bounded by `maxBufferedBytes`.
 */
export function createLogDestination(options: LogDestinationOptions): LogDestination {
  const { dest, mkdir, maxBufferedBytes } = { ...LOG_DESTINATION_DEFAULTS, ...options };
  if (typeof dest === "number") {
    if (!Number.isInteger(dest) || dest < 0) {
      throw new RangeError(`log destination fd ${dest} must be an integer >= 0`);
    }
  } else if (typeof dest !== "string" || dest === "") {
    throw new TypeError(
      `log destination dest ${JSON.stringify(dest)} must be a path or a file descriptor`,
    );
  }
  if (!(Number.isSafeInteger(maxBufferedBytes) && maxBufferedBytes >= 1)) {
    throw new RangeError(
      `log destination maxBufferedBytes ${maxBufferedBytes} must be an integer >= 1`,
    );
  }
  const warned = new Set<string>();
  const onError =
    options.onError ??
    ((err: NodeJS.ErrnoException) => {
      const code = err.code ?? err.name;
      if (warned.has(code)) return;
      warned.add(code);
      process.emitWarning(`connect-mesh log destination ${String(dest)}: ${err.message}`, {
        code: "CONNECT_MESH_LOG_WRITE",
      });
    });

  const openPath = (path: string): number => {
    if (mkdir) mkdirSync(dirname(path), { recursive: true });
    return openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o666);
  };
  let fd = typeof dest === "number" ? dest : openPath(dest);
  let lines: string[] = [];
  // Characters queued (UTF-16 units): the bytes of ASCII JSON lines, and at
  // least a third of any line's UTF-8 bytes; a memory bound, not an exact one.
  let queued = 0;
  // Bytes of a batch a full pipe did not take yet (written before any line).
  let rest: Buffer | undefined;
  let scheduled: NodeJS.Immediate | undefined;
  let retry: NodeJS.Timeout | undefined;
  let dropped = 0;
  let ended = false;
  const waiting: ((err?: Error) => void)[] = [];

  // writeAll writes `buf` from `offset`; it returns what a full pipe left.
  const writeAll = (buf: Buffer): Buffer | undefined => {
    let offset = 0;
    while (offset < buf.length) {
      try {
        offset += writeSync(fd, buf, offset, buf.length - offset);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === "EAGAIN") return buf.subarray(offset);
        throw err;
      }
    }
    return undefined;
  };
  // writeBatch writes a string straight from V8's memory (Node encodes it
  // into a transient buffer); only what a full pipe leaves becomes a Buffer.
  const writeBatch = (batch: string): Buffer | undefined => {
    let n: number;
    try {
      n = writeSync(fd, batch, null, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") return Buffer.from(batch, "utf8");
      throw e;
    }
    if (n === Buffer.byteLength(batch, "utf8")) return undefined;
    return writeAll(Buffer.from(batch, "utf8").subarray(n));
  };
  // restLines is how many lines `rest` finishes (what a failure there loses).
  let restLines = 0;
  // drain writes the leftover bytes, then the queued lines as one batch.
  const drain = (): void => {
    scheduled = undefined;
    let batchLines = restLines;
    try {
      if (rest !== undefined) rest = writeAll(rest);
      if (rest === undefined && lines.length > 0) {
        const batch = lines.length === 1 ? (lines[0] as string) : lines.join("");
        batchLines = lines.length;
        lines = [];
        queued = 0;
        rest = writeBatch(batch);
      }
      restLines = rest === undefined ? 0 : batchLines;
    } catch (e) {
      // The batch being written is lost; queued lines wait for the next try.
      dropped += batchLines;
      rest = undefined;
      restLines = 0;
      onError(e as NodeJS.ErrnoException);
    }
    if (rest !== undefined) {
      // A full pipe: try again shortly, keeping what is queued.
      retry ??= setTimeout(() => {
        retry = undefined;
        drain();
      }, 10);
      retry.unref();
      return;
    }
    for (const cb of waiting.splice(0)) cb();
  };

  // schedule drains after this turn, unless a drain or a retry is pending.
  const schedule = (): void => {
    if (scheduled === undefined && retry === undefined) {
      scheduled = setImmediate(drain);
      scheduled.unref();
    }
  };

  const destination: LogDestination = {
    write(line: string): boolean {
      // What a full pipe left counts too: the bound covers everything held.
      if (ended || queued + (rest?.length ?? 0) + line.length > maxBufferedBytes) {
        dropped++;
        return false;
      }
      lines.push(line);
      queued += line.length;
      schedule();
      return true;
    },
    flushSync(): void {
      if (scheduled !== undefined) clearImmediate(scheduled);
      drain();
    },
    flush(cb?: (err?: Error) => void): void {
      if (lines.length === 0 && rest === undefined) {
        if (cb !== undefined) queueMicrotask(() => cb());
        return;
      }
      if (cb !== undefined) waiting.push(cb);
      schedule();
    },
    reopen(): void {
      if (typeof dest === "number" || ended) return;
      destination.flushSync();
      const next = openPath(dest);
      const prev = fd;
      fd = next;
      closeSync(prev);
    },
    end(): void {
      if (ended) return;
      destination.flushSync();
      ended = true;
      open.delete(destination);
      if (rest !== undefined) {
        dropped += restLines;
        rest = undefined;
      }
      if (retry !== undefined) clearTimeout(retry);
      for (const cb of waiting.splice(0)) cb();
      if (typeof dest !== "number") closeSync(fd);
    },
    get dropped() {
      return dropped;
    },
  };
  open.add(destination);
  if (!exitHooked) {
    exitHooked = true;
    process.on("exit", onExit);
  }
  return destination;
}
