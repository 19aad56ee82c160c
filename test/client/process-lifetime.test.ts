import { execFile } from "node:child_process";
import { describe, expect, it } from "vitest";

/** runChild runs a TypeScript file with tsx and resolves with its exit code and output. */
function runChild(
  file: string,
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", file, ...args],
      { timeout: 60_000 },
      (error, stdout, stderr) => {
        resolve({
          code: error === null ? 0 : ((error as { code?: number }).code ?? null),
          stdout,
          stderr,
        });
      },
    );
  });
}

describe("a call in flight keeps the process alive until it settles", () => {
  it("a client whose server is down exits with the call's UNAVAILABLE, not exit code 13", async () => {
    const r = await runChild("test/client/fixtures/dead-server-client.ts", ["127.0.0.1:1"]);
    expect(r.stdout).toMatch(/call failed: Unavailable: .*127\.0\.0\.1:1/);
    expect(r.code).toBe(3);
  });

  it("the README's minimal client fails with UNAVAILABLE against a dead server instead of exiting mid-call", async () => {
    const r = await runChild("examples/minimal-client.ts", ["127.0.0.1:1"]);
    // An uncaught rejection (exit 1) naming the call's error; 13 was the
    // unsettled top-level await of a process that ran out of work.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unavailable/i);
  });
});
