import { describe, expect, it } from "vitest";
import { createMeshTransport, parseTarget } from "../../src/index.js";

describe("parseTarget", () => {
  it.each([
    ["127.0.0.1:50051", { scheme: "static", authority: "", endpoint: "127.0.0.1:50051" }],
    ["dns:///orders:50051", { scheme: "dns", authority: "", endpoint: "orders:50051" }],
    [
      "dns://8.8.8.8/orders:50051",
      { scheme: "dns", authority: "8.8.8.8", endpoint: "orders:50051" },
    ],
    ["mesh:///orders", { scheme: "mesh", authority: "", endpoint: "orders" }],
  ])("reads %s", (raw, want) => {
    expect(parseTarget(raw)).toEqual({ ...want, raw });
  });

  it.each([
    ["http://127.0.0.1:50051", /is a URL, not a gRPC target: use "127\.0\.0\.1:50051" \(/],
    ["http://localhost:8080/", /use "localhost:8080" \(/],
    ["HTTP://orders:80/x/y", /use "orders:80" \(/],
    ["https://orders.example.com:443", /use "orders\.example\.com:443" with the tls option/],
  ])("suggests host:port for the URL %s", (raw, message) => {
    expect(() => parseTarget(raw)).toThrow(TypeError);
    expect(() => parseTarget(raw)).toThrow(message);
  });

  it.each([
    ["", /target "" must be a non-empty string/],
    ["dns://", /target "dns:\/\/" is not scheme:\/\/authority\/endpoint/],
    ["mesh:///", /target "mesh:\/\/\/" names no endpoint/],
  ])("rejects %j", (raw, message) => {
    expect(() => parseTarget(raw)).toThrow(message);
  });

  it("makes createMeshTransport reject a URL target at construction, suggesting host:port", () => {
    expect(() => createMeshTransport({ target: "http://127.0.0.1:50051" })).toThrow(
      /use "127\.0\.0\.1:50051"/,
    );
  });
});
