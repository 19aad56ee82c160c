import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { OrderService } from "../../gen/example/orders/v1/orders_pb.js";
import { createEventEmitter } from "../../src/call/event-emitter.js";
import { createMeshTransport, type MeshTransport } from "../../src/index.js";

describe("createEventEmitter", () => {
  it("calls every listener in order, skipping absent ones, past one that throws", () => {
    const seen: string[] = [];
    const emit = createEventEmitter<string>(
      (e) => seen.push(`a ${e}`),
      undefined,
      () => {
        throw new Error("listener bug");
      },
      (e) => seen.push(`c ${e}`),
    );
    expect(() => emit("x")).not.toThrow();
    expect(seen).toEqual(["a x", "c x"]);
  });
});

describe("a throwing onEvent listener", () => {
  let transport: MeshTransport | undefined;
  afterEach(() => transport?.close());

  it("does not replace the call's error, and retries still run", async () => {
    const types: string[] = [];
    transport = createMeshTransport({
      target: "127.0.0.1:1",
      logger: false,
      retry: { initialBackoffMs: 1, maxBackoffMs: 2 },
      onEvent: (e) => {
        types.push(e.type);
        throw new Error("listener bug");
      },
    });
    const error = await createClient(OrderService, transport)
      .getOrder({ id: "x" }, { timeoutMs: 5_000 })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).not.toContain("listener bug");
    // Every retry and the give-up were still reported: the listener kept being called.
    expect(types.filter((t) => t === "retry")).toHaveLength(2);
    expect(types.filter((t) => t === "give-up")).toHaveLength(1);
  });
});
