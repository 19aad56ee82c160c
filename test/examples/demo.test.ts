import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);

describe("examples", () => {
  it("the npm start demo makes its calls and exits 0", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", "examples/demo.ts"], {
      timeout: 30_000,
    });
    expect(stdout).toContain("CreateOrder →");
    expect(stdout).toContain("GetOrder(no-such-order) → NotFound");
    expect(stdout).toContain("WatchOrders saw 6 changes");
    expect(stdout).toContain("demo: OK");
  });
});
