import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AdminStatsView,
  type RunningAdmin,
  serveAdmin,
  type TappedCall,
} from "../../src/index.js";
import { callMany, failReplica, type MeshScenario, startMeshScenario } from "./mesh-scenario.js";

const SECRET_TOKEN = "Bearer s3cret-admin-token-41";
const SECRET_KEY = "idem-key-never-shown-7731";
const SECRET_COOKIE = "session=c00kie-value-99";

interface State {
  readonly transports: readonly Record<string, unknown>[];
  readonly servers: readonly Record<string, unknown>[];
  readonly stats: AdminStatsView;
}

let s: MeshScenario;
let admin: RunningAdmin;
// Every body the admin server sent, to check no secret ever left it.
const bodies: string[] = [];

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(path, admin.url), { headers });
  const text = await res.text();
  bodies.push(text);
  return { status: res.status, type: res.headers.get("content-type") ?? "", text, res };
}
async function json<T>(path: string): Promise<T> {
  const r = await get(path);
  expect(r.status, r.text).toBe(200);
  expect(r.type).toContain("application/json");
  return JSON.parse(r.text) as T;
}
const state = () => json<State>("/api/state");

/** readEvents reads an SSE stream until `done` says it has seen enough. */
async function readEvents(
  done: (events: { event: string; data: unknown }[]) => boolean,
): Promise<{ event: string; data: unknown }[]> {
  const ac = new AbortController();
  const res = await fetch(new URL("/api/events", admin.url), { signal: ac.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const events: { event: string; data: unknown }[] = [];
  try {
    while (!done(events)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        bodies.push(block);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined) {
          events.push({ event, data: JSON.parse(data) });
        }
        end = buffer.indexOf("\n\n");
      }
    }
  } finally {
    ac.abort();
  }
  return events;
}

beforeAll(async () => {
  s = await startMeshScenario();
  admin = await serveAdmin({
    transports: [s.transport],
    servers: s.servers,
    metrics: s.metrics,
    intervalMs: 100,
  });
});
afterAll(async () => {
  await admin?.close();
  await s?.close();
});

describe("admin server: JSON, metrics, health", () => {
  it("binds loopback on a free port and answers /healthz", async () => {
    expect(admin.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const r = await get("/healthz");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ status: "ok" });
  });

  it("lists the transports and servers it was given", async () => {
    const transports = await json<Record<string, unknown>[]>("/api/transports");
    expect(transports).toHaveLength(1);
    expect(transports[0]).toMatchObject({ target: s.transport.target });
    const servers = await json<Record<string, unknown>[]>("/api/servers");
    expect(servers.map((x) => x.address)).toEqual(s.addresses);
  });

  it("counts calls per method, and the tap shows them with redacted headers", async () => {
    await callMany(s, 6, {
      authorization: SECRET_TOKEN,
      "idempotency-key": SECRET_KEY,
      cookie: SECRET_COOKIE,
      "x-tenant": "acme",
    });
    await expect
      .poll(async () => (await state()).stats.methods.find((m) => m.side === "client")?.calls, {
        timeout: 10_000,
      })
      .toBeGreaterThanOrEqual(6);
    const st = await state();
    const client = st.stats.methods.find((m) => m.side === "client");
    expect(client).toMatchObject({ method: "test.v1.EchoService/Echo", failures: 0 });
    expect(client?.successPercent).toBe(100);
    expect(client?.p50Ms).toBeGreaterThan(0);
    expect(client?.p99Ms).toBeGreaterThanOrEqual(client?.p50Ms ?? 0);
    // Each replica served some: round robin over 3.
    const served = st.stats.methods.find((m) => m.side === "server");
    expect(served?.calls).toBeGreaterThanOrEqual(6);
    const shares = st.stats.history.flatMap((p) => Object.keys(p.endpoints));
    expect(new Set(shares)).toEqual(new Set(s.addresses));

    const tap = await json<TappedCall[]>("/api/tap");
    const mine = tap.filter((c) => c.side === "client" && c.header["x-tenant"] === "acme");
    expect(mine.length).toBeGreaterThanOrEqual(6);
    for (const c of mine) {
      expect(c).toMatchObject({ method: "test.v1.EchoService/Echo", code: "OK" });
      expect(c.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(s.addresses).toContain(c.endpoint);
      expect(c.header.authorization).toBe("[REDACTED]");
      expect(c.header.cookie).toBe("[REDACTED]");
      expect(c.header["idempotency-key"]).toMatch(/^sha256:[0-9a-f]{12}$/);
    }
    // The server side of the same calls: same trace, redacted the same way.
    const served1 = tap.filter((c) => c.side === "server" && c.header["x-tenant"] === "acme");
    expect(served1.length).toBeGreaterThanOrEqual(6);
    expect(new Set(served1.map((c) => c.traceId))).toEqual(new Set(mine.map((c) => c.traceId)));
    for (const c of served1) {
      expect(c.header.authorization).toBe("[REDACTED]");
      expect(c.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    }
  });

  it("shows a failing replica ejected, then the method's breaker open", async () => {
    failReplica(s, 2);
    const bad = s.addresses[2];
    await expect
      .poll(
        async () => {
          await callMany(s, 3);
          return (await state()).stats.ejections.map((e) => e.address);
        },
        { timeout: 20_000, interval: 50 },
      )
      .toContain(bad);
    let st = await state();
    expect(st.stats.timeline).toContainEqual(
      expect.objectContaining({ kind: "ejected", subject: bad }),
    );

    // Now every call fails: the breaker of Echo opens.
    await expect
      .poll(
        async () => {
          await callMany(s, 4, {}, 14);
          return (await state()).stats.breakers.map((b) => b.state);
        },
        { timeout: 20_000, interval: 50 },
      )
      .toContain("open");
    st = await state();
    expect(st.stats.breakers).toContainEqual(
      expect.objectContaining({ key: expect.stringContaining("Echo"), state: "open" }),
    );
    expect(st.stats.timeline).toContainEqual(
      expect.objectContaining({ kind: "breaker", detail: expect.stringContaining("→ open") }),
    );
    const client = st.stats.methods.find((m) => m.side === "client");
    expect(client?.failures).toBeGreaterThan(0);
    expect(client?.successPercent).toBeLessThan(100);
  });

  it("serves the Prometheus metrics it was given on /metrics", async () => {
    const r = await get("/metrics");
    expect(r.status).toBe(200);
    expect(r.text).toContain("grpc_client_handled_total");
    expect(r.text).toContain("mesh_outlier_ejections_total");
  });

  it("serves the dashboard page with no external resource", async () => {
    const r = await get("/");
    expect(r.status).toBe(200);
    expect(r.type).toContain("text/html");
    expect(r.res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(r.text).toContain("<title>connect-mesh admin</title>");
    expect(r.text).toContain("api/events");
    expect(r.text).not.toMatch(/(src|href)=["']?https?:/);
  });

  it("rejects unknown paths, other methods and foreign Host headers", async () => {
    expect((await get("/nope")).status).toBe(404);
    const post = await fetch(new URL("/api/state", admin.url), { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    // fetch cannot set Host: a raw request stands for a DNS-rebinding page.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const u = new URL(admin.url);
      request(
        {
          host: u.hostname,
          port: u.port,
          path: "/api/state",
          headers: { host: "evil.example:80" },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      )
        .on("error", reject)
        .end();
    });
    expect(status).toBe(403);
    expect((await get("/healthz", {})).status).toBe(200);
  });
});

describe("admin server: the event stream carries calls made while it is open", () => {
  it("pushes a call made after the stream opened, redacted", async () => {
    const reading = readEvents(
      (ev) =>
        ev.filter((e) => e.event === "state").length >= 2 &&
        ev.some(
          (e) =>
            e.event === "calls" &&
            (e.data as TappedCall[]).some((c) => c.header["x-mark"] === "sse-live"),
        ),
    );
    // Calls keep coming until the stream has carried one.
    let stop = false;
    const driving = (async () => {
      while (!stop) {
        await callMany(s, 1, {
          "x-mark": "sse-live",
          authorization: SECRET_TOKEN,
          "idempotency-key": SECRET_KEY,
        });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const events = await reading.finally(() => {
      stop = true;
    });
    await driving;
    const state0 = events.find((e) => e.event === "state")?.data as State | undefined;
    expect(state0?.stats.methods.length).toBeGreaterThan(0);
    const live = events
      .filter((e) => e.event === "calls")
      .flatMap((e) => e.data as TappedCall[])
      .filter((c) => c.header["x-mark"] === "sse-live");
    expect(live.length).toBeGreaterThan(0);
    expect(live[0]?.header.authorization).toBe("[REDACTED]");
  }, 30_000);

  it("never sent an authorization header, cookie or idempotency key in clear", () => {
    const all = bodies.join("\n");
    expect(all.length).toBeGreaterThan(1000);
    expect(all).toContain("[REDACTED]");
    for (const secret of [SECRET_TOKEN, "s3cret-admin-token-41", SECRET_KEY, "c00kie-value-99"]) {
      expect(all).not.toContain(secret);
    }
  });
});

describe("serveAdmin options", () => {
  it.each([
    [{ port: -1 }, RangeError, "port -1"],
    [{ port: 1.5 }, RangeError, "port 1.5"],
    [{ host: "" }, TypeError, 'host ""'],
    [{ intervalMs: 10 }, RangeError, "intervalMs 10"],
    [{ transports: [{}] as never }, TypeError, "transports[0]"],
    [{ servers: "x" as never }, TypeError, "servers must be an array"],
    [{ tapSize: 0 }, RangeError, "tapSize 0"],
    [{ windowMs: 10 }, RangeError, "windowMs 10"],
  ])("rejects %j", async (options, type, message) => {
    const p = serveAdmin(options);
    await expect(p).rejects.toThrow(type);
    await expect(p).rejects.toThrow(message);
  });

  it("stops listening and detaches from the transports on close", async () => {
    const other = await serveAdmin({ transports: [s.transport] });
    await callMany(s, 1);
    await other.close();
    await other.close();
    await expect(fetch(new URL("/healthz", other.url))).rejects.toThrow();
  });
});
