import { afterEach, describe, expect, it, vi } from "vitest";
import {
  executableProbe,
  REQUIRE_SERVICES_ENV,
  requireService,
  tcpProbe,
} from "../support/services.js";

// requireService gates the etcd suite (and later Redis): check that an absent
// service skips loudly, or fails when MESH_REQUIRE_SERVICES=1.
describe("requireService", () => {
  const saved = process.env[REQUIRE_SERVICES_ENV];
  afterEach(() => {
    vi.restoreAllMocks();
    if (saved === undefined) {
      delete process.env[REQUIRE_SERVICES_ENV];
    } else {
      process.env[REQUIRE_SERVICES_ENV] = saved;
    }
  });

  it("returns true for a present service, silently", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    expect(await requireService("node", executableProbe(process.execPath))).toBe(true);
    expect(warn).not.toHaveBeenCalled();
  });

  it("skips loudly when absent", async () => {
    delete process.env[REQUIRE_SERVICES_ENV];
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    expect(await requireService("nope", executableProbe("/nonexistent/nope"), "install nope")).toBe(
      false,
    );
    expect(warn).toHaveBeenCalledOnce();
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/SKIPPING TESTS: service "nope".*install nope/);
  });

  it("fails when MESH_REQUIRE_SERVICES=1", async () => {
    process.env[REQUIRE_SERVICES_ENV] = "1";
    await expect(
      requireService("nope", () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow(/service "nope" is not available \(boom\).*MESH_REQUIRE_SERVICES=1/);
  });

  it("probes TCP ports", async () => {
    expect(await tcpProbe("127.0.0.1", 1, 500)()).toMatch(/127.0.0.1:1/);
  });
});
