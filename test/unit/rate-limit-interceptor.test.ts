import {
  Code,
  ConnectError,
  createContextValues,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ANONYMOUS_PEER, peerIdentityKey } from "../../src/call/peer-identity.js";
import { createMemoryRateLimitStore } from "../../src/limit/memory-rate-limit-store.js";
import { createRateLimit } from "../../src/limit/rate-limit.js";
import { RateLimitStoreError } from "../../src/limit/rate-limit-store.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";

// The interceptor on its own, with hand-made requests: the default principal
// comes from the peer identity the server records before any interceptor.
function request(spiffeId?: string): UnaryRequest {
  const contextValues = createContextValues();
  if (spiffeId !== undefined) {
    contextValues.set(peerIdentityKey, { ...ANONYMOUS_PEER, authenticated: true, spiffeId });
  }
  return {
    stream: false,
    service: { typeName: "pkg.Svc" },
    method: { name: "Do" },
    header: new Headers(),
    contextValues,
  } as unknown as UnaryRequest;
}

const ok = async () => ({}) as UnaryResponse;

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return Code[ConnectError.from(e).code] ?? "?";
  }
}

describe("rate limit interceptor", () => {
  it("keys per-principal buckets by the peer's SPIFFE ID by default", async () => {
    const clock = createFakeClock();
    const limit = createRateLimit({
      limits: { ratePerSecond: 1, burst: 1, per: "principal" },
      store: createMemoryRateLimitStore({ clock }),
    });
    const call = limit.interceptor(ok);
    const a = "spiffe://t/ns/default/sa/a";
    const b = "spiffe://t/ns/default/sa/b";
    expect(await outcome(call(request(a)))).toBe("ok");
    expect(await outcome(call(request(a)))).toBe("ResourceExhausted");
    expect(await outcome(call(request(b)))).toBe("ok");
    expect(await outcome(call(request()))).toBe("ok");
    expect(await outcome(call(request()))).toBe("ResourceExhausted");
    clock.advance(1_000);
    expect(await outcome(call(request(a)))).toBe("ok");
    expect(limit.stats()).toEqual({ admitted: 4, refused: 2, storeErrors: 0 });
  });

  it("applies the fail mode when the store throws or rejects", async () => {
    const failing = {
      take: () => Promise.reject(new RateLimitStoreError("down")),
    };
    const open = createRateLimit({ limits: { ratePerSecond: 1 }, store: failing });
    expect(await outcome(open.interceptor(ok)(request()))).toBe("ok");
    expect(open.stats()).toEqual({ admitted: 1, refused: 0, storeErrors: 1 });
    const throwing = {
      take: () => {
        throw new RateLimitStoreError("sync");
      },
    };
    const closed = createRateLimit({
      limits: { ratePerSecond: 1 },
      store: throwing,
      failMode: "closed",
    });
    expect(await outcome(closed.interceptor(ok)(request()))).toBe("Unavailable");
    expect(closed.stats()).toEqual({ admitted: 0, refused: 1, storeErrors: 1 });
  });

  it("memory store keeps at most maxKeys buckets, dropping the least recently used", () => {
    const clock = createFakeClock();
    const store = createMemoryRateLimitStore({ maxKeys: 2, clock });
    const limit = { ratePerSecond: 1, burst: 1 };
    expect(store.take("a", limit, 1).allowed).toBe(true);
    expect(store.take("b", limit, 1).allowed).toBe(true);
    // Touch a: b is now the least recently used.
    expect(store.take("a", limit, 1).allowed).toBe(false);
    expect(store.take("c", limit, 1).allowed).toBe(true);
    expect(store.size).toBe(2);
    // b was dropped and comes back full (dropping a); c is still empty.
    expect(store.take("b", limit, 1).allowed).toBe(true);
    expect(store.take("c", limit, 1).allowed).toBe(false);
    expect(() => createMemoryRateLimitStore({ maxKeys: 0 })).toThrow(/maxKeys 0 must be/);
  });
});
