import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Criticality says which calls a loaded server refuses first: `sheddable`
 * ones (prefetches, batch work), then `default` ones, `critical` ones last.
 * It travels in the `x-mesh-criticality` request header.
 */
export type Criticality = "critical" | "default" | "sheddable";

/** CRITICALITIES lists the criticalities, most important first. */
export const CRITICALITIES: readonly Criticality[] = Object.freeze([
  "critical",
  "default",
  "sheddable",
]);

/**
 * CriticalityShares give each criticality the share of the concurrency
 * limit it may fill, in (0, 1]: a call is admitted while the calls in flight
 * are fewer than `floor(share * limit)` (Netflix's partitioned limiter gives
 * partitions shares the same way; Google's criticality shedding refuses the
 * least critical first).
 */
export interface CriticalityShares {
  /** critical calls may fill the whole limit; default 1. */
  readonly critical?: number;
  /** default calls (no header); default 1, so a plain limit means what it says. */
  readonly default?: number;
  /** sheddable calls are refused once half the limit is in flight; default 0.5. */
  readonly sheddable?: number;
}

/** CRITICALITY_SHARE_DEFAULTS are the defaults of CriticalityShares. */
export const CRITICALITY_SHARE_DEFAULTS: Readonly<Required<CriticalityShares>> = Object.freeze({
  critical: 1,
  default: 1,
  sheddable: 0.5,
});

/** validateCriticalityShares merges shares with the defaults, or throws a RangeError naming the bad one. */
export function validateCriticalityShares(
  shares: CriticalityShares | undefined,
): Readonly<Required<CriticalityShares>> {
  if (shares !== undefined && (typeof shares !== "object" || shares === null)) {
    throw new TypeError(
      `criticality ${String(shares)} must be { critical?, default?, sheddable? }`,
    );
  }
  const out = { ...CRITICALITY_SHARE_DEFAULTS };
  for (const [key, value] of Object.entries(shares ?? {})) {
    if (value === undefined) continue;
    if (!CRITICALITIES.includes(key as Criticality)) {
      throw new RangeError(
        `criticality key ${JSON.stringify(key)} must be one of ${CRITICALITIES.join(", ")}`,
      );
    }
    if (!(typeof value === "number" && value > 0 && value <= 1)) {
      throw new RangeError(`criticality.${key} ${String(value)} must be in (0, 1]`);
    }
    out[key as Criticality] = value;
  }
  if (out.sheddable > out.default || out.default > out.critical) {
    throw new RangeError(
      `criticality shares must satisfy sheddable <= default <= critical (got ${out.sheddable}, ${out.default}, ${out.critical})`,
    );
  }
  return Object.freeze(out);
}

/** isCriticality tells a valid criticality value. */
export function isCriticality(value: unknown): value is Criticality {
  return value === "critical" || value === "default" || value === "sheddable";
}

/**
 * parseCriticality reads an `x-mesh-criticality` value: absent or empty is
 * `default`; case and surrounding blanks are ignored; anything else fails
 * INVALID_ARGUMENT naming the value.
 */
export function parseCriticality(value: string | null): Criticality {
  if (value === null) return "default";
  const v = value.trim().toLowerCase();
  if (v === "") return "default";
  if (isCriticality(v)) return v;
  throw new ConnectError(
    `x-mesh-criticality ${JSON.stringify(value.slice(0, 64))} must be critical, default or sheddable`,
    Code.InvalidArgument,
  );
}

/**
 * admitsCriticality is the admission decision: may a call of `criticality`
 * start while `inFlight` calls hold slots under `limit`?
 */
export function admitsCriticality(
  shares: Readonly<Required<CriticalityShares>>,
  criticality: Criticality,
  inFlight: number,
  limit: number,
): boolean {
  const share = shares[criticality];
  const allowed = share >= 1 ? limit : Math.floor(share * limit);
  return inFlight < allowed;
}
