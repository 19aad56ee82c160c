// `npm start -- --mtls`: the demo with every hop over mutual TLS, certificates
// from a dev CA made at start; the replicas see the client's SPIFFE ID.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const DEMO = ["--import", "tsx", "examples/demo.ts"];
const CLIENT_ID = "spiffe://demo.local/ns/shop/sa/checkout";

const dir = mkdtempSync(join(tmpdir(), "mesh-demo-mtls-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("examples: the demo with --mtls", { timeout: 180_000 }, () => {
  it("runs every hop over mTLS and shows the caller's identity in the logs and the followed trace", async () => {
    const logFile = join(dir, "mtls.jsonl");
    // The demo's own expectations (every replica served...) are the plain
    // demo test's business, and on a loaded host a 4 s run may miss one: exit
    // 1 is accepted here, as long as the run got to its summary.
    const stdout = await run(
      process.execPath,
      [...DEMO, "--duration", "4", "--mtls", "--log-file", logFile],
      { timeout: 150_000 },
    ).then(
      (r) => r.stdout,
      (e: { code?: number; stdout?: string; stderr?: string }) => {
        if (e.code === 1 && /^Summary: /m.test(e.stdout ?? "")) return e.stdout as string;
        throw new Error(`demo exited ${e.code}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
      },
    );
    expect(stdout).toContain(
      "mTLS         dev CA spiffe://demo.local: replicas spiffe://demo.local/ns/shop/sa/orders, client spiffe://demo.local/ns/shop/sa/checkout (pinned to the replicas' ID)",
    );
    // Every call a replica served came from the verified client identity.
    const lines = readFileSync(logFile, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    // No call failed for a reason of TLS: handshakes, certificates, identities.
    const tlsFailures = lines.filter(
      (l) =>
        l.msg === "finished call" &&
        l["grpc.component"] === "client" &&
        /certificate|SPIFFE|handshake|ERR_SSL|ERR_TLS/i.test(String(l["grpc.error"] ?? "")),
    );
    expect(tlsFailures).toEqual([]);
    const served = lines.filter(
      (l) =>
        l.msg === "finished call" &&
        l["grpc.component"] === "server" &&
        String(l.proc).startsWith("replica-") &&
        l["grpc.service"] === "example.orders.v1.OrderService",
    );
    expect(served.length).toBeGreaterThan(50);
    expect(served.filter((l) => l["peer.identity"] !== CLIENT_ID)).toEqual([]);
    // The followed trace names the caller on its server lines.
    expect(stdout).toMatch(
      /served CreateOrder .*caller spiffe:\/\/demo\.local\/ns\/shop\/sa\/checkout/,
    );
    // The certificates went with the run's temp dir.
    const runDir = /(\/\S*connect-mesh-demo-[^/\s]+)\//.exec(stdout)?.[1];
    expect(runDir).toBeDefined();
    expect(existsSync(runDir as string)).toBe(false);
  });
});
