import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { type BackoffOptions, createBackoff } from "../call/backoff.js";
import { backgroundSleep } from "../call/signals.js";
import { type Clock, type ClockTimer, MAX_TIMER_DELAY_MS } from "../clock.js";
import type { Registered, RegistryEvent, ServiceRegistry } from "../discovery/registry.js";
import type { RegistrationSnapshot } from "../state/snapshot.js";
import { type HealthStatus, ServingStatus } from "./health-status.js";

/**
 * RegistrationUnavailableMode says what listen() does when the registry does
 * not take the registration within `timeoutMs`: `fail` (listen rejects, the
 * port is released) or `retry-in-background` (listen resolves, a warning is
 * logged, and registration keeps retrying with backoff until it lands).
 */
export type RegistrationUnavailableMode = "fail" | "retry-in-background";

/** MeshServerRegistration announces the server in a registry while it is SERVING. */
export interface MeshServerRegistration {
  /** registry to register with (`createMeshRegistry()`, `createEtcdRegistry()`, yours). */
  readonly registry: ServiceRegistry;
  /** service is the name clients resolve, as in `mesh:///orders`. */
  readonly service: string;
  /** instanceId identifies this replica; default a random UUID. */
  readonly instanceId?: string;
  /** metadata: `zone`, `version`, `weight`, `protocol`... (`id` defaults to instanceId). */
  readonly metadata?: Readonly<Record<string, string>>;
  /**
   * advertiseAddress is the `host:port` clients should dial; default the bound
   * address (set it when listening on 0.0.0.0 or behind NAT).
   */
  readonly advertiseAddress?: string;
  /**
   * deregisterDelayMs is how long close() keeps serving after deregistering,
   * so clients learn of the removal before connections close; default 1_000.
   */
  readonly deregisterDelayMs?: number;
  /**
   * timeoutMs bounds how long listen() waits for the first registration;
   * default 10_000. A registry that fails sooner (connection refused) ends
   * the wait at once.
   */
  readonly timeoutMs?: number;
  /**
   * onUnavailable is what happens when the first registration fails or
   * times out; default `fail` (see RegistrationUnavailableMode): a server
   * nobody can discover is usually a deployment mistake better seen at once.
   */
  readonly onUnavailable?: RegistrationUnavailableMode;
  /** retryBackoff paces background retries; default 200 ms doubling to 5 s. */
  readonly retryBackoff?: BackoffOptions;
}

/** REGISTRATION_DEFAULTS are the defaults documented on MeshServerRegistration. */
export const REGISTRATION_DEFAULTS = Object.freeze({
  deregisterDelayMs: 1_000,
  // etcd's own client gives up on a call after 5 s: 10 s leaves room for one
  // failover to a second endpoint and still fails a deploy quickly.
  timeoutMs: 10_000,
  onUnavailable: "fail" as RegistrationUnavailableMode,
  // Fast enough to be back within a second of a short outage, slow enough
  // that a fleet retrying together does not hammer a recovering registry.
  retryBackoff: Object.freeze({ initialMs: 200, maxMs: 5_000 }),
});

/** Registrar keeps a server's registration in step with its health. */
export interface Registrar {
  /**
   * start registers once health `""` is SERVING and follows it afterwards. It
   * resolves when the first registration landed (or, in
   * `retry-in-background` mode, when it was left to retry), and rejects with
   * UNAVAILABLE naming the registry, its endpoints and the cause in `fail`
   * mode.
   */
  start(health: HealthStatus, boundAddress: string): Promise<void>;
  /** deregister stops following health and removes the registration; never rejects. */
  deregister(): Promise<void>;
  isRegistered(): boolean;
  /** snapshot describes the registration now; null without one. */
  snapshot(): RegistrationSnapshot | null;
}

/** RegistrarDeps are the server's pieces a registrar uses. */
export interface RegistrarDeps {
  readonly clock: Clock;
  readonly onEvent: (event: RegistryEvent) => void;
  /** warn logs a warning line (registration left to retry in the background). */
  readonly warn: (fields: Record<string, unknown>, message: string) => void;
}

/**
 * createRegistrar keeps the registration in step with the server's overall
 * health: registered while `""` is SERVING, deregistered otherwise. Changes
 * are chained, so a quick NOT_SERVING → SERVING flip cannot race; a
 * NOT_SERVING aborts a registration still retrying.
 */
export function createRegistrar(
  reg: MeshServerRegistration | undefined,
  deps: RegistrarDeps,
): Registrar {
  if (reg === undefined) {
    return {
      start: async () => {},
      deregister: async () => {},
      isRegistered: () => false,
      snapshot: () => null,
    };
  }
  const { clock } = deps;
  const timeoutMs = reg.timeoutMs ?? REGISTRATION_DEFAULTS.timeoutMs;
  const mode = reg.onUnavailable ?? REGISTRATION_DEFAULTS.onUnavailable;
  const backoff = createBackoff(reg.retryBackoff ?? REGISTRATION_DEFAULTS.retryBackoff);
  const instanceId = reg.instanceId ?? randomUUID();
  let current: Promise<Registered | undefined> = Promise.resolve(undefined);
  let registering: AbortController | undefined;
  let registered = false;
  let unwatch: (() => void) | undefined;
  let address = "";
  // For snapshots only: when the registration in force landed, and failures.
  let registeredAt: number | undefined;
  const failures = 0;
  let lastError: string | undefined;
  // The first attempt's failure, reported to start() while it waits.
  let onFirstFailure: ((error: unknown) => void) | undefined;

  const where = () => {
    const endpoints = reg.registry.endpoints;
    return `registry ${JSON.stringify(reg.registry.name)}${
      endpoints === undefined || endpoints.length === 0
        ? ""
        : ` (endpoints ${endpoints.join(", ")})`
    }`;
  };

  // registerUntilDone retries until a registration lands or `signal` aborts.
  async function registerUntilDone(signal: AbortSignal): Promise<Registered | undefined> {
    for (let failures = 0; !signal.aborted; ) {
      const attempt = reg!.registry.register({
        service: reg!.service,
        instanceId,
        address,
        metadata: { id: instanceId, ...reg!.metadata },
      });
      try {
        const handle = await abortable(attempt, signal);
        if (handle === undefined) {
          // Given up on while in flight: take it down if it lands after all.
          attempt.then((h) => h.deregister()).catch(() => {});
          return undefined;
        }
        return handle;
      } catch (error) {
        if (signal.aborted) return undefined;
        failures++;
        lastError = ConnectError.from(error).rawMessage;
        onFirstFailure?.(error);
        deps.onEvent({ type: "error", error });
        await backgroundSleep(clock, backoff.delayMs(++failures), signal);
      }
    }
    return undefined;
  }

  const apply = (serving: boolean) => {
    if (!serving) registering?.abort();
    current = current
      .catch(() => undefined)
      .then(async (handle) => {
        if (serving && handle === undefined) {
          const ac = new AbortController();
          registering = ac;
          try {
            const h = await registerUntilDone(ac.signal);
            registered = h !== undefined;
            if (registered) registeredAt = clock.now();
            return h;
          } finally {
            if (registering === ac) registering = undefined;
          }
        }
        if (!serving && handle !== undefined) {
          registered = false;
          registeredAt = undefined;
          await handle.deregister();
          return undefined;
        }
        return handle;
      });
    return current;
  };

  return {
    async start(health, boundAddress) {
      address = reg.advertiseAddress ?? boundAddress;
      const serving = health.get("") === ServingStatus.SERVING;
      unwatch = health.watch("", (s) => {
        apply(s === ServingStatus.SERVING).catch(() => {});
      });
      if (!serving) return;
      let timer: ClockTimer | undefined;
      const outcome = await new Promise<{ error?: unknown; timedOut?: true }>((resolve) => {
        onFirstFailure = (error) => resolve({ error });
        timer = clock.setTimeout(() => resolve({ timedOut: true }), timeoutMs);
        apply(true).then(
          () => resolve({}),
          (error: unknown) => resolve({ error }),
        );
      });
      clock.clearTimeout(timer);
      onFirstFailure = undefined;
      if (outcome.error === undefined && outcome.timedOut === undefined) return;
      const why =
        outcome.timedOut === true
          ? `did not complete within ${timeoutMs} ms`
          : `failed: ${ConnectError.from(outcome.error).rawMessage}`;
      const message = `registration of service ${JSON.stringify(reg.service)} with ${where()} ${why}`;
      if (mode === "fail") {
        registering?.abort();
        throw new ConnectError(message, Code.Unavailable, undefined, undefined, outcome.error);
      }
      deps.warn(
        { service: reg.service, registry: reg.registry.name, instance_id: instanceId },
        `${message}; serving anyway and retrying in the background`,
      );
    },
    async deregister() {
      unwatch?.();
      await apply(false).catch(() => {});
    },
    isRegistered: () => registered,
    snapshot: () =>
      Object.freeze({
        registry: reg.registry.name,
        service: reg.service,
        instanceId,
        address: address === "" ? null : address,
        state: registered
          ? "registered"
          : registering !== undefined
            ? "registering"
            : "deregistered",
        registeredAt: registered && registeredAt !== undefined ? registeredAt : null,
        failures,
        lastError: lastError ?? null,
      }),
  };
}

/** validateRegistration throws RangeError/TypeError quoting a bad registration option. */
export function validateRegistration(reg: MeshServerRegistration | undefined): void {
  if (reg === undefined) return;
  if (typeof reg.registry?.register !== "function") {
    throw new TypeError("createMeshServer: registration.registry must be a ServiceRegistry");
  }
  if (typeof reg.service !== "string" || reg.service === "") {
    throw new TypeError(
      `registration.service ${JSON.stringify(reg.service)} must be a non-empty string`,
    );
  }
  if (reg.deregisterDelayMs !== undefined && !(reg.deregisterDelayMs >= 0)) {
    throw new RangeError(`registration.deregisterDelayMs ${reg.deregisterDelayMs} must be >= 0`);
  }
  if (
    reg.timeoutMs !== undefined &&
    !(reg.timeoutMs > 0 && reg.timeoutMs <= MAX_TIMER_DELAY_MS && Number.isFinite(reg.timeoutMs))
  ) {
    throw new RangeError(
      `registration.timeoutMs ${reg.timeoutMs} must be in 1..${MAX_TIMER_DELAY_MS}`,
    );
  }
  if (
    reg.onUnavailable !== undefined &&
    reg.onUnavailable !== "fail" &&
    reg.onUnavailable !== "retry-in-background"
  ) {
    throw new TypeError(
      `registration.onUnavailable ${JSON.stringify(reg.onUnavailable)} must be "fail" or "retry-in-background"`,
    );
  }
  if (reg.retryBackoff !== undefined) createBackoff(reg.retryBackoff);
}

// abortable settles with the promise's value, or undefined once `signal` aborts.
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
