import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { type HealthStatus, ServingStatus } from "./health-status.js";

/**
 * createHealthService implements `grpc.health.v1.Health` over a status table,
 * per the gRPC health checking protocol: Check answers NOT_FOUND for an unknown
 * service; Watch sends the current status (SERVICE_UNKNOWN for an unknown
 * service) and then every change, until the call ends or `stop` aborts (the
 * server closes Watch streams on shutdown so they do not hold the drain open).
 */
export function createHealthService(
  health: HealthStatus,
  stop: AbortSignal,
): ServiceImpl<typeof Health> {
  return {
    check(req) {
      const status = health.get(req.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
      }
      return { status };
    },
    async *watch(req, ctx) {
      const queue: ServingStatus[] = [health.get(req.service) ?? ServingStatus.SERVICE_UNKNOWN];
      let wake: (() => void) | undefined;
      const unsubscribe = health.watch(req.service, (s) => {
        queue.push(s);
        wake?.();
      });
      const onStop = () => wake?.();
      stop.addEventListener("abort", onStop);
      ctx.signal.addEventListener("abort", onStop);
      try {
        for (;;) {
          while (queue.length > 0) {
            yield { status: queue.shift() as ServingStatus };
          }
          if (stop.aborted || ctx.signal.aborted) {
            return;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        unsubscribe();
        stop.removeEventListener("abort", onStop);
        ctx.signal.removeEventListener("abort", onStop);
      }
    },
  };
}

export { Health };
