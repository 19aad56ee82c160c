// Tests that need an external service (the etcd binary, Redis, ...) call
// requireService at the top of their file and skip when it is absent. The
// skip is LOUD so nobody mistakes a skipped suite for a passing one, and with
// MESH_REQUIRE_SERVICES=1 (set in CI) an absent service fails the run instead.

import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { connect } from "node:net";

/** REQUIRE_SERVICES_ENV turns "service absent" from a skip into a failure when set to 1. */
export const REQUIRE_SERVICES_ENV = "MESH_REQUIRE_SERVICES";

/**
 * ServiceProbe answers whether a service is usable: true, or false / a string
 * saying why not. A probe that throws counts as absent, with its message.
 */
export type ServiceProbe = () => boolean | string | Promise<boolean | string>;

/**
 * requireService runs `probe` and returns true when `name` is available.
 * When it is not: with MESH_REQUIRE_SERVICES=1 it throws (the test file
 * fails); otherwise it prints a loud warning and returns false, and the
 * caller skips (`describe.skipIf(!available)`). `hint` says how to install it.
 */
export async function requireService(
  name: string,
  probe: ServiceProbe,
  hint?: string,
): Promise<boolean> {
  let outcome: boolean | string;
  try {
    outcome = await probe();
  } catch (e) {
    outcome = e instanceof Error ? e.message : String(e);
  }
  if (outcome === true) {
    return true;
  }
  const why = typeof outcome === "string" && outcome !== "" ? outcome : "probe failed";
  const message = `service ${JSON.stringify(name)} is not available (${why})${hint === undefined ? "" : `; ${hint}`}`;
  if (process.env[REQUIRE_SERVICES_ENV] === "1") {
    throw new Error(`${message}; ${REQUIRE_SERVICES_ENV}=1 requires it`);
  }
  const bar = "!".repeat(78);
  console.warn(
    `\n${bar}\n!!! SKIPPING TESTS: ${message}\n!!! Set ${REQUIRE_SERVICES_ENV}=1 to fail instead of skipping.\n${bar}\n`,
  );
  return false;
}

/** executableProbe checks that `path` exists and is executable. */
export function executableProbe(path: string): ServiceProbe {
  return async () => {
    try {
      await access(path, constants.X_OK);
      return true;
    } catch {
      return `${path} is not an executable file`;
    }
  };
}

/** tcpProbe checks that something accepts TCP connections on host:port within timeoutMs. */
export function tcpProbe(host: string, port: number, timeoutMs = 1_000): ServiceProbe {
  return () =>
    new Promise((resolve) => {
      const socket = connect({ host, port });
      const done = (result: boolean | string) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(result);
      };
      const timer = setTimeout(
        () => done(`no answer on ${host}:${port} within ${timeoutMs} ms`),
        timeoutMs,
      );
      socket.once("connect", () => done(true));
      socket.once("error", (e) => done(`${host}:${port}: ${e.message}`));
    });
}
