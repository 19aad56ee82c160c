import type { Code } from "@connectrpc/connect";

/** GiveUpReason says why a failed call was not retried. */
export type GiveUpReason =
  | "not-retryable"
  | "unsafe"
  | "max-attempts"
  | "budget"
  | "deadline"
  | "pushback"
  | "breaker-open"
  | "not-replayable";

/** RetryEvent is what the retry interceptor reports; logging and metrics subscribe. */
export type RetryEvent =
  | {
      readonly type: "retry";
      readonly target: string;
      readonly method: string;
      readonly attempt: number;
      readonly code: Code;
      readonly delayMs: number;
      readonly transparent: boolean;
    }
  | {
      readonly type: "give-up";
      readonly target: string;
      readonly method: string;
      readonly attempts: number;
      readonly code: Code;
      readonly reason: GiveUpReason;
    }
  | {
      readonly type: "budget-exhausted";
      readonly target: string;
      readonly method: string;
      readonly code: Code;
    }
  | {
      readonly type: "hedge";
      readonly target: string;
      readonly method: string;
      readonly attempt: number;
    };
