// createLogDestination on real files, a real FIFO and a real child process.

import { execFile } from "node:child_process";
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createLogDestination, type LogDestination } from "../../src/index.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);

const dirs: string[] = [];
const dests: LogDestination[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "mesh-logdest-"));
  dirs.push(d);
  return d;
};
const make = (...args: Parameters<typeof createLogDestination>) => {
  const d = createLogDestination(...args);
  dests.push(d);
  return d;
};
afterEach(() => {
  for (const d of dests.splice(0)) d.end();
});

const flushed = (d: LogDestination) => new Promise<void>((resolve) => d.flush(() => resolve()));

describe("createLogDestination", () => {
  it("writes pino's lines in order, multi-byte included, making the directory", async () => {
    const path = join(tempDir(), "nested", "dir", "calls.log");
    const dest = make({ dest: path });
    const logger = pino({ level: "info", base: undefined, timestamp: false }, dest);
    for (let i = 0; i < 500; i++) logger.info({ i, peer: "ü→東" }, "finished call");
    await flushed(dest);
    const lines = readFileSync(path, "utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(500);
    expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual(
      Array.from({ length: 500 }, (_, i) => i),
    );
    expect(JSON.parse(lines[7] as string)).toMatchObject({ peer: "ü→東", msg: "finished call" });
    expect(dest.dropped).toBe(0);
  });

  it("appends to an existing file and writes to the new file after reopen (log rotation)", async () => {
    const dir = tempDir();
    const path = join(dir, "a.log");
    const first = make({ dest: path });
    first.write("one\n");
    first.end();
    const dest = make({ dest: path });
    dest.write("two\n");
    await flushed(dest);
    renameSync(path, join(dir, "a.log.1"));
    dest.write("three\n");
    dest.reopen();
    dest.write("four\n");
    await flushed(dest);
    expect(readFileSync(join(dir, "a.log.1"), "utf8")).toBe("one\ntwo\nthree\n");
    expect(readFileSync(path, "utf8")).toBe("four\n");
  });

  it("writes queued lines when the process exits right after logging", async () => {
    const path = join(tempDir(), "exit.log");
    const script = `
      import { pino } from "pino";
      import { createLogDestination } from "./src/index.ts";
      const logger = pino({ level: "info" }, createLogDestination({ dest: ${JSON.stringify(path)} }));
      for (let i = 0; i < 1000; i++) logger.info({ i }, "line");
      process.exit(0);
    `;
    await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: ROOT,
    });
    const lines = readFileSync(path, "utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(1000);
    expect((JSON.parse(lines[999] as string) as { i: number }).i).toBe(999);
  }, 30_000);

  it("keeps lines a full pipe refuses, drops beyond maxBufferedBytes, and delivers the rest in order", async () => {
    const fifo = join(tempDir(), "pipe");
    await run("mkfifo", [fifo]);
    // Read-write and non-blocking: nobody reads until the test does, so the
    // pipe fills (64 KiB on Linux) and writes fail with EAGAIN.
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const dest = make({ dest: fd, maxBufferedBytes: 128 * 1024 });
      const line = (i: number) => `${String(i).padStart(8, "0")}${"x".repeat(1015)}\n`; // 1 KiB
      let accepted = 0;
      for (let i = 0; i < 400; i++) {
        if (dest.write(line(i))) accepted++;
      }
      // 128 KiB queued before the first write: the rest was dropped at once.
      expect(accepted).toBe(128);
      expect(dest.dropped).toBe(400 - 128);
      dest.flushSync(); // 64 KiB fit in the pipe, the rest waits
      // The 64 KiB left over count against the bound too: 64 more lines fit.
      let late = 0;
      for (let i = 400; i < 470; i++) {
        if (dest.write(line(i))) late++;
      }
      expect(late).toBe(64);
      let got = "";
      const buf = Buffer.alloc(64 * 1024);
      await expect
        .poll(
          () => {
            try {
              const n = readSync(reader, buf, 0, buf.length, null);
              got += buf.toString("utf8", 0, n);
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
            }
            return got.length;
          },
          { timeout: 10_000, interval: 20 },
        )
        .toBe(192 * 1024);
      const gotLines = got.split("\n").filter((l) => l !== "");
      expect(gotLines.map((l) => Number(l.slice(0, 8)))).toEqual([
        ...Array.from({ length: 128 }, (_, i) => i),
        ...Array.from({ length: 64 }, (_, i) => 400 + i),
      ]);
      expect(dest.dropped).toBe(400 - 128 + 6);
    } finally {
      closeSync(reader);
    }
    for (const d of dests.splice(0)) d.end();
    closeSync(fd);
  });

  it("counts and reports lines lost to a write error", () => {
    // A descriptor opened read-only: every write fails with EBADF.
    const path = join(tempDir(), "read-only.log");
    closeSync(openSync(path, "w"));
    const readFd = openSync(path, "r");
    const errors: string[] = [];
    const dest = make({ dest: readFd, onError: (e) => errors.push(e.code ?? "?") });
    dest.write("a\n");
    dest.write("b\n");
    dest.flushSync();
    expect(errors).toEqual(["EBADF"]);
    expect(dest.dropped).toBe(2);
    dest.write("c\n");
    dest.flushSync();
    expect(dest.dropped).toBe(3);
    closeSync(readFd);
  });

  it("rejects bad options when built, naming the value", () => {
    expect(() => createLogDestination({ dest: "" })).toThrow(/dest "" must be a path/);
    expect(() => createLogDestination({ dest: -1 })).toThrow(/fd -1 must be an integer >= 0/);
    expect(() => createLogDestination({ dest: 1, maxBufferedBytes: 0 })).toThrow(
      /maxBufferedBytes 0 must be/,
    );
  });
});
