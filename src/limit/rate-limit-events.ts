/**
 * RateLimitEvent is what a rate limit reports: a refused call, or a shared
 * store that could not decide (and what the fail mode did about it).
 * Principals are not included: a custom `principal` function may return
 * something secret (an API key).
 */
export type RateLimitEvent =
  | {
      readonly type: "rate-limited";
      /** method is `"pkg.Service/Method"` (the client side: the target). */
      readonly method: string;
      /** per says whether the bucket was the method's or one principal's. */
      readonly per: "method" | "principal" | "target";
      readonly ratePerSecond: number;
      readonly retryAfterMs: number;
    }
  | {
      readonly type: "rate-limit-store-error";
      readonly method: string;
      /** failMode says what happened to the call: admitted ("open") or refused ("closed"). */
      readonly failMode: "open" | "closed";
      readonly error: unknown;
    };
