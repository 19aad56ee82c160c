import type { Interceptor, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  buildClientChain,
  CLIENT_INTERCEPTOR_ORDER,
  type ClientChainSlots,
  composeChain,
} from "../../src/chain/client-chain.js";
import {
  buildServerChain,
  SERVER_INTERCEPTOR_ORDER,
  type ServerChainSlots,
} from "../../src/chain/server-chain.js";

/** tagging returns an interceptor that records `name` when a request passes it. */
const tagging =
  (seen: string[], name: string): Interceptor =>
  (next) =>
  (req) => {
    seen.push(name);
    return next(req);
  };

async function run(chain: Interceptor[], seen: string[]): Promise<void> {
  const step = async (_req: UnaryRequest): Promise<UnaryResponse> => {
    seen.push("attempt");
    return {} as UnaryResponse;
  };
  await composeChain(chain, step)({} as UnaryRequest);
}

describe("chains are assembled by walking the order constants", () => {
  it("the client chain runs its slots in CLIENT_INTERCEPTOR_ORDER, ending in the attempt step", async () => {
    const seen: string[] = [];
    // Slots given in reverse order: the constant, not the object, decides.
    const slots: Record<string, Interceptor | Interceptor[]> = {};
    for (const slot of [...CLIENT_INTERCEPTOR_ORDER].reverse()) {
      if (slot === "attempt") continue;
      slots[slot] =
        slot === "user" ? [tagging(seen, "user#1"), tagging(seen, "user#2")] : tagging(seen, slot);
    }
    await run(buildClientChain(slots as ClientChainSlots), seen);
    expect(seen).toEqual(
      CLIENT_INTERCEPTOR_ORDER.flatMap((s) => (s === "user" ? ["user#1", "user#2"] : [s])),
    );
  });

  it("skips absent client slots", async () => {
    const seen: string[] = [];
    await run(buildClientChain({ user: [], breaker: tagging(seen, "breaker") }), seen);
    expect(seen).toEqual(["breaker", "attempt"]);
  });

  it("the server chain runs its slots in SERVER_INTERCEPTOR_ORDER", async () => {
    const seen: string[] = [];
    const slots: Record<string, Interceptor | Interceptor[]> = {};
    for (const slot of [...SERVER_INTERCEPTOR_ORDER].reverse()) {
      slots[slot] = slot === "user" ? [tagging(seen, "user")] : tagging(seen, slot);
    }
    await run(buildServerChain(slots as ServerChainSlots), seen);
    expect(seen).toEqual([...SERVER_INTERCEPTOR_ORDER, "attempt"]);
  });
});
