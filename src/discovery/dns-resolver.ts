import { getServers } from "node:dns";
import { createBackoff } from "../call/backoff.js";
import { BACKGROUND, type Clock, type ClockTimer, systemClock } from "../clock.js";
import { stripUndefined } from "../strip-undefined.js";
import { formatAddress } from "./address.js";
import { createDnsClient, DNS_CLIENT_DEFAULTS } from "./dns-client.js";
import { type DnsLookup, lookupDnsTarget } from "./dns-lookup.js";
import { type DnsTarget, parseDnsTarget } from "./dns-target.js";
import { createEndpointSet, type Endpoint, type EndpointSet } from "./endpoint.js";
import type { Resolver, ResolverEvent, ResolverListener } from "./resolver.js";

/**
 * DnsResolverOptions configures createDnsResolver. Defaults
 * (DNS_RESOLVER_DEFAULTS): servers from `dns.getServers()`, minPollMs 30_000,
 * maxPollMs 300_000, timeoutMs 2_000 per attempt, attempts 2, retryInitialMs
 * 1_000, minResolveIntervalMs 1_000, systemClock.
 */
export interface DnsResolverOptions {
  /**
   * target is `dns:[//server/]host[:port]` (A and AAAA; port 443 if omitted)
   * or `dns+srv:[//server/]_service._proto.name` (SRV). See parseDnsTarget.
   */
  readonly target: string;
  /**
   * servers are the DNS servers to ask, `ip` or `ip:port` (`[ipv6]:port`).
   * A server in the target's authority takes precedence over them.
   */
  readonly servers?: readonly string[];
  /** clock schedules polls, retries and query timeouts. */
  readonly clock?: Clock;
  /** minPollMs is the floor of the poll interval, however small the TTL; > 0. */
  readonly minPollMs?: number;
  /** maxPollMs caps the poll interval, however large the TTL; >= minPollMs. */
  readonly maxPollMs?: number;
  /** timeoutMs bounds one query attempt; > 0. */
  readonly timeoutMs?: number;
  /** attempts per query, rotating through the servers; integer >= 1. */
  readonly attempts?: number;
  /** retryInitialMs is the first delay after a failed resolution; 0 < x <= minPollMs. */
  readonly retryInitialMs?: number;
  /** minResolveIntervalMs rate-limits resolveNow(): at most one resolution per interval; >= 0. */
  readonly minResolveIntervalMs?: number;
  /** random returns a number in [0, 1) for retry jitter; inject a fixed one in tests. */
  readonly random?: () => number;
}

/** DNS_RESOLVER_DEFAULTS are the defaults documented on DnsResolverOptions. */
export const DNS_RESOLVER_DEFAULTS = Object.freeze({
  // gRPC's own DNS resolvers wait at least 30 s between resolutions; polling
  // faster than that buys little and multiplies load on the DNS servers by
  // the number of clients.
  minPollMs: 30_000,
  // Even a record with a day-long TTL is re-checked every 5 minutes, so a
  // wrongly long TTL cannot hide a scale-up for long.
  maxPollMs: 300_000,
  timeoutMs: DNS_CLIENT_DEFAULTS.timeoutMs,
  attempts: DNS_CLIENT_DEFAULTS.attempts,
  retryInitialMs: 1_000,
  // Balancers call resolveNow() on every failed connection; one resolution a
  // second is fresh enough and keeps a crash loop from flooding DNS.
  minResolveIntervalMs: 1_000,
  clock: systemClock,
  // Jitter in [0.5, 1) of the backoff cap: clients that lost DNS together do
  // not retry in lockstep, yet never retry immediately.
  random: () => 0.5 + Math.random() / 2,
});

/**
 * createDnsResolver builds a Resolver for `dns:` and `dns+srv:` targets over
 * a built-in DNS client (createDnsClient), which sees record TTLs.
 *
 * Unlike grpc-js, which re-resolves only after a connection fails (so a
 * scale-up stays invisible while the old endpoints are healthy), it polls:
 * after each answer it resolves again after the smallest TTL of the records
 * used, clamped to [minPollMs, maxPollMs]; an answer without TTLs (an empty
 * answer without SOA) waits minPollMs. resolveNow() brings the next resolution
 * forward, but never sooner than minResolveIntervalMs after the previous one
 * started; calls during a resolution are absorbed by it.
 *
 * Failure semantics (Resolver's contract):
 * - A failed resolution (timeout, SERVFAIL, REFUSED…) pushes nothing: the
 *   listener keeps the last-known endpoints. It emits `error`, and when there
 *   are last-known endpoints `stale` with `sinceMs`, the clock time at which
 *   the outage was first seen. It retries after retryInitialMs, doubling up to
 *   minPollMs, with jitter. Staleness is reported only by events: the
 *   snapshot is not re-pushed with `staleSince`, since its endpoints did not
 *   change.
 * - NXDOMAIN, or NOERROR with no records, is an answer: an empty set is
 *   pushed. So is an SRV answer whose only target is "." (RFC 2782: the
 *   service is decidedly not available).
 * - Records that cannot be used (SRV port 0, unspecified or multicast
 *   addresses, SRV targets without addresses) are skipped with a `bad-record`
 *   event, on every resolution that sees them.
 * - A snapshot is pushed only when the endpoints (address and weight) differ
 *   from the last one pushed, so balancers do not churn on every poll.
 * - A target that is an IP literal (`dns:///10.0.0.1:50051`) is pushed once
 *   and never queried.
 *
 * The target and options are checked here: a bad target throws a TypeError,
 * a bad option a RangeError, both quoting the value.
 */
export function createDnsResolver(options: DnsResolverOptions): Resolver {
  const targetText = options.target;
  const {
    servers: serversOption,
    clock,
    minPollMs,
    maxPollMs,
    timeoutMs,
    attempts,
    retryInitialMs,
    minResolveIntervalMs,
    random,
  } = { ...DNS_RESOLVER_DEFAULTS, ...stripUndefined(options) };
  const target: DnsTarget = parseDnsTarget(targetText);
  const literal = target.kind === "host" && target.literal;
  if (!(minPollMs > 0) || !Number.isFinite(minPollMs)) {
    throw new RangeError(`minPollMs ${minPollMs} must be a finite number > 0`);
  }
  if (!(maxPollMs >= minPollMs) || !Number.isFinite(maxPollMs)) {
    throw new RangeError(
      `maxPollMs ${maxPollMs} must be a finite number >= minPollMs ${minPollMs}`,
    );
  }
  if (!(retryInitialMs > 0) || !(retryInitialMs <= minPollMs)) {
    throw new RangeError(
      `retryInitialMs ${retryInitialMs} must be > 0 and <= minPollMs ${minPollMs}`,
    );
  }
  if (!(minResolveIntervalMs >= 0) || !Number.isFinite(minResolveIntervalMs)) {
    throw new RangeError(
      `minResolveIntervalMs ${minResolveIntervalMs} must be a finite number >= 0`,
    );
  }
  const servers =
    target.server !== undefined
      ? [formatAddress(target.server.host, target.server.port)]
      : (serversOption ?? getServers());
  const client = createDnsClient({ servers, timeoutMs, attempts, clock });
  const backoff = createBackoff({
    initialMs: retryInitialMs,
    multiplier: 2,
    maxMs: minPollMs,
    random,
  });

  let listener: ResolverListener | undefined;
  let closed = false;
  let timer: ClockTimer | undefined;
  let timerDueAt = Number.POSITIVE_INFINITY;
  let inflight: { controller: AbortController; done: Promise<void> } | undefined;
  let lastStartAt = Number.NEGATIVE_INFINITY;
  let last: EndpointSet | undefined;
  let failures = 0;
  let staleSince: number | undefined;

  const emit = (event: ResolverEvent): void => {
    try {
      listener?.onEvent?.(event);
    } catch {
      // A throwing listener must not stop resolution; there is nowhere else
      // to report it without logging, which core code does not do.
    }
  };

  const schedule = (delayMs: number): void => {
    if (closed) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timerDueAt = clock.now() + delayMs;
    timer = clock.setTimeout(
      () => {
        timer = undefined;
        timerDueAt = Number.POSITIVE_INFINITY;
        resolve();
      },
      delayMs,
      BACKGROUND,
    );
  };

  const onAnswer = (result: DnsLookup): void => {
    failures = 0;
    staleSince = undefined;
    const ttlMs = result.ttlSeconds === undefined ? 0 : result.ttlSeconds * 1000;
    // An IP literal does not change: nothing to poll.
    if (!literal) schedule(Math.min(maxPollMs, Math.max(minPollMs, ttlMs)));
    for (const b of result.badRecords) {
      emit({ type: "bad-record", target: targetText, record: b.record, reason: b.reason });
    }
    if (last !== undefined && sameEndpoints(last.endpoints, result.endpoints)) return;
    last = createEndpointSet(result.endpoints, clock.now());
    try {
      listener?.onUpdate(last);
    } catch (e) {
      emit({ type: "error", target: targetText, error: e });
    }
  };

  const onFailure = (error: unknown): void => {
    failures++;
    staleSince ??= clock.now();
    schedule(backoff.delayMs(failures));
    emit({ type: "error", target: targetText, error });
    if (last !== undefined) emit({ type: "stale", target: targetText, sinceMs: staleSince });
  };

  const resolve = (): void => {
    if (closed || inflight !== undefined) return;
    if (timer !== undefined) {
      clock.clearTimeout(timer);
      timer = undefined;
      timerDueAt = Number.POSITIVE_INFINITY;
    }
    lastStartAt = clock.now();
    const controller = new AbortController();
    const done = lookupDnsTarget(client, target, controller.signal).then(
      (result) => {
        inflight = undefined;
        if (closed) return;
        onAnswer(result);
      },
      (error: unknown) => {
        inflight = undefined;
        if (closed) return;
        onFailure(error);
      },
    );
    inflight = { controller, done };
  };

  return {
    start(l) {
      if (listener !== undefined) throw new Error(`dns resolver for ${targetText} already started`);
      if (closed) throw new Error(`dns resolver for ${targetText} is closed`);
      listener = l;
      resolve();
    },
    resolveNow() {
      if (closed || listener === undefined || inflight !== undefined) return;
      if (literal) return;
      const earliest = lastStartAt + minResolveIntervalMs;
      const now = clock.now();
      if (now >= earliest) resolve();
      else if (earliest < timerDueAt) schedule(earliest - now);
    },
    async close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      const pending = inflight;
      pending?.controller.abort(new Error("dns resolver closed"));
      client.close();
      // Resolve only once the sockets of the aborted queries are closed.
      await pending?.done;
    },
  };
}

// Both lists come sorted by address from lookupDnsTarget.
function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as Endpoint;
    const y = b[i] as Endpoint;
    if (x.address !== y.address || x.weight !== y.weight) return false;
  }
  return true;
}
