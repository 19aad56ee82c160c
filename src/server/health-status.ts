import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

/** HealthListener receives a service's status whenever it changes. */
export type HealthListener = (status: ServingStatus) => void;

/**
 * HealthStatus holds the serving status of each service of a server, keyed by
 * fully-qualified service name; `""` is the server as a whole. It backs the
 * `grpc.health.v1.Health` service and the server's registration: a server
 * registers only while `""` is SERVING.
 */
export interface HealthStatus {
  /** get returns the status of `service`, or undefined when it is unknown. */
  get(service: string): ServingStatus | undefined;
  /** set changes the status of `service` and notifies its watchers. */
  set(service: string, status: ServingStatus): void;
  /** setAll changes the status of every known service, `""` included. */
  setAll(status: ServingStatus): void;
  /** watch calls `listener` on each change of `service`; returns an unsubscribe function. */
  watch(service: string, listener: HealthListener): () => void;
  /** services lists the known service names. */
  services(): string[];
}

/** createHealthStatus creates a status table with every service NOT_SERVING. */
export function createHealthStatus(services: Iterable<string>): HealthStatus {
  const statuses = new Map<string, ServingStatus>([["", ServingStatus.NOT_SERVING]]);
  for (const s of services) {
    statuses.set(s, ServingStatus.NOT_SERVING);
  }
  const listeners = new Map<string, Set<HealthListener>>();
  const status: HealthStatus = {
    get: (service) => statuses.get(service),
    set(service, value) {
      if (statuses.get(service) === value) {
        return;
      }
      statuses.set(service, value);
      for (const l of listeners.get(service) ?? []) {
        l(value);
      }
    },
    setAll(value) {
      for (const service of [...statuses.keys()]) {
        status.set(service, value);
      }
    },
    watch(service, listener) {
      let set = listeners.get(service);
      if (set === undefined) {
        set = new Set();
        listeners.set(service, set);
      }
      set.add(listener);
      return () => {
        set.delete(listener);
      };
    },
    services: () => [...statuses.keys()],
  };
  return status;
}
