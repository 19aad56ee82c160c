// The mesh client's connection flow-control window: a server may have more
// than HTTP/2's default 64 KiB of responses in flight to it without waiting
// for WINDOW_UPDATEs, and multi-KiB responses still arrive intact (real
// sockets, a bare node:http2 peer).
import type * as http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { EchoService } from "../../gen/test/v1/echo_pb.js";
import { CLIENT_CONNECTION_WINDOW } from "../../src/grpc/connection-window.js";
import { createMeshTransport } from "../../src/index.js";
import { echoUnary, type RawH2Server, startRawH2Server } from "./raw-h2-server.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("mesh client connection window", () => {
  it("grants its server 1 MiB when it connects, and 64 concurrent 20 KiB answers arrive intact", async () => {
    let session: http2.ServerHttp2Session | undefined;
    const peer: RawH2Server = await startRawH2Server((stream, _h, s) => {
      session = s;
      void echoUnary(stream);
    });
    cleanups.push(() => peer.close());
    const mesh = createMeshTransport({ target: peer.address, logger: false });
    cleanups.push(() => mesh.close());
    const client = createClient(EchoService, mesh);
    await client.echo({ payload: new Uint8Array([1]) });
    // The client's WINDOW_UPDATE went out before its first request's HEADERS.
    const granted = session?.state.remoteWindowSize ?? 0;
    expect(CLIENT_CONNECTION_WINDOW).toBe(1024 * 1024);
    expect(granted).toBeGreaterThan(CLIENT_CONNECTION_WINDOW - 1024);
    // ~1.3 MiB of answers in flight: more than both the default window and this one.
    const payloads = Array.from({ length: 64 }, (_, i) =>
      Uint8Array.from({ length: 20 * 1024 + i }, (_, j) => (j * 31 + i) & 0xff),
    );
    const replies = await Promise.all(payloads.map((payload) => client.echo({ payload })));
    replies.forEach((r, i) => {
      expect(Buffer.from(r.payload).equals(Buffer.from(payloads[i] as Uint8Array))).toBe(true);
    });
  });
});
