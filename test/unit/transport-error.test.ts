import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { wasNotSent } from "../../src/call/not-sent.js";
import {
  ConnectionLostError,
  classifyTransportError,
  isEndpointLocalFailure,
} from "../../src/call/transport-error.js";

const ADDRESS = "10.0.0.7:50051";
const errno = (code: string, message = code) => Object.assign(new Error(message), { code });
const connect = (message: string, code: Code, cause?: unknown) =>
  new ConnectError(message, code, undefined, undefined, cause);

describe('wasNotSent (the "not sent" rule)', () => {
  const table: [string, unknown, boolean][] = [
    ["a refused connection", connect("x", Code.Unavailable, errno("ECONNREFUSED")), true],
    ["an unreachable host", connect("x", Code.Unavailable, errno("EHOSTUNREACH")), true],
    ["an unreachable network", connect("x", Code.Unavailable, errno("ENETUNREACH")), true],
    ["a name that does not resolve", connect("x", Code.Unavailable, errno("ENOTFOUND")), true],
    ["a DNS lookup to try again", connect("x", Code.Unavailable, errno("EAI_AGAIN")), true],
    ["a GOAWAY'd session", connect("x", Code.Unavailable, errno("ERR_HTTP2_GOAWAY_SESSION")), true],
    ["an invalid session", errno("ERR_HTTP2_INVALID_SESSION"), true],
    [
      "a refused stream, by its message",
      connect("stream closed with error code NGHTTP2_REFUSED_STREAM", Code.Unavailable),
      true,
    ],
    [
      "a cause three levels deep",
      connect("a", Code.Unavailable, { cause: { cause: errno("ECONNREFUSED") } }),
      true,
    ],
    [
      "a reset connection (the request may have arrived)",
      connect("x", Code.Aborted, errno("ECONNRESET")),
      false,
    ],
    ["a timeout", connect("x", Code.Unavailable, errno("ETIMEDOUT")), false],
    ["a server's UNAVAILABLE", connect("server says no", Code.Unavailable), false],
    [
      "a stream reset for another reason",
      connect("stream closed with error code NGHTTP2_CANCEL", Code.Canceled),
      false,
    ],
    ["undefined", undefined, false],
    ["a string", "ECONNREFUSED", false],
    [
      "a cause chain past depth 5",
      connect("a", Code.Unavailable, {
        cause: { cause: { cause: { cause: { cause: errno("ECONNREFUSED") } } } },
      }),
      false,
    ],
  ];
  it.each(table)("%s -> %s", (_name, error, want) => {
    expect(wasNotSent(error)).toBe(want);
  });
});

describe("classifyTransportError", () => {
  const table: [string, unknown, boolean, { code: Code; message?: RegExp; lost?: boolean }][] = [
    [
      "ECONNRESET (Connect says ABORTED) becomes UNAVAILABLE naming the endpoint",
      connect("read ECONNRESET", Code.Aborted, errno("ECONNRESET")),
      false,
      {
        code: Code.Unavailable,
        message: /connection to 10\.0\.0\.7:50051 lost: read ECONNRESET/,
        lost: true,
      },
    ],
    [
      "EPIPE becomes UNAVAILABLE",
      connect("write EPIPE", Code.Aborted, errno("EPIPE")),
      false,
      { code: Code.Unavailable, lost: true },
    ],
    [
      "a peer's stream reset (CANCELED) becomes UNAVAILABLE",
      connect("stream closed with error code NGHTTP2_INTERNAL_ERROR", Code.Canceled),
      false,
      { code: Code.Unavailable, lost: true },
    ],
    [
      "socket hang up becomes UNAVAILABLE",
      connect("socket hang up", Code.Aborted),
      false,
      { code: Code.Unavailable, lost: true },
    ],
    [
      "CANCELED stays CANCELED when the caller aborted",
      connect("stream closed with error code NGHTTP2_CANCEL", Code.Canceled),
      true,
      { code: Code.Canceled, lost: false },
    ],
    [
      "ABORTED from the server's logic stays ABORTED",
      connect("conflict", Code.Aborted),
      false,
      { code: Code.Aborted, lost: false },
    ],
    [
      "an expired certificate becomes UNAVAILABLE (tls)",
      connect("certificate has expired", Code.Internal, errno("CERT_HAS_EXPIRED")),
      false,
      {
        code: Code.Unavailable,
        message: /tls handshake with 10\.0\.0\.7:50051 failed: .*\(CERT_HAS_EXPIRED\)/,
      },
    ],
    [
      "a self-signed certificate becomes UNAVAILABLE",
      connect("self signed", Code.Internal, errno("DEPTH_ZERO_SELF_SIGNED_CERT")),
      false,
      { code: Code.Unavailable, message: /tls handshake/ },
    ],
    [
      "an ERR_TLS_* code becomes UNAVAILABLE",
      connect("bad", Code.Internal, errno("ERR_TLS_CERT_ALTNAME_INVALID")),
      false,
      { code: Code.Unavailable, message: /tls handshake/ },
    ],
    [
      "an ERR_SSL_* code becomes UNAVAILABLE",
      connect("bad", Code.Internal, errno("ERR_SSL_WRONG_VERSION_NUMBER")),
      false,
      { code: Code.Unavailable },
    ],
    [
      "another INTERNAL passes through",
      connect("boom", Code.Internal, errno("EOTHER")),
      false,
      { code: Code.Internal, message: /boom/ },
    ],
    ["NOT_FOUND passes through", connect("missing", Code.NotFound), false, { code: Code.NotFound }],
    ["a plain Error becomes UNKNOWN", new Error("odd"), false, { code: Code.Unknown }],
  ];
  it.each(table)("%s", (_name, error, callerAborted, want) => {
    const e = classifyTransportError(error, ADDRESS, callerAborted);
    expect(e).toBeInstanceOf(ConnectError);
    expect(e.code).toBe(want.code);
    if (want.message !== undefined) expect(e.rawMessage).toMatch(want.message);
    if (want.lost !== undefined) expect(e.cause instanceof ConnectionLostError).toBe(want.lost);
  });

  it("keeps the original error's cause under the ConnectionLostError", () => {
    const root = errno("ECONNRESET");
    const e = classifyTransportError(connect("read ECONNRESET", Code.Aborted, root), ADDRESS);
    expect((e.cause as Error).cause).toBe(root);
  });

  it("returns an unchanged error as the same object", () => {
    const original = connect("missing", Code.NotFound);
    expect(classifyTransportError(original, ADDRESS)).toBe(original);
  });
});

describe("isEndpointLocalFailure", () => {
  const lost = classifyTransportError(
    connect("read ECONNRESET", Code.Aborted, errno("ECONNRESET")),
    ADDRESS,
  );
  const table: [string, unknown, boolean][] = [
    ["a lost connection", lost, true],
    ["a refused connection", connect("x", Code.Unavailable, errno("ECONNREFUSED")), true],
    ["a refused stream", connect("NGHTTP2_REFUSED_STREAM", Code.Unavailable), true],
    ["a server's UNAVAILABLE", connect("overloaded", Code.Unavailable), false],
    ["a server's INTERNAL", connect("bug", Code.Internal), false],
    ["a DEADLINE_EXCEEDED", connect("late", Code.DeadlineExceeded), false],
    ["a non-ConnectError with a not-sent code", errno("ECONNREFUSED"), false],
  ];
  it.each(table)("%s -> %s", (_name, error, want) => {
    expect(isEndpointLocalFailure(error)).toBe(want);
  });
});
