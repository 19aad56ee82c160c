// The authorization policy in a real mesh server over h2c (peers without
// identity here; test/authz/authz-mtls.test.ts covers certificates): codes
// and messages naming the rule, the decision on the call's log line, a denied
// keyed call that claims no idempotency key, atomic swaps under load, and a
// watched policy file that keeps the old policy when the new one is bad.

import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { formatRecordKey } from "../../src/idempotency/store.js";
import {
  type AuthorizationDecisionEvent,
  type AuthorizationFileEvent,
  type AuthorizationPolicyOptions,
  createAuthorizationFileSource,
  createAuthorizationHolder,
  createMemoryIdempotencyStore,
  createMeshServer,
  createMeshTransport,
  type MeshServerOptions,
} from "../../src/index.js";
import {
  callOutcome,
  countingOrderService,
  createOrderStats,
  keyed,
  ORDER,
  OrderService,
} from "../idempotency/order-fixture.js";
import { captureLogs } from "../observability/log-capture.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";

const ECHO = "test.v1.EchoService";

const POLICY: AuthorizationPolicyOptions = {
  rules: [
    { name: "deny-blocked", action: "DENY", headers: [{ name: "x-blocked", present: true }] },
    {
      name: "echo-readers",
      action: "ALLOW",
      methods: [`${ECHO}/Echo`],
      headers: [{ name: "x-role", exact: "reader" }],
    },
    { name: "streams-identified", action: "ALLOW", principals: ["*"], methods: [`${ECHO}/*`] },
  ],
};

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(options: Omit<MeshServerOptions, "routes">, onUrl?: (url: string) => void) {
  const server = createMeshServer({
    logger: false,
    ...options,
    routes: (r) => r.service(EchoService, createEchoImpl()),
  });
  const bound = await server.listen();
  onUrl?.(bound.url);
  const transport = createMeshTransport({ target: bound.address, retry: false });
  cleanups.push(async () => {
    await transport.close();
    await server.close({ graceMs: 0 });
  });
  return createClient(EchoService, transport);
}

const reader = { headers: { "x-role": "reader" } };
const SWAPS = 25;

describe("authorization in the mesh server", () => {
  it("allows, denies naming the rule, and answers UNAUTHENTICATED when an identity is wanted", async () => {
    const events: AuthorizationDecisionEvent[] = [];
    const client = await start({
      authorization: { policy: POLICY, onDecision: (e) => events.push(e) },
    });

    const ok = await client.echo({ payload: new Uint8Array([1]) }, reader);
    expect([...ok.payload]).toEqual([1]);

    const blocked = await callOutcome(
      client.echo({}, { headers: { "x-role": "reader", "x-blocked": "1" } }),
    );
    expect(blocked.ok).toBe(false);
    if (!blocked.ok) {
      expect(blocked.error.code).toBe(Code.PermissionDenied);
      expect(blocked.error.rawMessage).toContain('denied by rule "deny-blocked"');
      expect(blocked.error.rawMessage).toContain(`${ECHO}/Echo`);
    }

    const noRole = await callOutcome(client.echo({}));
    expect(noRole.ok ? undefined : noRole.error.code).toBe(Code.Unauthenticated);
    if (!noRole.ok) expect(noRole.error.rawMessage).toContain('"streams-identified"');

    // A stream is decided before its first message is read.
    const stream = callOutcome(
      (async () => {
        for await (const _ of client.echoServerStream({ repeat: 2 })) {
          // drain
        }
      })(),
    );
    const s = await stream;
    expect(s.ok ? undefined : s.error.code).toBe(Code.Unauthenticated);

    expect(events.map((e) => [e.type, e.rule, e.code])).toEqual([
      ["authz-allowed", "echo-readers", undefined],
      ["authz-denied", "deny-blocked", Code.PermissionDenied],
      ["authz-denied", undefined, Code.Unauthenticated],
      ["authz-denied", undefined, Code.Unauthenticated],
    ]);
    expect(events[0]).toMatchObject({ service: ECHO, method: "Echo", principal: undefined });
  });

  it("writes the decision and the rule on the call's finished line", async () => {
    const logs = captureLogs("info");
    const client = await start({ authorization: POLICY, logger: logs.logger });
    await client.echo({}, reader);
    await callOutcome(client.echo({}, { headers: { "x-blocked": "yes" } }));
    await callOutcome(client.echo({}));
    await expect.poll(() => logs.finished("server").length).toBe(3);
    const lines = logs.finished("server");
    expect(lines.map((l) => [l["grpc.code"], l["authz.decision"], l["authz.rule"]])).toEqual([
      ["OK", "allow", "echo-readers"],
      ["PermissionDenied", "deny", "deny-blocked"],
      ["Unauthenticated", "deny", undefined],
    ]);
    expect(lines[1]?.["grpc.error"]).toContain('"deny-blocked"');
  });

  it("decides the Connect and gRPC-Web protocols (served by connect-node) the same way", async () => {
    let url = "";
    await start(
      {
        // A throwing listener changes no decision.
        authorization: {
          policy: POLICY,
          onDecision: () => {
            throw new Error("listener failed");
          },
        },
      },
      (u) => {
        url = u;
      },
    );
    for (const transport of [
      createConnectTransport({ baseUrl: url, httpVersion: "2" }),
      createGrpcWebTransport({ baseUrl: url, httpVersion: "2" }),
    ]) {
      const client = createClient(EchoService, transport);
      expect((await callOutcome(client.echo({}, reader))).ok).toBe(true);
      const denied = await callOutcome(client.echo({}, { headers: { "x-blocked": "1" } }));
      expect(denied.ok ? undefined : denied.error.code).toBe(Code.PermissionDenied);
      expect(denied.ok ? "" : denied.error.rawMessage).toContain('"deny-blocked"');
      const anonymous = await callOutcome(client.echo({}));
      expect(anonymous.ok ? undefined : anonymous.error.code).toBe(Code.Unauthenticated);
    }
  });

  it("rejects a bad policy when the server is built, naming the field", () => {
    expect(() =>
      createMeshServer({
        routes: (r) => r.service(EchoService, createEchoImpl()),
        authorization: {
          rules: [{ name: "r", action: "ALLOW", methods: ["test.v1.EchoService"] }],
        },
      }),
    ).toThrow(/rules\[0\]\.methods\[0\] "test\.v1\.EchoService"/);
  });

  it("a denied keyed call claims no idempotency key and never reaches the handler", async () => {
    const store = createMemoryIdempotencyStore();
    const stats = createOrderStats();
    const method = `${OrderService.typeName}/CreateOrder`;
    const holder = createAuthorizationHolder({
      rules: [{ name: "no-orders", action: "DENY", methods: [method] }],
      defaultAction: "allow",
    });
    const server = createMeshServer({
      logger: false,
      authorization: holder,
      idempotency: { store },
      routes: (r) => r.service(OrderService, countingOrderService("r1", stats)),
    });
    const bound = await server.listen();
    const transport = createMeshTransport({ target: bound.address, retry: false });
    cleanups.push(async () => {
      await transport.close();
      await server.close({ graceMs: 0 });
    });
    const client = createClient(OrderService, transport);

    const denied = await callOutcome(client.createOrder(ORDER, keyed("key-denied").options));
    expect(denied.ok ? undefined : denied.error.code).toBe(Code.PermissionDenied);
    expect(stats.executions).toBe(0);
    expect(await store.get(formatRecordKey("anonymous", method, "key-denied"))).toBeUndefined();
    expect(store.stats()).toMatchObject({ completed: 0, inProgress: 0 });

    // The same key once allowed is claimed and stored: the check above can fail.
    holder.set({ defaultAction: "allow" });
    const allowed = await callOutcome(client.createOrder(ORDER, keyed("key-denied").options));
    expect(allowed.ok).toBe(true);
    expect(stats.executions).toBe(1);
    expect(await store.get(formatRecordKey("anonymous", method, "key-denied"))).toMatchObject({
      state: "completed",
    });
  });

  it("swaps the policy under load without failing an allowed call or letting a denied one in", async () => {
    // Every variant allows readers and denies x-blocked; they differ elsewhere
    // (rule order, extra rules, the default), so each swap really replaces the policy.
    const variants: AuthorizationPolicyOptions[] = [
      POLICY,
      { rules: [...(POLICY.rules ?? [])].reverse() },
      {
        defaultAction: "allow",
        rules: [
          { name: "deny-blocked-v2", action: "DENY", headers: [{ name: "x-blocked", prefix: "" }] },
        ],
      },
      {
        rules: [
          ...(POLICY.rules ?? []),
          { name: "extra", action: "ALLOW", methods: ["other.v1.Svc/*"] },
        ],
      },
    ];
    const holder = createAuthorizationHolder(variants[0] as AuthorizationPolicyOptions);
    const client = await start({ authorization: holder });
    let stop = false;
    const counts = { allowedOk: 0, allowedFailed: 0, deniedOk: 0, denied: 0 };
    const failures: unknown[] = [];
    const worker = async () => {
      while (!stop) {
        const a = await callOutcome(client.echo({}, reader));
        if (a.ok) counts.allowedOk++;
        else {
          counts.allowedFailed++;
          failures.push(a.error);
        }
        const d = await callOutcome(
          client.echo({}, { headers: { "x-role": "reader", "x-blocked": "1" } }),
        );
        if (d.ok) counts.deniedOk++;
        else if (d.error.code === Code.PermissionDenied) counts.denied++;
        else failures.push(d.error);
      }
    };
    const workers = Array.from({ length: 16 }, worker);
    let swaps = 0;
    for (let i = 1; i <= SWAPS; i++) {
      // Let some calls through under each policy before the next swap.
      const before = counts.allowedOk;
      await expect.poll(() => counts.allowedOk, { timeout: 15_000 }).toBeGreaterThan(before + 4);
      holder.set(variants[i % variants.length] as AuthorizationPolicyOptions);
      swaps++;
    }
    stop = true;
    await Promise.all(workers);
    expect(swaps).toBe(SWAPS);
    expect(holder.version).toBe(SWAPS + 1);
    expect(failures).toEqual([]);
    expect(counts.allowedFailed).toBe(0);
    expect(counts.deniedOk).toBe(0);
    expect(counts.allowedOk).toBeGreaterThan(SWAPS * 5);
    expect(counts.denied).toBeGreaterThan(SWAPS * 4);
  }, 90_000);
});

describe("a watched policy file", () => {
  const writeAtomically = (path: string, text: string) => {
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
  };

  it("applies a new file, and keeps the old policy (logging an error) when the new one is bad", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mesh-authz-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "policy.json");
    writeAtomically(path, JSON.stringify(POLICY));
    const logs = captureLogs("info");
    const events: AuthorizationFileEvent[] = [];
    const source = createAuthorizationFileSource({
      path,
      logger: logs.logger,
      onEvent: (e) => events.push(e),
      // The poll is the fallback; the watch should see the renames first.
      pollIntervalMs: 200,
    });
    cleanups.push(() => source.close());
    const client = await start({ authorization: source });
    expect((await callOutcome(client.echo({}, reader))).ok).toBe(true);

    // Half a file, then a file that parses but names an unknown field: both rejected.
    writeAtomically(path, JSON.stringify(POLICY).slice(0, 40));
    await expect.poll(() => events.length, { timeout: 10_000 }).toBe(1);
    writeAtomically(path, JSON.stringify({ ...POLICY, defaultActoin: "allow" }));
    await expect.poll(() => events.length, { timeout: 10_000 }).toBe(2);
    expect(events.map((e) => e.type)).toEqual(["authz-policy-rejected", "authz-policy-rejected"]);
    expect(events[1]?.type === "authz-policy-rejected" && events[1].error.message).toContain(
      'unknown field "defaultActoin"',
    );
    expect(source.version).toBe(1);
    expect((await callOutcome(client.echo({}, reader))).ok).toBe(true);
    const errors = logs.lines().filter((l) => l.level === 50);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatchObject({ event: "authz.policy-rejected", path, version: 1 });

    // A good file takes effect: now readers are denied too.
    writeAtomically(
      path,
      JSON.stringify({ rules: [{ name: "nobody", action: "DENY", methods: ["*"] }] }),
    );
    await expect.poll(() => source.version, { timeout: 10_000 }).toBe(2);
    const after = await callOutcome(client.echo({}, reader));
    expect(after.ok ? undefined : after.error.rawMessage).toContain('"nobody"');
    expect(events.at(-1)).toMatchObject({ type: "authz-policy-loaded", version: 2, rules: 1 });
  });

  it("refuses to start from a missing or bad file", () => {
    const dir = mkdtempSync(join(tmpdir(), "mesh-authz-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "policy.json");
    expect(() => createAuthorizationFileSource({ path })).toThrow(/policy\.json.*ENOENT/);
    writeFileSync(path, JSON.stringify({ rules: [{ name: "x", action: "PERMIT" }] }));
    expect(() => createAuthorizationFileSource({ path })).toThrow(/rules\[0\]\.action "PERMIT"/);
    expect(() => createAuthorizationFileSource({ path, pollIntervalMs: 1 })).toThrow(RangeError);
  });
});
