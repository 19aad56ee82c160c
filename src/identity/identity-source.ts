import { type FSWatcher, readFileSync, type Stats, statSync, watch } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { BACKGROUND, type Clock, type ClockTimer, systemClock } from "../clock.js";
import { defaultLogger, SILENT_LOGGER } from "../default-logger.js";
import type { IdentityEvent } from "./identity-events.js";
import {
  type IdentityMaterial,
  IdentityMaterialError,
  type IdentityPem,
  validateIdentityMaterial,
} from "./identity-material.js";

/** IdentityFiles name the PEM files of an identity, as SPIRE's helper or cert-manager write them. */
export interface IdentityFiles {
  /** keyFile holds the private key. */
  readonly keyFile: string;
  /** certFile holds the certificate chain, leaf first. */
  readonly certFile: string;
  /** caFile holds the trust bundle. */
  readonly caFile: string;
}

/** IdentitySourceOptions: PEM values (`key`, `cert`, `ca`) or files (`keyFile`, `certFile`, `caFile`). */
export type IdentitySourceOptions = (IdentityPem | IdentityFiles) & {
  /**
   * pollIntervalMs is how often the files are stat'ed besides fs.watch
   * (which misses changes on some file systems and mounts); default 10_000.
   */
  readonly pollIntervalMs?: number;
  /**
   * debounceMs waits this long after a file event before reading, so that a
   * writer replacing key and certificate one after the other is read once;
   * default 100.
   */
  readonly debounceMs?: number;
  /** clock drives the poll and debounce timers (background timers); default the system clock. */
  readonly clock?: Clock;
  /** wallTimeMs returns the wall-clock time certificates are checked against; default Date.now. */
  readonly wallTimeMs?: () => number;
  /** logger logs rotations (info) and rejected files (error); default the mesh's default logger; false: none. */
  readonly logger?: Logger | false;
  /** onEvent receives every rotation and rejection. */
  readonly onEvent?: (event: IdentityEvent) => void;
};

/**
 * IdentitySource holds a workload's current identity (key, certificate
 * chain, trust bundle) and replaces it when new material arrives: from the
 * watched files, or from `update()`. New material is validated first; bad
 * material is rejected (logged, reported) and the old identity kept.
 */
export interface IdentitySource {
  /** current is the identity in use now. */
  readonly current: IdentityMaterial;
  /**
   * update replaces the identity with new PEM material, after validation;
   * it throws an IdentityMaterialError (and reports a rejection) when the
   * material is bad, keeping the old identity.
   */
  update(pem: IdentityPem): IdentityMaterial;
  /**
   * reload re-reads the files now (file sources) and resolves with whether
   * the identity changed; it never rejects: bad files are reported.
   */
  reload(): Promise<boolean>;
  /** onEvent adds a listener for rotations and rejections; the returned function removes it. */
  onEvent(listener: (event: IdentityEvent) => void): () => void;
  /** close stops watching the files. Idempotent. */
  close(): void;
  [Symbol.dispose](): void;
}

/** IDENTITY_SOURCE_DEFAULTS are the identity source's timing defaults. */
export const IDENTITY_SOURCE_DEFAULTS = {
  pollIntervalMs: 10_000,
  debounceMs: 100,
} as const;

function isFiles(o: object): o is IdentityFiles {
  return "keyFile" in o || "certFile" in o || "caFile" in o;
}

function signature(s: Stats): string {
  return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
}

function validateOptions(options: IdentitySourceOptions): void {
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      "createIdentitySource: options must be { key, cert, ca } or { keyFile, certFile, caFile }",
    );
  }
  if (isFiles(options)) {
    for (const name of ["keyFile", "certFile", "caFile"] as const) {
      const v = options[name];
      if (typeof v !== "string" || v === "") {
        throw new TypeError(
          `createIdentitySource: ${name} ${JSON.stringify(v)} must be a file path`,
        );
      }
    }
  } else {
    for (const name of ["key", "cert", "ca"] as const) {
      const v = (options as IdentityPem)[name];
      if (typeof v !== "string" && !Buffer.isBuffer(v)) {
        throw new TypeError(`createIdentitySource: ${name} must be PEM text (a string or Buffer)`);
      }
    }
  }
  for (const name of ["pollIntervalMs", "debounceMs"] as const) {
    const v = options[name];
    if (v !== undefined && !(typeof v === "number" && v >= 0 && Number.isFinite(v))) {
      throw new RangeError(`createIdentitySource: ${name} ${v} must be a finite number >= 0`);
    }
  }
}

/**
 * createIdentitySource loads a workload identity and keeps it current. With
 * files it watches their directories (fs.watch, which also sees Kubernetes'
 * symlink swaps of mounted secrets) and stats them every `pollIntervalMs`
 * as a fallback; timers are background timers that never keep the process
 * alive. The first material must be valid: a TypeError or an
 * IdentityMaterialError is thrown otherwise.
 */
export function createIdentitySource(options: IdentitySourceOptions): IdentitySource {
  validateOptions(options);
  const clock = options.clock ?? systemClock;
  const wallTimeMs = options.wallTimeMs ?? Date.now;
  const logger = options.logger === false ? SILENT_LOGGER : (options.logger ?? defaultLogger());
  const listeners = new Set<(event: IdentityEvent) => void>();
  if (options.onEvent !== undefined) listeners.add(options.onEvent);
  const files = isFiles(options) ? options : undefined;

  const readSync = (f: IdentityFiles): IdentityPem => ({
    key: readFileSync(f.keyFile),
    cert: readFileSync(f.certFile),
    ca: readFileSync(f.caFile),
  });
  let current = validateIdentityMaterial(
    files === undefined ? (options as IdentityPem) : readSync(files),
    wallTimeMs(),
  );
  let lastSignature = files === undefined ? "" : statSignatureSync(files);

  const emit = (event: IdentityEvent) => {
    for (const l of listeners) {
      try {
        l(event);
      } catch {
        // A listener's failure must not stop a rotation.
      }
    }
  };

  const accept = (pem: IdentityPem): { material: IdentityMaterial; changed: boolean } => {
    let next: IdentityMaterial;
    try {
      next = validateIdentityMaterial(pem, wallTimeMs());
    } catch (e) {
      const error = e instanceof Error ? e : new IdentityMaterialError(String(e));
      logger.error(
        {
          event: "identity.rejected",
          reason: error.message,
          kept_spiffe_id: current.spiffeId,
          kept_fingerprint256: current.fingerprint256,
        },
        "identity rejected: keeping the current certificate",
      );
      emit({
        type: "identity-rejected",
        reason: error.message,
        error,
        keptFingerprint256: current.fingerprint256,
      });
      throw error;
    }
    if (next.key === current.key && next.cert === current.cert && next.ca === current.ca) {
      return { material: current, changed: false };
    }
    const previous = current;
    current = next;
    logger.info(
      {
        event: "identity.rotated",
        spiffe_id: next.spiffeId,
        fingerprint256: next.fingerprint256,
        previous_fingerprint256: previous.fingerprint256,
        valid_to: new Date(next.validToMs).toISOString(),
      },
      "identity rotated",
    );
    emit({
      type: "identity-rotated",
      spiffeId: next.spiffeId,
      fingerprint256: next.fingerprint256,
      previousFingerprint256: previous.fingerprint256,
      validToMs: next.validToMs,
    });
    return { material: next, changed: true };
  };

  let closed = false;
  let pollTimer: ClockTimer | undefined;
  let debounceTimer: ClockTimer | undefined;
  let checking: Promise<boolean> | undefined;
  let again = false;
  const watchers: FSWatcher[] = [];

  // check reads the files when their stat signature changed; one at a time.
  const check = (force: boolean): Promise<boolean> => {
    if (files === undefined) return Promise.resolve(false);
    if (checking !== undefined) {
      again = true;
      return checking;
    }
    checking = (async () => {
      let changed = false;
      do {
        again = false;
        try {
          const sig = await statSignature(files);
          if (!force && sig === lastSignature) continue;
          const [key, cert, ca] = await Promise.all([
            readFile(files.keyFile),
            readFile(files.certFile),
            readFile(files.caFile),
          ]);
          lastSignature = sig;
          try {
            changed = accept({ key, cert, ca }).changed || changed;
          } catch {
            // Reported by accept; the signature is kept so a bad set is reported once.
          }
        } catch (e) {
          // A file is missing for a moment (being replaced): the next event or poll reads it.
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== "ENOENT" && code !== "EACCES") {
            logger.warn(
              { event: "identity.read-failed", err: e },
              "identity files could not be read",
            );
          }
        }
        force = false;
      } while (again && !closed);
      return changed;
    })().finally(() => {
      checking = undefined;
    });
    return checking;
  };

  const schedulePoll = (pollMs: number) => {
    if (closed || pollMs === 0) return;
    pollTimer = clock.setTimeout(
      () => {
        pollTimer = undefined;
        void check(false).finally(() => schedulePoll(pollMs));
      },
      pollMs,
      BACKGROUND,
    );
  };

  if (files !== undefined) {
    const debounceMs = options.debounceMs ?? IDENTITY_SOURCE_DEFAULTS.debounceMs;
    const onChange = () => {
      if (closed || debounceTimer !== undefined) return;
      debounceTimer = clock.setTimeout(
        () => {
          debounceTimer = undefined;
          void check(false);
        },
        debounceMs,
        BACKGROUND,
      );
    };
    const dirs = new Set([files.keyFile, files.certFile, files.caFile].map((f) => dirname(f)));
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, onChange);
        w.on("error", () => {
          // The directory went away; the poll still runs.
        });
        watchers.push(w);
      } catch {
        // No inotify here (or too many watches): polling alone.
      }
    }
    schedulePoll(options.pollIntervalMs ?? IDENTITY_SOURCE_DEFAULTS.pollIntervalMs);
  }

  const close = () => {
    if (closed) return;
    closed = true;
    for (const w of watchers) w.close();
    if (pollTimer !== undefined) clock.clearTimeout(pollTimer);
    if (debounceTimer !== undefined) clock.clearTimeout(debounceTimer);
    listeners.clear();
  };

  return {
    get current() {
      return current;
    },
    update(pem) {
      return accept(pem).material;
    },
    reload() {
      return check(true);
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    close,
    [Symbol.dispose]: close,
  };
}

function statSignatureSync(f: IdentityFiles): string {
  return [f.keyFile, f.certFile, f.caFile].map((p) => signature(statSync(p))).join("|");
}

async function statSignature(f: IdentityFiles): Promise<string> {
  const all = await Promise.all([f.keyFile, f.certFile, f.caFile].map((p) => stat(p)));
  return all.map(signature).join("|");
}
