// Issue 14.1: a keyed call whose replica is SIGKILLed mid-handler is retried
// to another replica, which must take the dead owner's claim over within
// about one claim lease (the owner's heartbeat stopped) and answer inside the
// caller's deadline. 3 replica processes share one Redis store behind one
// mesh client (static target, retries on, keys auto); one is killed mid-run.
//
// Executions are counted in Redis by the handler (RPUSH "<replica> <order
// id>" per idempotency-key, after its work, just before it returns). A key
// may show a second execution only when the killed replica ran it and died
// before its outcome was stored: the gap of every store separate from the
// handler's data (the Postgres store closes it; see postgres-crash.test.ts).
// Two executions by replicas that stayed alive would be a premature takeover.

import { afterAll, describe, expect, it } from "vitest";
import { callOutcome, ORDER, ordersClient } from "../idempotency/order-fixture.js";
import { createTestRedis, REDIS_PORT, requireRedis } from "../support/redis.js";
import { type ReplicaProcess, startReplicaProcess } from "./replica-process.js";

const hasRedis = await requireRedis();
const RATE_PER_S = 100;
const CALLS = 500;
const KILL_AFTER_CALLS = 200;
const HANDLER_MS = 40;

describe.skipIf(!hasRedis)("faults: kill -9 of 1 of 3 replicas sharing a Redis store", () => {
  const t = createTestRedis();
  const procs: ReplicaProcess[] = [];
  const transports: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    for (const tr of transports) await tr.close();
    for (const p of procs) await p.kill();
    await t.close();
  });

  it("faults: keyed calls at a steady rate all succeed through a kill -9, none run twice on live replicas", {
    timeout: 180_000,
  }, async () => {
    for (const name of ["r1", "r2", "r3"]) {
      procs.push(
        await startReplicaProcess({
          FAULT_REPLICA: name,
          FAULT_STORE: "redis",
          FAULT_REDIS_PORT: String(REDIS_PORT),
          FAULT_PREFIX: t.keyPrefix,
          FAULT_HANDLER_MS: String(HANDLER_MS),
        }),
      );
    }
    const { client, transport } = ordersClient(
      `static:///${procs.map((p) => p.address).join(",")}`,
      { defaultTimeoutMs: 15_000 },
    );
    transports.push(transport);
    // The victim is the replica that served most so far (the balancer may
    // starve one), so that it dies with calls in flight. On a busy host no
    // call may have finished yet when the kill is due: wait for one first.
    let victim: ReplicaProcess | undefined;
    let killed: Promise<void> | undefined;
    let victimName = "";
    const count = (what: string) =>
      Promise.all(
        ["r1", "r2", "r3"].map(async (n) =>
          Number(await t.redis.get(`${t.keyPrefix}${what}:${n}`)),
        ),
      );
    const killBusiest = async () => {
      await expect
        .poll(async () => Math.max(...(await count("done"))), { timeout: 60_000, interval: 50 })
        .toBeGreaterThan(0);
      const done = await count("done");
      const i = done.indexOf(Math.max(...done));
      victimName = `r${i + 1}`;
      victim = procs[i] as ReplicaProcess;
      await victim.kill();
    };

    const calls: Promise<Awaited<ReturnType<typeof callOutcome>>>[] = [];
    const started = performance.now();
    for (let i = 0; i < CALLS; i++) {
      // Steady pacing against the start, so a slow moment is caught up.
      const due = started + (i * 1_000) / RATE_PER_S;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (i === KILL_AFTER_CALLS) killed = killBusiest();
      calls.push(callOutcome(client.createOrder({ ...ORDER, customerId: `c-${i}` })));
    }
    const outcomes = await Promise.all(calls);
    const troubles = procs.flatMap((p, i) =>
      p.lines.filter((l) => l.startsWith("event ")).map((l) => `r${i + 1} ${l}`),
    );
    await killed;
    expect(victim?.child.signalCode).toBe("SIGKILL");

    const failed = outcomes.filter((o) => !o.ok);
    const delivered = new Set(
      outcomes.flatMap((o) => (o.ok ? [(o.value as { order?: { id: string } }).order?.id] : [])),
    );
    const execKeys = (await t.keys()).filter((k) => k.startsWith(`${t.keyPrefix}exec:`));
    let liveTwice = 0;
    let lostToCrash = 0;
    let victimExecutions = 0;
    const perReplica: Record<string, number> = {};
    for (const k of execKeys) {
      const runs = (await t.redis.lrange(k, 0, -1)).map((v) => v.split(" "));
      for (const [r] of runs) perReplica[r ?? ""] = (perReplica[r ?? ""] ?? 0) + 1;
      const live = runs.filter(([replica]) => replica !== victimName);
      victimExecutions += runs.length - live.length;
      if (live.length > 1) liveTwice++;
      // The victim's run whose outcome never reached the store or the caller.
      lostToCrash += runs.filter(([r, id]) => r === victimName && !delivered.has(id)).length;
    }
    console.log(
      `kill -9 of 1 of 3 replicas: ${CALLS} keyed calls, ${failed.length} failed, ` +
        `${execKeys.length} keys executed, victim ${victimName} ran ${victimExecutions}, ` +
        `${liveTwice} keys twice on live replicas, ${lostToCrash} victim runs lost to the crash; runs per replica ${JSON.stringify(perReplica)}; events ${JSON.stringify(troubles.slice(0, 5))} (${troubles.length})`,
    );
    expect(failed.map((o) => !o.ok && `${o.error.code} ${o.error.message}`)).toEqual([]);
    // Every call's key executed; every delivered order is one execution.
    expect(execKeys.length).toBe(CALLS);
    expect(delivered.size).toBe(CALLS);
    expect(victimExecutions).toBeGreaterThan(0);
    expect(liveTwice).toBe(0);
    // Runs lost to the crash (the victim did the work and died before its
    // outcome was stored) are reported, not bounded: their number is the
    // victim's event-loop lag at the kill, the gap a store separate from the
    // handler's data cannot close (measured 0-2 here; Postgres closes it).
    expect(lostToCrash).toBeLessThanOrEqual(victimExecutions);
  });
});
