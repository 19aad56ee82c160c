import { randomUUID } from "node:crypto";

/**
 * newClaimToken makes a claim's owner token. It carries the claim's
 * fingerprint so that a store can still complete a record whose in-progress
 * entry has expired (see IdempotencyStore.complete).
 * @private
 */
export function newClaimToken(fingerprint: string): string {
  return `${randomUUID()}/${fingerprint}`;
}

/** tokenFingerprint returns the fingerprint inside a token from newClaimToken. @private */
export function tokenFingerprint(token: string): string | undefined {
  const at = token.indexOf("/");
  return at < 0 ? undefined : token.slice(at + 1);
}
