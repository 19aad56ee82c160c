import { describe, expect, it } from "vitest";
import { createServerIdentityMatcher } from "../../src/identity/server-identity-matcher.js";
import { parseSubjectAltNames } from "../../src/identity/subject-alt-names.js";
import { isSpiffeId, parseSpiffeId, spiffeIdProblem } from "../../src/index.js";

describe("SPIFFE IDs", () => {
  it.each([
    ["spiffe://a", "a", ""],
    ["spiffe://a/sa/orders", "a", "/sa/orders"],
    ["spiffe://example.org/ns/default/sa/orders", "example.org", "/ns/default/sa/orders"],
    ["spiffe://my-domain_1.io/x.y-z_0/A", "my-domain_1.io", "/x.y-z_0/A"],
    ["spiffe://a/.../x", "a", "/.../x"],
  ])("parses %s", (id, trustDomain, path) => {
    expect(parseSpiffeId(id)).toEqual({ id, trustDomain, path });
    expect(isSpiffeId(id)).toBe(true);
  });

  it.each([
    ["", /does not start with spiffe:\/\//],
    ["https://a/sa/x", /does not start with spiffe:\/\//],
    ["SPIFFE://a/sa/x", /scheme must be lower-case/],
    ["spiffe://", /trust domain is empty/],
    ["spiffe:///sa/x", /trust domain is empty/],
    ["spiffe://A/sa/x", /outside \[a-z0-9._-\]/],
    ["spiffe://a:8080/sa/x", /must not have a port/],
    ["spiffe://u@a/sa/x", /must not have user info/],
    ["spiffe://a/", /must not end with \//],
    ["spiffe://a/sa/x/", /must not end with \//],
    ["spiffe://a//x", /empty segment/],
    ["spiffe://a/./x", /a \. segment/],
    ["spiffe://a/../x", /a \.\. segment/],
    ["spiffe://a/sa/x?y=1", /must not have a query/],
    ["spiffe://a/sa/x#f", /must not have a fragment/],
    ["spiffe://a/sa/x%20", /outside \[a-zA-Z0-9._-\]/],
    ["spiffe://a/sa/ü", /outside \[a-zA-Z0-9._-\]/],
    [`spiffe://${"a".repeat(256)}`, /longer than 255 bytes/],
    [`spiffe://a/${"b".repeat(2048)}`, /longer than 2048 bytes/],
  ])("refuses %j", (id, why) => {
    expect(spiffeIdProblem(id)).toMatch(why);
    expect(isSpiffeId(id)).toBe(false);
    expect(() => parseSpiffeId(id)).toThrow(TypeError);
    expect(() => parseSpiffeId(id)).toThrow(`${JSON.stringify(id)} is not a SPIFFE ID`);
  });

  it("refuses non-strings", () => {
    expect(spiffeIdProblem(undefined)).toBe("it is not a string");
    expect(isSpiffeId(42)).toBe(false);
  });
});

describe("subject alternative names as node prints them", () => {
  it.each([
    [undefined, [], [], []],
    ["", [], [], []],
    ["URI:spiffe://a/sa/x", ["spiffe://a/sa/x"], [], []],
    [
      "DNS:localhost, IP Address:127.0.0.1, URI:spiffe://a/sa/x",
      ["spiffe://a/sa/x"],
      ["localhost"],
      ["127.0.0.1"],
    ],
    // node quotes a value with a comma: it cannot pose as a second entry.
    [
      'URI:"spiffe://a/x, URI:spiffe://a/admin", DNS:b',
      ["spiffe://a/x, URI:spiffe://a/admin"],
      ["b"],
      [],
    ],
    ["email:x@y, URI:spiffe://a/1, URI:spiffe://a/2", ["spiffe://a/1", "spiffe://a/2"], [], []],
  ])("reads %j", (text, uris, dnsNames, ipAddresses) => {
    expect(parseSubjectAltNames(text)).toEqual({ uris, dnsNames, ipAddresses });
  });
});

describe("server identity matcher (client pinning)", () => {
  const own = () => "a";
  it.each([
    [undefined, "spiffe://a/sa/orders", undefined],
    [
      undefined,
      "spiffe://b/sa/orders",
      "server presented spiffe://b/sa/orders, want a workload of trust domain a",
    ],
    [undefined, undefined, "server presented no SPIFFE ID, want a workload of trust domain a"],
    [["spiffe://a/sa/orders"], "spiffe://a/sa/orders", undefined],
    [
      ["spiffe://a/sa/orders"],
      "spiffe://a/sa/other",
      "server presented spiffe://a/sa/other, want spiffe://a/sa/orders",
    ],
    [
      ["spiffe://a/sa/orders"],
      "spiffe://a/sa/orders/x",
      "server presented spiffe://a/sa/orders/x, want spiffe://a/sa/orders",
    ],
    [["spiffe://a/sa/orders", "spiffe://b"], "spiffe://b/anything", undefined],
    [
      ["spiffe://a/sa/orders", "spiffe://b"],
      "spiffe://c/sa/orders",
      "server presented spiffe://c/sa/orders, want one of spiffe://a/sa/orders, a workload of trust domain b",
    ],
    [
      ["spiffe://b"],
      "spiffe://a/sa/orders",
      "server presented spiffe://a/sa/orders, want a workload of trust domain b",
    ],
  ])("pins %j: %s → %s", (pins, presented, verdict) => {
    expect(createServerIdentityMatcher(pins, own)(presented)).toBe(verdict);
  });

  it("refuses bad pins when built", () => {
    expect(() => createServerIdentityMatcher([], own)).toThrow(/at least one/);
    expect(() => createServerIdentityMatcher(["spiffe://a/x/"], own)).toThrow(
      /serverIdentities: "spiffe:\/\/a\/x\/" is not a SPIFFE ID/,
    );
    expect(() => createServerIdentityMatcher("spiffe://a" as never, own)).toThrow(TypeError);
  });
});
