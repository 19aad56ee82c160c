// The mesh server's connection flow-control window: a client may have more
// than HTTP/2's default 64 KiB of requests in flight without waiting for the
// server, and every multi-KiB message still crosses intact (real sockets).
import type * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { EchoRequestSchema, EchoResponseSchema, EchoService } from "../../gen/test/v1/echo_pb.js";
import { createMeshServer, type MeshServer } from "../../src/index.js";
import { connect, frame, messages, rawRequest } from "./server-raw-h2.js";

const ECHO = "/test.v1.EchoService/Echo";

function payloadOf(size: number, seed: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (i * 31 + seed) & 0xff;
  return p;
}

/** remoteWindow is the connection window the server granted, once everything it sent so far arrived. */
async function remoteWindow(session: http2.ClientHttp2Session): Promise<number | undefined> {
  // The server's WINDOW_UPDATE precedes its answer to this PING.
  await new Promise<void>((resolve, reject) => {
    session.ping((e) => (e === null ? resolve() : reject(e)));
  });
  return session.state.remoteWindowSize;
}

describe("mesh server connection window", () => {
  let server: MeshServer | undefined;
  let session: http2.ClientHttp2Session | undefined;
  afterEach(async () => {
    session?.close();
    await server?.close({ graceMs: 0 });
    server = undefined;
    session = undefined;
  });

  async function start(http2Options?: { connectionWindowSize?: number }): Promise<string> {
    server = createMeshServer({
      routes: (r) => r.service(EchoService, { echo: (req) => ({ payload: req.payload }) }),
      logger: false,
      ...(http2Options === undefined ? {} : { http2: http2Options }),
    });
    return (await server.listen()).url;
  }

  it("grants 1 MiB by default when a client connects", async () => {
    session = await connect(await start());
    expect(await remoteWindow(session)).toBe(1024 * 1024);
  });

  it("keeps HTTP/2's 65,535 bytes when configured so", async () => {
    session = await connect(await start({ connectionWindowSize: 65_535 }));
    expect(await remoteWindow(session)).toBe(65_535);
  });

  it("rejects a window outside HTTP/2's range", () => {
    expect(() =>
      createMeshServer({ routes: () => {}, http2: { connectionWindowSize: 1000 } }),
    ).toThrow(RangeError);
    expect(() =>
      createMeshServer({ routes: () => {}, http2: { connectionWindowSize: 2 ** 31 } }),
    ).toThrow(RangeError);
  });

  it("echoes 64 concurrent multi-KiB messages intact, over more than the default window", async () => {
    session = await connect(await start());
    const s = session;
    // 4 KiB and 20 KiB (more than one 16 KiB DATA frame), 64 in flight: ~770 KiB.
    const sizes = Array.from({ length: 64 }, (_, i) => (i % 2 === 0 ? 4096 : 20 * 1024 + i));
    const replies = await Promise.all(
      sizes.map((size, i) =>
        rawRequest(
          s,
          ECHO,
          frame(
            toBinary(EchoRequestSchema, create(EchoRequestSchema, { payload: payloadOf(size, i) })),
          ),
        ),
      ),
    );
    replies.forEach((r, i) => {
      expect(r.status).toBe(0);
      const out = messages(r.body);
      expect(out).toHaveLength(1);
      const res = fromBinary(EchoResponseSchema, (out[0] as { data: Buffer }).data);
      expect(Buffer.from(res.payload).equals(Buffer.from(payloadOf(sizes[i] as number, i)))).toBe(
        true,
      );
    });
  });
});
