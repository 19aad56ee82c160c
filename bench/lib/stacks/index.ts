import type { StackName } from "../protocol.js";
import type { Stack } from "./types.js";

/**
 * loadStack imports only the named stack, so a child process loads (and its
 * RSS includes) just the library it benchmarks.
 */
export async function loadStack(name: StackName): Promise<Stack> {
  switch (name) {
    case "grpc-js":
      return (await import("./grpc-js.js")).stack;
    case "connect":
      return (await import("./connect.js")).stack;
    case "mesh":
      return (await import("./mesh.js")).stack;
    case "lean":
      return (await import("./mesh.js")).leanStack;
    default:
      throw new Error(`unknown stack ${String(name)}`);
  }
}
