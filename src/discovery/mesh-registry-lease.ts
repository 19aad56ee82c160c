import { BACKGROUND, type Clock, type ClockTimer } from "../clock.js";
import { formatMeshRegistryRecord } from "./mesh-registry-record.js";
import { recordPath, removeRecord, writeRecordAtomically } from "./mesh-registry-store.js";
import type { Registration, RegistryEvent } from "./registry.js";

/**
 * LEASE_RENEWALS_PER_TTL is how often a lease is rewritten per TTL. Three
 * gives a live registrar two more tries after a failed write (a full disk, a
 * stalled event loop) before readers see its record expire.
 */
export const LEASE_RENEWALS_PER_TTL = 3;

/** MeshRegistryLeaseOptions configures startMeshRegistryLease. */
export interface MeshRegistryLeaseOptions {
  readonly serviceDir: string;
  readonly registration: Registration;
  readonly leaseTtlMs: number;
  readonly clock: Clock;
  readonly onEvent: (event: RegistryEvent) => void;
}

/** MeshRegistryLease is one registration kept alive by a heartbeat. */
export interface MeshRegistryLease {
  /** stop ends the heartbeat and deletes the record; idempotent. */
  stop(): Promise<void>;
}

/**
 * startMeshRegistryLease writes the registration's record and renews it every
 * `leaseTtlMs / 3`. It resolves once the first write has landed, and rejects
 * (leaving nothing behind) if that write fails. A later failed renewal is an
 * `error` event; a record that lapsed before it could be renewed (event loop
 * stalled, writes failing for a whole TTL) is `lease-lost`, and the renewal
 * that brings it back is `re-registered`.
 */
export async function startMeshRegistryLease(
  options: MeshRegistryLeaseOptions,
): Promise<MeshRegistryLease> {
  const { serviceDir, registration, leaseTtlMs, clock, onEvent } = options;
  const path = recordPath(serviceDir, registration.instanceId);
  const renewEveryMs = leaseTtlMs / LEASE_RENEWALS_PER_TTL;
  let expiresAt = 0;
  let lost = false;
  let stopped = false;
  let timer: ClockTimer | undefined;
  let writing: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  // Wall time, not the injected clock: expiresAt is read by other processes
  // (see MeshRegistryRecord.expiresAt).
  const write = async () => {
    const next = Date.now() + leaseTtlMs;
    await writeRecordAtomically(
      serviceDir,
      registration.instanceId,
      formatMeshRegistryRecord(registration, next),
    );
    expiresAt = next;
  };

  const renew = async () => {
    try {
      await write();
      if (lost) {
        lost = false;
        onEvent({ type: "re-registered", registration });
      }
    } catch (error) {
      if (Date.now() >= expiresAt && !lost) {
        lost = true;
        onEvent({ type: "lease-lost", registration, error });
      } else {
        onEvent({ type: "error", error });
      }
    }
  };

  const schedule = () => {
    timer = clock.setTimeout(
      () => {
        timer = undefined;
        if (stopped) return;
        if (Date.now() >= expiresAt && !lost) {
          // Readers may already have dropped us; say so even if this renewal works.
          lost = true;
          onEvent({ type: "lease-lost", registration });
        }
        writing = renew().finally(() => {
          writing = undefined;
          if (!stopped) schedule();
        });
      },
      renewEveryMs,
      BACKGROUND,
    );
  };

  await write();
  schedule();

  return {
    stop() {
      stopping ??= (async () => {
        stopped = true;
        if (timer !== undefined) clock.clearTimeout(timer);
        // A renewal in flight would rename the record back after our unlink.
        await writing;
        await removeRecord(path);
      })();
      return stopping;
    },
  };
}
