import { type FSWatcher, readFileSync, watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { Logger } from "pino";
import { type Clock, createWakeTimer, systemClock } from "../clock.js";
import { type AuthorizationPolicy, createAuthorizationPolicy } from "./authorization-policy.js";
import type { AuthorizationSource } from "./authorization-source.js";

/** AuthorizationFileEvent reports a reload of a watched policy file. */
export type AuthorizationFileEvent =
  | {
      readonly type: "authz-policy-loaded";
      readonly path: string;
      readonly version: number;
      readonly rules: number;
    }
  | {
      readonly type: "authz-policy-rejected";
      readonly path: string;
      /** version is the policy still in force. */
      readonly version: number;
      readonly error: AuthorizationPolicyFileError;
    };

/** AuthorizationFileSourceOptions configures createAuthorizationFileSource. */
export interface AuthorizationFileSourceOptions {
  /** path is the JSON policy file (AuthorizationPolicyOptions). */
  readonly path: string;
  /**
   * pollIntervalMs re-reads the file this often in case fs.watch missed a
   * change (network file systems, a directory replaced under it); default
   * 1_000, >= 10.
   */
  readonly pollIntervalMs?: number;
  /** logger gets a line per reload (info) and per rejected file (error); default none. */
  readonly logger?: Logger;
  /** onEvent receives every reload and rejection. */
  readonly onEvent?: (event: AuthorizationFileEvent) => void;
  /** clock drives the poll and debounce timers; default the system clock. */
  readonly clock?: Clock;
}

/** AuthorizationFileSource is an AuthorizationSource that follows a JSON file. */
export interface AuthorizationFileSource extends AuthorizationSource, Disposable {
  /** version counts the policies loaded, 1 for the one read at creation. */
  readonly version: number;
  /** reload reads the file now; resolves true when a new policy took effect. */
  reload(): Promise<boolean>;
  /** close stops watching; the last policy stays in force. */
  close(): void;
}

/** AuthorizationPolicyFileError says why a policy file was not loaded; `cause` has the details. */
export class AuthorizationPolicyFileError extends Error {
  /** path is the file that was read. */
  readonly path: string;
  constructor(path: string, cause: unknown) {
    super(
      `authorization policy file ${JSON.stringify(path)}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = "AuthorizationPolicyFileError";
    this.path = path;
  }
}

/** AUTHORIZATION_FILE_DEFAULTS are the defaults documented on AuthorizationFileSourceOptions. */
export const AUTHORIZATION_FILE_DEFAULTS = Object.freeze({
  pollIntervalMs: 1_000,
});

// An editor or a `mv` produces several events per save: read once after they settle.
const DEBOUNCE_MS = 20;

/**
 * createAuthorizationFileSource loads a JSON policy file now (throwing
 * AuthorizationPolicyFileError when it is missing or bad, so a server is not
 * started without its policy) and then follows it: when fs.watch reports a
 * change, and every `pollIntervalMs` regardless, the file is read again and,
 * if its text changed, compiled and swapped in whole. A file that cannot be
 * read, parsed or validated is logged at error and reported as an
 * `authz-policy-rejected` event; the previous policy stays in force. Write
 * the file atomically (write a temp file, then rename) so readers never see
 * half of it; a half-written file is rejected and picked up once complete.
 *
 * The watch and the timers do not keep the process alive; `close()` stops them.
 */
export function createAuthorizationFileSource(
  options: AuthorizationFileSourceOptions,
): AuthorizationFileSource {
  const path = options.path;
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`path ${JSON.stringify(path)} must be a file path`);
  }
  const pollIntervalMs = options.pollIntervalMs ?? AUTHORIZATION_FILE_DEFAULTS.pollIntervalMs;
  if (!(Number.isFinite(pollIntervalMs) && pollIntervalMs >= 10)) {
    throw new RangeError(`pollIntervalMs ${pollIntervalMs} must be >= 10`);
  }
  const clock = options.clock ?? systemClock;
  const logger = options.logger;

  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new AuthorizationPolicyFileError(path, e);
  }
  let policy = parsePolicy(path, text);
  let version = 1;
  let lastText = text;
  let closed = false;
  let reading: Promise<boolean> | undefined;
  let again = false;

  const emit = (event: AuthorizationFileEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A throwing listener must not stop the watch.
    }
  };

  const readOnce = async (): Promise<boolean> => {
    let next: string;
    try {
      next = await readFile(path, "utf8");
    } catch (e) {
      reject(new AuthorizationPolicyFileError(path, e), "");
      return false;
    }
    if (closed) return false;
    if (next === lastText) {
      // Back to the policy in force (a bad edit undone): report the next bad one again.
      rejectedText = undefined;
      return false;
    }
    let compiled: AuthorizationPolicy;
    try {
      compiled = parsePolicy(path, next);
    } catch (e) {
      reject(e as AuthorizationPolicyFileError, next);
      return false;
    }
    policy = compiled;
    lastText = next;
    rejectedText = undefined;
    version++;
    logger?.info(
      { event: "authz.policy-loaded", path, version, rules: compiled.rules.length },
      "authorization policy loaded",
    );
    emit({ type: "authz-policy-loaded", path, version, rules: compiled.rules.length });
    return true;
  };

  // Report a bad file once, not on every poll: remember the text rejected.
  let rejectedText: string | undefined;
  const reject = (error: AuthorizationPolicyFileError, badText: string) => {
    if (rejectedText === badText) return;
    rejectedText = badText;
    logger?.error(
      { event: "authz.policy-rejected", path, version, err: error },
      "authorization policy file rejected; the previous policy stays in force",
    );
    emit({ type: "authz-policy-rejected", path, version, error });
  };

  const reload = (): Promise<boolean> => {
    if (reading !== undefined) {
      again = true;
      return reading;
    }
    reading = readOnce().finally(() => {
      reading = undefined;
      if (again) {
        again = false;
        schedule(0);
      }
    });
    return reading;
  };

  // One timer serves debounce and poll.
  const wake = createWakeTimer(clock, () => {
    void reload().finally(() => schedule(pollIntervalMs));
  });
  const schedule = (delayMs: number) => {
    if (!closed) wake.wakeIn(delayMs);
  };

  // Watch the directory, not the file: an atomic rename replaces the file's
  // inode, and a watch on the old inode would go quiet.
  let watcher: FSWatcher | undefined;
  const name = basename(path);
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, changed) => {
      if (changed === null || changed === name) schedule(DEBOUNCE_MS);
    });
    watcher.on("error", () => {
      watcher?.close();
      watcher = undefined;
    });
  } catch {
    // No watch (inotify limits): the poll carries on alone.
    watcher = undefined;
  }
  schedule(pollIntervalMs);

  const close = () => {
    closed = true;
    watcher?.close();
    watcher = undefined;
    wake.cancel();
  };

  return {
    current: () => policy,
    get version() {
      return version;
    },
    reload,
    close,
    [Symbol.dispose]: close,
  };
}

function parsePolicy(path: string, text: string): AuthorizationPolicy {
  try {
    return createAuthorizationPolicy(JSON.parse(text));
  } catch (e) {
    throw new AuthorizationPolicyFileError(path, e);
  }
}
