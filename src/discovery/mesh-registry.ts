import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Clock, MAX_TIMER_DELAY_MS, systemClock } from "../clock.js";
import { stripUndefined } from "../strip-undefined.js";
import { type MeshRegistryLease, startMeshRegistryLease } from "./mesh-registry-lease.js";
import { assertMeshRegistryName } from "./mesh-registry-name.js";
import { createMeshRegistryResolver } from "./mesh-registry-resolver.js";
import { ensureMeshRegistryRoot } from "./mesh-registry-store.js";
import {
  formatRegistrationRecord,
  parseRegistrationRecord,
  type Registered,
  type Registration,
  type RegistryEvent,
  type ServiceRegistry,
} from "./registry.js";
import type { Resolver } from "./resolver.js";

/**
 * MeshRegistryOptions configures createMeshRegistry. Defaults
 * (MESH_REGISTRY_DEFAULTS): dir from `MESH_REGISTRY_DIR` or
 * `<os.tmpdir()>/connect-mesh-registry`, leaseTtlMs 5_000, pollMs 1_000.
 */
export interface MeshRegistryOptions {
  /**
   * dir holds the registry; every process that shares it sees the others'
   * registrations. It must be owned by the current user and not writable by
   * others (checked on first use).
   */
  readonly dir?: string;
  /**
   * leaseTtlMs is how long a record outlives its last renewal; records are
   * renewed every leaseTtlMs / 3, so a killed process drops out of resolvers
   * within this time. At least MESH_REGISTRY_MIN_LEASE_TTL_MS.
   */
  readonly leaseTtlMs?: number;
  /** pollMs is how often resolvers rescan in case fs.watch missed a change; >= 10. */
  readonly pollMs?: number;
  /** clock drives renewal and poll timers and snapshot times; default the system clock. */
  readonly clock?: Clock;
  /** onEvent receives registration events (registered, lease-lost, errors). */
  readonly onEvent?: (event: RegistryEvent) => void;
}

/** MESH_REGISTRY_DEFAULTS are the defaults documented on MeshRegistryOptions. */
export const MESH_REGISTRY_DEFAULTS = Object.freeze({
  // Short enough that a crashed replica stops getting traffic within seconds,
  // long enough that a GC pause or a busy disk does not drop a live one.
  leaseTtlMs: 5_000,
  // The watch normally reports changes within milliseconds; the poll is the
  // safety net, and one readdir per service per second costs next to nothing.
  pollMs: 1_000,
  /** dirName is the default directory's name under os.tmpdir(). */
  dirName: "connect-mesh-registry",
});

/**
 * MESH_REGISTRY_MIN_LEASE_TTL_MS is the smallest leaseTtlMs accepted: below
 * it, renewals (every TTL / 3) would compete with real work and an ordinary
 * event-loop stall would expire live records.
 */
export const MESH_REGISTRY_MIN_LEASE_TTL_MS = 500;

// Records expired this many TTLs ago belong to dead processes and are
// deleted by scans. More than one TTL so that a registrar that was merely
// stalled is not swept while it is about to renew.
const GC_AFTER_TTLS = 2;

// Node timers overflow above this and fire immediately.

interface LeaseEntry {
  readonly lease: MeshRegistryLease;
  readonly registration: Registration;
}

/** MeshRegistry is the embedded registry behind `mesh:///service` targets. */
export interface MeshRegistry extends ServiceRegistry {
  readonly name: "mesh";
  /** dir is the absolute directory the registry reads and writes. */
  readonly dir: string;
}

/**
 * defaultMeshRegistryDir is the directory a registry uses when given none:
 * `MESH_REGISTRY_DIR` if set and non-empty, else
 * `<os.tmpdir()>/connect-mesh-registry`, so that processes on one host meet
 * with zero setup.
 */
export function defaultMeshRegistryDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.MESH_REGISTRY_DIR;
  return fromEnv !== undefined && fromEnv !== ""
    ? fromEnv
    : join(tmpdir(), MESH_REGISTRY_DEFAULTS.dirName);
}

/**
 * createMeshRegistry builds the embedded, file-backed registry: zero setup,
 * and shared by every process on the host that uses the same `dir`.
 *
 * A registration is the file `<dir>/<service>/<instanceId>.json`, a grpc-go
 * naming record (`{"Addr":…,"Metadata":{…}}`) plus a wall-clock `expiresAt`,
 * replaced atomically (temp file + rename) every `leaseTtlMs / 3`. A process
 * that dies without deregistering (SIGKILL, power loss) is dropped by
 * resolvers once its record expires, and its file is deleted by the next scan
 * `2 × leaseTtlMs` later. Resolvers watch the service directory with fs.watch
 * and also poll every `pollMs`; see createMeshRegistryResolver.
 *
 * Service names and instance ids must match MESH_REGISTRY_NAME_PATTERN, and a
 * registration must be a record resolvers would accept; both are TypeErrors
 * quoting the bad value. Options are validated here (RangeError, TypeError).
 */
export function createMeshRegistry(options: MeshRegistryOptions = {}): MeshRegistry {
  const o = { ...MESH_REGISTRY_DEFAULTS, ...stripUndefined(options) };
  const rawDir = options.dir ?? defaultMeshRegistryDir();
  if (typeof rawDir !== "string" || rawDir === "") {
    throw new TypeError(`dir ${JSON.stringify(rawDir)} must be a non-empty path`);
  }
  if (
    !Number.isFinite(o.leaseTtlMs) ||
    o.leaseTtlMs < MESH_REGISTRY_MIN_LEASE_TTL_MS ||
    o.leaseTtlMs > MAX_TIMER_DELAY_MS
  ) {
    throw new RangeError(
      `leaseTtlMs ${o.leaseTtlMs} must be in ${MESH_REGISTRY_MIN_LEASE_TTL_MS}..${MAX_TIMER_DELAY_MS}`,
    );
  }
  if (!Number.isFinite(o.pollMs) || o.pollMs < 10 || o.pollMs > MAX_TIMER_DELAY_MS) {
    throw new RangeError(`pollMs ${o.pollMs} must be in 10..${MAX_TIMER_DELAY_MS}`);
  }
  const dir = resolve(rawDir);
  const clock = options.clock ?? systemClock;
  const onEvent = (event: RegistryEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A throwing event listener must not stop renewals.
    }
  };

  let closed = false;
  let closing: Promise<void> | undefined;
  const leases = new Map<string, LeaseEntry>();
  const pending = new Set<string>();
  const resolvers = new Set<Resolver>();

  // Checked before every first use rather than once: a failed check (say the
  // directory is fixed by hand) should not poison the registry forever.
  let rootChecked = false;
  const prepare = async () => {
    if (rootChecked) return;
    await ensureMeshRegistryRoot(dir);
    rootChecked = true;
  };

  // Takes the entry, not the key: an old handle must not remove a newer
  // registration of the same instance.
  const deregister = async (key: string, entry: LeaseEntry) => {
    if (leases.get(key) !== entry) return;
    leases.delete(key);
    await entry.lease.stop();
    onEvent({ type: "deregistered", registration: entry.registration });
  };

  return {
    name: "mesh",
    dir,

    async register(registration) {
      if (closed) throw new Error("mesh registry is closed");
      const service = assertMeshRegistryName("service", registration.service);
      const instanceId = assertMeshRegistryName("instanceId", registration.instanceId);
      const checked = parseRegistrationRecord(formatRegistrationRecord(registration));
      if (typeof checked === "string") {
        throw new TypeError(`registration ${service}/${instanceId}: ${checked}`);
      }
      const key = `${service}/${instanceId}`;
      if (leases.has(key) || pending.has(key)) {
        throw new Error(`instance ${JSON.stringify(key)} is already registered`);
      }
      // Snapshot the caller's object: renewals must keep writing what was registered.
      const frozen: Registration = Object.freeze({
        service,
        instanceId,
        address: registration.address,
        metadata: Object.freeze({ ...registration.metadata }),
      });
      pending.add(key);
      let lease: MeshRegistryLease;
      try {
        await prepare();
        lease = await startMeshRegistryLease({
          serviceDir: join(dir, service),
          registration: frozen,
          leaseTtlMs: o.leaseTtlMs,
          clock,
          onEvent,
        });
      } finally {
        pending.delete(key);
      }
      if (closed) {
        // close() ran while the first write was in flight and could not see us.
        await lease.stop();
        throw new Error("mesh registry is closed");
      }
      const entry: LeaseEntry = { lease, registration: frozen };
      leases.set(key, entry);
      onEvent({ type: "registered", registration: frozen });
      let done: Promise<void> | undefined;
      const registered: Registered = {
        deregister() {
          done ??= deregister(key, entry);
          return done;
        },
      };
      return registered;
    },

    resolver(service) {
      if (closed) throw new Error("mesh registry is closed");
      assertMeshRegistryName("service", service);
      const inner = createMeshRegistryResolver({
        serviceDir: join(dir, service),
        target: `mesh:///${service}`,
        pollMs: o.pollMs,
        gcAfterMs: GC_AFTER_TTLS * o.leaseTtlMs,
        clock,
        prepare,
      });
      const r: Resolver = {
        start: (listener) => inner.start(listener),
        resolveNow: () => inner.resolveNow?.(),
        close() {
          resolvers.delete(r);
          return inner.close();
        },
      };
      resolvers.add(r);
      return r;
    },

    close() {
      closing ??= (async () => {
        closed = true;
        const results = await Promise.allSettled([
          ...[...leases].map(([key, entry]) => deregister(key, entry)),
          ...[...resolvers].map((r) => r.close()),
        ]);
        const failed = results.find((r) => r.status === "rejected");
        if (failed !== undefined) throw failed.reason;
      })();
      return closing;
    },
  };
}
