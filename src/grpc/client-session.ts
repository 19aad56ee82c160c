import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { MAX_TIMER_DELAY_MS } from "../clock.js";
import { type ClientIdentity, createClientIdentity } from "../identity/client-identity.js";
import type { IdentitySource } from "../identity/identity-source.js";
import {
  refusalOfGoawayData,
  type TlsRefusal,
  tlsAlertOf,
  tlsRefusalError,
} from "../identity/tls-refusal.js";
import { CLIENT_CONNECTION_WINDOW, grantConnectionWindow } from "./connection-window.js";

/** ClientSessionState is the connection state of one endpoint, as connect-node names it. */
export type ClientSessionState = "closed" | "connecting" | "open" | "idle" | "error";

/** ClientSessionOptions configures the HTTP/2 connection to one endpoint. */
export interface ClientSessionOptions {
  /** tls connects with TLS, ALPN h2; node:tls client options. Default: cleartext h2c. */
  readonly tls?: http2.SecureClientSessionOptions | undefined;
  /** pingIntervalMs sends a PING this often while calls are open; default none. */
  readonly pingIntervalMs?: number | undefined;
  /** pingTimeoutMs closes the connection (calls fail UNAVAILABLE) if a PING is not answered in time; default 15 s. */
  readonly pingTimeoutMs?: number | undefined;
  /** idleConnectionTimeoutMs closes a connection without calls after this long; default 15 min. */
  readonly idleConnectionTimeoutMs?: number | undefined;
  /** connectTimeoutMs bounds connection establishment; default 20 s. */
  readonly connectTimeoutMs?: number | undefined;
  /** settings are extra HTTP/2 settings sent to the server. */
  readonly settings?: http2.Settings | undefined;
  /**
   * identity connects with mutual TLS as this workload (createIdentitySource):
   * each new connection presents the current certificate and verifies the
   * server against the current trust bundle and its SPIFFE ID (not its host
   * name). After a rotation, new calls go to a new connection; calls on the
   * old one finish there.
   */
  readonly identity?: IdentitySource | undefined;
  /**
   * serverIdentities are the server SPIFFE IDs accepted (`spiffe://a/sa/orders`),
   * or trust domains (`spiffe://a`: any of its workloads); default any
   * workload of the client's own trust domain. Any other fails UNAVAILABLE
   * naming the identity presented. Needs `identity`.
   */
  readonly serverIdentities?: readonly string[] | undefined;
}

type TimingOptions = Required<
  Omit<ClientSessionOptions, "tls" | "settings" | "identity" | "serverIdentities">
>;

/** CLIENT_SESSION_DEFAULTS are connect-node's Http2SessionManager defaults, kept for parity. */
export const CLIENT_SESSION_DEFAULTS = {
  pingIntervalMs: Number.POSITIVE_INFINITY,
  pingTimeoutMs: 15_000,
  idleConnectionTimeoutMs: 15 * 60_000,
  connectTimeoutMs: 20_000,
} as const;

function timer(fn: () => void, ms: number): NodeJS.Timeout | undefined {
  // Node fires longer timers after 1 ms; longer means never here.
  if (!(ms <= MAX_TIMER_DELAY_MS)) return undefined;
  const t = setTimeout(fn, ms);
  t.unref();
  return t;
}

// node:http2 copies the request options and fills in the priority defaults
// it finds missing; passing them already set (its own defaults: weight 16,
// no parent, not exclusive, not silent) skips adding four properties to the
// copy on every request, a few µs per call on Node 20.
// Node 22 deprecates priority signaling (RFC 9113) and warns (DEP0194) once
// a request names a weight, so the weight is preset on Node 20 only.
// (Not frozen: node only reads and copies it.)
const PRESET_WEIGHT = Number(process.versions.node.split(".")[0]) < 22;
const REQUEST_OPTIONS: Readonly<http2.ClientSessionRequestOptions & { silent: boolean }> = {
  endStream: false,
  ...(PRESET_WEIGHT ? { weight: 16 } : {}),
  parent: 0,
  exclusive: false,
  silent: false,
};

/**
 * ConnectionAttempt says whether a session ever connected: a stream failed
 * on a session that never did provably never reached the server.
 */
export class SessionEntry {
  connected = false;
  /** draining is set on GOAWAY: the session takes no new streams. */
  draining = false;
  streams = 0;
  error: Error | undefined;
  /** refusal is set when the server refused the connection in a GOAWAY (a mesh server refusing the client certificate). */
  refusal: TlsRefusal | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pingTimeout: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly session: http2.ClientHttp2Session,
    private readonly owner: ClientSession,
    private readonly opts: TimingOptions,
  ) {
    session.on("connect", () => {
      this.connected = true;
      grantConnectionWindow(session, CLIENT_CONNECTION_WINDOW);
      if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
      if (this.streams === 0) this.startIdle();
    });
    session.on("error", (err: Error) => {
      this.error = err;
    });
    session.on("goaway", (code: number, _last: number, data?: Buffer) => {
      if (code !== http2.constants.NGHTTP2_NO_ERROR) this.refusal ??= refusalOfGoawayData(data);
      this.draining = true;
      owner.retire(this);
      if (this.streams === 0) this.session.close();
    });
    session.on("close", () => {
      this.stopTimers();
      owner.retire(this);
    });
    // A failed connect must not crash the process when no stream listens.
    this.connectTimer = timer(() => {
      if (!this.connected && !session.destroyed) {
        session.destroy(
          new ConnectError(
            `connection to ${owner.authority} timed out after ${opts.connectTimeoutMs}ms`,
            Code.Unavailable,
          ),
          http2.constants.NGHTTP2_CANCEL,
        );
      }
    }, opts.connectTimeoutMs);
  }

  /**
   * refused is the error of a stream that closed without a status on a
   * connection the server refused (a TLS alert about the client certificate,
   * or a mesh server's refusing GOAWAY); undefined otherwise.
   */
  refused(streamError: Error | undefined): ConnectError | undefined {
    const r = this.refusal ?? tlsAlertOf(streamError) ?? tlsAlertOf(this.error);
    return r === undefined ? undefined : this.owner.refusalError(r, streamError ?? this.error);
  }

  /** usable says whether new streams may be opened on this session. */
  get usable(): boolean {
    return !this.draining && !this.session.closed && !this.session.destroyed;
  }

  acquire(): void {
    if (this.streams++ === 0) {
      this.session.ref();
      if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
      this.schedulePing();
    }
  }

  release(): void {
    if (--this.streams === 0) {
      this.stopPing();
      if (this.session.destroyed) return;
      if (this.draining) {
        this.session.close();
        return;
      }
      this.session.unref();
      this.startIdle();
    }
  }

  private startIdle(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = timer(() => {
      if (this.streams === 0) {
        this.draining = true;
        this.owner.retire(this);
        this.session.close();
      }
    }, this.opts.idleConnectionTimeoutMs);
  }

  private schedulePing(): void {
    if (this.pingTimer !== undefined || !Number.isFinite(this.opts.pingIntervalMs)) return;
    this.pingTimer = timer(() => {
      this.pingTimer = undefined;
      this.ping();
    }, this.opts.pingIntervalMs);
  }

  private ping(): void {
    if (this.session.destroyed || this.streams === 0) return;
    if (!this.connected) {
      this.schedulePing();
      return;
    }
    this.pingTimeout = timer(() => this.pingTimedOut(), this.opts.pingTimeoutMs);
    try {
      this.session.ping((err) => {
        if (this.pingTimeout !== undefined) clearTimeout(this.pingTimeout);
        this.pingTimeout = undefined;
        if (err === null) this.schedulePing();
      });
    } catch {
      // Too many unacknowledged pings, or the session is closing: the
      // timeout above decides.
    }
  }

  private pingTimedOut(): void {
    this.pingTimeout = undefined;
    if (this.session.destroyed) return;
    this.draining = true;
    this.owner.retire(this);
    this.session.destroy(
      new ConnectError(
        `connection to ${this.owner.authority}: PING not answered within ${this.opts.pingTimeoutMs}ms`,
        Code.Unavailable,
      ),
      http2.constants.NGHTTP2_CANCEL,
    );
  }

  private stopPing(): void {
    if (this.pingTimer !== undefined) clearTimeout(this.pingTimer);
    if (this.pingTimeout !== undefined) clearTimeout(this.pingTimeout);
    this.pingTimer = undefined;
    this.pingTimeout = undefined;
  }

  private stopTimers(): void {
    this.stopPing();
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.idleTimer = undefined;
    this.connectTimer = undefined;
  }
}

/**
 * ClientSession owns the HTTP/2 connection to one endpoint: it connects
 * lazily on the first stream, keeps the connection alive with PINGs,
 * closes it when idle, and after a GOAWAY leaves the old session to drain
 * while new streams go to a new one.
 */
export class ClientSession {
  readonly authority: string;
  private current: SessionEntry | undefined;
  private readonly draining = new Set<SessionEntry>();
  private lastError: Error | undefined;
  private readonly opts: TimingOptions;
  private readonly identity: ClientIdentity | undefined;
  private readonly offRotation: (() => void) | undefined;

  constructor(
    private readonly address: string,
    private readonly options: ClientSessionOptions = {},
  ) {
    this.identity = createClientIdentity(options.identity, options.serverIdentities);
    const secure = options.tls !== undefined || this.identity !== undefined;
    this.authority = `${secure ? "https" : "http"}://${address}`;
    // A rotated identity is used from the next call on.
    this.offRotation = this.identity?.source.onEvent((event) => {
      if (event.type === "identity-rotated") this.recycle();
    });
    this.opts = {
      pingIntervalMs: options.pingIntervalMs ?? CLIENT_SESSION_DEFAULTS.pingIntervalMs,
      pingTimeoutMs: options.pingTimeoutMs ?? CLIENT_SESSION_DEFAULTS.pingTimeoutMs,
      idleConnectionTimeoutMs:
        options.idleConnectionTimeoutMs ?? CLIENT_SESSION_DEFAULTS.idleConnectionTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? CLIENT_SESSION_DEFAULTS.connectTimeoutMs,
    };
  }

  /** state is "closed" (none yet), "connecting", "open" (calls in flight), "idle", or "error" (the last connection failed). */
  state(): ClientSessionState {
    const s = this.current;
    if (s === undefined || !s.usable) {
      return this.lastError === undefined ? "closed" : "error";
    }
    if (!s.connected) return "connecting";
    return s.streams > 0 ? "open" : "idle";
  }

  /**
   * request opens a stream on the current session, connecting first if
   * needed (node queues the stream until the connection is up). The caller
   * must call `entry.release()` once the stream closes.
   */
  request(headers: http2.OutgoingHttpHeaders): {
    stream: http2.ClientHttp2Stream;
    entry: SessionEntry;
  } {
    for (let attempt = 0; ; attempt++) {
      const entry = this.current?.usable === true ? this.current : this.connect();
      try {
        const stream = entry.session.request(headers, REQUEST_OPTIONS);
        entry.acquire();
        return { stream, entry };
      } catch (e) {
        // The session closed between the check and the call (a GOAWAY just
        // arrived): one more try on a new session.
        entry.draining = true;
        this.retire(entry);
        if (attempt > 0) throw e;
      }
    }
  }

  /**
   * recycle drains the current connection gracefully: it takes no new
   * streams, its calls finish, then it closes (GOAWAY); the next call
   * connects anew (with the current identity).
   */
  recycle(): void {
    const entry = this.current;
    if (entry === undefined) return;
    entry.draining = true;
    this.retire(entry);
    if (entry.streams === 0 && !entry.session.destroyed) entry.session.close();
  }

  /** refusalError is the call error for a connection the server refused, naming the client's certificate. */
  refusalError(refusal: TlsRefusal, cause: unknown): ConnectError {
    const m = this.identity?.source.current;
    return tlsRefusalError(
      this.address,
      refusal,
      {
        configured: m !== undefined || this.options.tls?.cert !== undefined,
        identity: m !== undefined,
        spiffeId: m?.spiffeId,
        validToMs: m?.validToMs,
      },
      cause,
    );
  }

  /** close destroys every session and its streams with `reason`. */
  close(reason?: Error): void {
    this.offRotation?.();
    const err = reason ?? new ConnectError("connection closed", Code.Canceled);
    const all = [...this.draining];
    if (this.current !== undefined) all.push(this.current);
    this.current = undefined;
    this.draining.clear();
    this.lastError = undefined;
    for (const e of all) {
      if (!e.session.destroyed) e.session.destroy(err, http2.constants.NGHTTP2_CANCEL);
    }
  }

  /** retire stops giving out `entry` for new streams. */
  retire(entry: SessionEntry): void {
    if (this.current === entry) {
      this.current = undefined;
      if (entry.error !== undefined && !entry.connected) this.lastError = entry.error;
      else if (entry.error !== undefined && entry.session.destroyed) this.lastError = entry.error;
    }
    if (entry.session.destroyed || entry.session.closed) {
      this.draining.delete(entry);
    } else {
      this.draining.add(entry);
    }
  }

  private connect(): SessionEntry {
    if (this.current !== undefined) this.retire(this.current);
    const tls =
      this.identity === undefined ? this.options.tls : this.identity.tlsOptions(this.options.tls);
    const session = http2.connect(this.authority, {
      ...tls,
      ...(this.options.settings === undefined ? {} : { settings: this.options.settings }),
    });
    const entry = new SessionEntry(session, this, this.opts);
    session.once("connect", () => {
      if (this.current === entry) this.lastError = undefined;
    });
    session.unref();
    this.current = entry;
    return entry;
  }
}
