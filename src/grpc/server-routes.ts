import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  type ConnectRouter,
  createMethodImplSpec,
  createServiceImplSpec,
  type MethodImplSpec,
} from "@connectrpc/connect";

/** GrpcMethodTable maps a gRPC request path (`/pkg.Service/Method`) to its implementation. */
export type GrpcMethodTable = ReadonlyMap<string, MethodImplSpec>;

/**
 * captureRoutes wraps Connect's router so that every `service()` and `rpc()`
 * call the user's `routes` makes is forwarded to Connect (the fallback path
 * for gRPC-Web and the Connect protocol keeps working) and is also recorded
 * with Connect's public `createServiceImplSpec` / `createMethodImplSpec`
 * into a path table the lean gRPC handler dispatches on.
 * @private
 */
export function captureRoutes(
  router: ConnectRouter,
  table: Map<string, MethodImplSpec>,
): ConnectRouter {
  const wrapped: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, options) {
      router.service(service, implementation, options);
      if (servesLean(options)) {
        const spec = createServiceImplSpec(service, implementation);
        for (const m of Object.values(spec.methods)) {
          table.set(methodPath(m.method), m);
        }
      }
      return wrapped;
    },
    rpc(method, impl, options) {
      router.rpc(method, impl, options);
      if (servesLean(options)) {
        table.set(methodPath(method), createMethodImplSpec(method, impl));
      }
      return wrapped;
    },
  };
  return wrapped;
}

/** methodPath is the HTTP/2 `:path` of a method: `/pkg.Service/Method`. */
export function methodPath(method: DescMethod & { parent: DescService }): string {
  return `/${method.parent.typeName}/${method.name}`;
}

const PROTOCOL_FLAGS = new Set(["grpc", "grpcWeb", "connect"]);

// A registration with its own handler options (interceptors, limits, JSON
// options) or without gRPC stays on Connect's path, which honours them all.
function servesLean(options: object | undefined): boolean {
  if (options === undefined) return true;
  if ((options as { grpc?: boolean }).grpc === false) return false;
  return Object.keys(options).every((k) => PROTOCOL_FLAGS.has(k));
}
