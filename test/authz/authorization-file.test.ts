// The watched policy file's reload rules, driven by explicit reload() calls
// (no waiting on fs.watch) and a fake clock for the poll.

import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type AuthorizationFileEvent,
  AuthorizationPolicyFileError,
  createAuthorizationFileSource,
  createAuthorizationInterceptor,
  createMeshServer,
} from "../../src/index.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";
import { waitFor } from "../support/wait-for.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function policyFile(text: string) {
  const dir = mkdtempSync(join(tmpdir(), "mesh-authz-file-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "authz.json");
  const write = (t: string) => {
    writeFileSync(`${path}.tmp`, t);
    renameSync(`${path}.tmp`, path);
  };
  write(text);
  return { path, write };
}

const allowAll = JSON.stringify({ defaultAction: "allow" });
const denyAll = JSON.stringify({ rules: [{ name: "nobody", action: "DENY" }] });
const call = {
  peer: { authenticated: false, uris: [], dnsNames: [] },
  service: "a.B",
  method: "C",
  header: new Headers(),
};

describe("createAuthorizationFileSource", () => {
  it("swaps on a changed file, ignores an unchanged one, reports a bad one once", async () => {
    const f = policyFile(allowAll);
    const events: AuthorizationFileEvent[] = [];
    const clock = createFakeClock();
    const source = createAuthorizationFileSource({
      path: f.path,
      clock,
      onEvent: (e) => events.push(e),
    });
    cleanups.push(() => source.close());
    expect(source.current().decide(call).allowed).toBe(true);
    expect(await source.reload()).toBe(false);

    f.write("{ not json");
    expect(await source.reload()).toBe(false);
    expect(await source.reload()).toBe(false);
    expect(events.map((e) => e.type)).toEqual(["authz-policy-rejected"]);
    const rejected = events[0];
    expect(rejected?.type === "authz-policy-rejected" && rejected.error).toBeInstanceOf(
      AuthorizationPolicyFileError,
    );
    expect(source.current().decide(call).allowed).toBe(true);

    f.write(denyAll);
    expect(await source.reload()).toBe(true);
    expect(source.version).toBe(2);
    expect(source.current().decide(call)).toMatchObject({ allowed: false, rule: "nobody" });

    // The same bad text after a good load is reported again.
    f.write("{ not json");
    expect(await source.reload()).toBe(false);
    expect(events.map((e) => e.type)).toEqual([
      "authz-policy-rejected",
      "authz-policy-loaded",
      "authz-policy-rejected",
    ]);
  });

  it("keeps the policy when the file disappears, and loads it again when it returns", async () => {
    const f = policyFile(denyAll);
    const events: AuthorizationFileEvent[] = [];
    const source = createAuthorizationFileSource({
      path: f.path,
      clock: createFakeClock(),
      onEvent: (e) => events.push(e),
    });
    cleanups.push(() => source.close());
    unlinkSync(f.path);
    expect(await source.reload()).toBe(false);
    expect(events).toHaveLength(1);
    expect(events[0]?.type === "authz-policy-rejected" && events[0].error.message).toMatch(
      /ENOENT/,
    );
    expect(source.current().decide(call).allowed).toBe(false);
    f.write(allowAll);
    expect(await source.reload()).toBe(true);
    expect(source.current().decide(call).allowed).toBe(true);
  });

  it("polls on its clock even without a watch event", async () => {
    const f = policyFile(allowAll);
    const clock = createFakeClock();
    const source = createAuthorizationFileSource({ path: f.path, clock, pollIntervalMs: 500 });
    cleanups.push(() => source.close());
    // Written in place (no rename into the directory): only the poll is sure to see it.
    writeFileSync(f.path, denyAll);
    clock.advance(500);
    await waitFor(() => source.version === 2, 10_000);
    expect(source.current().decide(call).allowed).toBe(false);
    source.close();
    writeFileSync(f.path, allowAll);
    clock.advance(5_000);
    expect(await source.reload()).toBe(false);
    expect(source.version).toBe(2);
  });
});

describe("authorization option validation", () => {
  it("rejects bad interceptor options and bad policies at build time", () => {
    expect(() =>
      createAuthorizationInterceptor({ policy: {}, onDecision: "log" as unknown as () => void }),
    ).toThrow(TypeError);
    expect(() =>
      createMeshServer({
        routes: () => {},
        authorization: { defaultAction: "maybe" as "deny" },
      }),
    ).toThrow(/defaultAction "maybe"/);
    expect(() =>
      createMeshServer({
        routes: () => {},
        authorization: { policy: { rules: [{ name: "x", action: "ALLOW", methods: [] }] } },
      }),
    ).toThrow(/rules\[0\]\.methods \[\]/);
  });
});
