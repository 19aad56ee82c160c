import { type FSWatcher, watch } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { type Clock, createWakeTimer } from "../clock.js";
import { createEndpoint, createEndpointSet, type EndpointSet } from "./endpoint.js";
import { type ScannedRecord, scanServiceDir } from "./mesh-registry-store.js";
import type { Resolver, ResolverEvent, ResolverListener } from "./resolver.js";

/**
 * MESH_REGISTRY_DEBOUNCE_MS coalesces a burst of file events into one scan:
 * every write is a temp-file create, a write and a rename (3-5 events), and a
 * fleet starting up writes many records at once.
 */
export const MESH_REGISTRY_DEBOUNCE_MS = 20;

// Rescan this long after the earliest expiresAt, so that the timer firing a
// hair early (timers and the wall clock are different clocks) cannot leave
// the record looking alive until the next poll.
const EXPIRY_MARGIN_MS = 5;

/** MeshRegistryResolverOptions configures createMeshRegistryResolver. */
export interface MeshRegistryResolverOptions {
  /** serviceDir is `<registry dir>/<service>`; created if missing. */
  readonly serviceDir: string;
  /** target names the resolver in events (`mesh:///orders`). */
  readonly target: string;
  /** pollMs is the fallback rescan period for events fs.watch missed. */
  readonly pollMs: number;
  /** gcAfterMs: records expired for longer than this are deleted by scans. */
  readonly gcAfterMs: number;
  /** clock drives timers and `resolvedAt`. */
  readonly clock: Clock;
  /** prepare runs before each scan (checks the registry root); a throw fails the scan. */
  readonly prepare?: () => Promise<void>;
}

/**
 * createMeshRegistryResolver resolves one service of the mesh registry. It
 * scans the service directory on start, then rescans when fs.watch reports a
 * change (debounced by MESH_REGISTRY_DEBOUNCE_MS), when the earliest record
 * expires, and every `pollMs` regardless, because fs.watch can miss events
 * (network file systems, inotify limits, a directory replaced under it).
 *
 * A snapshot is pushed only when the endpoints (address, weight, metadata)
 * changed. An empty directory is an authoritative empty set; a scan that fails
 * (including one that finds the directory gone after start) keeps the
 * last-known endpoints, marks them stale and reports `error` and `stale`
 * events. Bad files are reported once per file and reason as
 * `bad-record` events and skipped. Two records with one address (a replica
 * restarted under a new id before its old record expired) yield one endpoint,
 * from the record renewed last.
 */
export function createMeshRegistryResolver(options: MeshRegistryResolverOptions): Resolver {
  const { serviceDir, target, pollMs, gcAfterMs, clock, prepare } = options;
  let listener: ResolverListener | undefined;
  let closed = false;
  let scanning: Promise<void> | undefined;
  let rescanRequested = false;
  let watcher: FSWatcher | undefined;
  let watchedIdentity: string | undefined;
  let watchFailing = false;
  let created = false;
  let lastKey: string | undefined;
  let last: EndpointSet | undefined;
  let staleSince: number | undefined;
  // Bad files already reported, with the reason, so a garbage file is one
  // event, not one per poll.
  let reportedBad = new Map<string, string>();

  const emit = (event: ResolverEvent) => {
    try {
      listener?.onEvent?.(event);
    } catch {
      // A throwing event listener must not stop resolution.
    }
  };

  const push = (set: EndpointSet) => {
    last = set;
    try {
      listener?.onUpdate(set);
    } catch (error) {
      emit({ type: "error", target, error });
    }
  };

  // One timer serves debounce, expiry and poll.
  const wake = createWakeTimer(clock, () => runScan());
  const schedule = (delayMs: number) => {
    if (!closed) wake.wakeIn(delayMs);
  };

  const runScan = () => {
    if (closed) return;
    if (scanning !== undefined) {
      rescanRequested = true;
      return;
    }
    scanning = scanOnce().finally(() => {
      scanning = undefined;
      if (rescanRequested) {
        rescanRequested = false;
        schedule(0);
      }
    });
  };

  // (Re)establishes the watch when there is none or the directory was
  // replaced (a watch follows the inode, not the path). A watch that cannot be
  // set up (ENOSPC: inotify limit) is reported once; polling carries on.
  const ensureWatch = async () => {
    // Created once, so there is something to watch before the first
    // registration. A directory that vanishes later is an outage, not an
    // empty service: live registrars recreate it on their next renewal.
    if (!created) {
      await mkdir(serviceDir, { recursive: true, mode: 0o700 });
      created = true;
    }
    // Birth time as well as inode: file systems reuse a deleted directory's
    // inode number for the next one created.
    const st = await stat(serviceDir);
    const identity = `${st.ino}:${st.birthtimeMs}`;
    if (closed || (watcher !== undefined && identity === watchedIdentity)) return;
    dropWatch();
    try {
      const w = watch(serviceDir, { persistent: false }, () => schedule(MESH_REGISTRY_DEBOUNCE_MS));
      w.on("error", (error) => {
        w.close();
        if (watcher === w) watcher = undefined;
        // No immediate rescan (a watch failing at once would spin): the poll
        // timer is always pending, and its scan sets up a new watch.
        emit({ type: "error", target, error });
      });
      watcher = w;
      watchedIdentity = identity;
      watchFailing = false;
    } catch (error) {
      if (!watchFailing) emit({ type: "error", target, error });
      watchFailing = true;
    }
  };

  const dropWatch = () => {
    watcher?.close();
    watcher = undefined;
  };

  const scanOnce = async () => {
    let records: readonly ScannedRecord[];
    try {
      await prepare?.();
      await ensureWatch();
      const scan = await scanServiceDir(serviceDir, { wallNow: Date.now(), gcAfterMs });
      if (closed) return;
      reportBad(scan.bad);
      for (const error of scan.gcErrors) emit({ type: "error", target, error });
      records = scan.records;
    } catch (error) {
      if (closed) return;
      // The directory may be gone or replaced, leaving the watch on a dead
      // inode; the next good scan sets up a fresh one.
      dropWatch();
      fail(error);
      schedule(pollMs);
      return;
    }
    publish(records);
    let nextMs = pollMs;
    for (const r of records) {
      nextMs = Math.min(nextMs, Math.max(0, r.expiresAt - Date.now()) + EXPIRY_MARGIN_MS);
    }
    schedule(nextMs);
  };

  const reportBad = (bad: readonly { path: string; reason: string }[]) => {
    const now = new Map<string, string>();
    for (const { path, reason } of bad) {
      now.set(path, reason);
      if (reportedBad.get(path) !== reason) {
        emit({ type: "bad-record", target, record: path, reason });
      }
    }
    reportedBad = now;
  };

  const publish = (records: readonly ScannedRecord[]) => {
    const byAddress = new Map<string, ScannedRecord>();
    for (const r of records) {
      const seen = byAddress.get(r.address);
      if (seen === undefined || r.expiresAt > seen.expiresAt) byAddress.set(r.address, r);
    }
    const chosen = [...byAddress.values()].sort((a, b) =>
      a.address < b.address ? -1 : a.address > b.address ? 1 : 0,
    );
    const key = JSON.stringify(
      chosen.map((r) => [r.address, r.weight, Object.entries(r.metadata).sort()]),
    );
    if (key === lastKey && staleSince === undefined) return;
    lastKey = key;
    staleSince = undefined;
    push(
      createEndpointSet(
        chosen.map((r) => createEndpoint(r.address, { weight: r.weight, metadata: r.metadata })),
        clock.now(),
      ),
    );
  };

  const fail = (error: unknown) => {
    emit({ type: "error", target, error });
    // Never replace endpoints with nothing because the source broke; serve
    // the last-known set, marked stale, until a scan succeeds again.
    if (last !== undefined && staleSince === undefined) {
      staleSince = clock.now();
      push(createEndpointSet(last.endpoints, staleSince, staleSince));
      emit({ type: "stale", target, sinceMs: staleSince });
    }
  };

  return {
    start(l) {
      if (listener !== undefined) throw new Error(`resolver for ${target} already started`);
      if (closed) throw new Error(`resolver for ${target} is closed`);
      listener = l;
      runScan();
    },
    resolveNow() {
      if (listener !== undefined) schedule(0);
    },
    async close() {
      closed = true;
      wake.cancel();
      dropWatch();
      // Let an in-flight scan finish its I/O so nothing outlives close().
      await scanning;
    },
  };
}
