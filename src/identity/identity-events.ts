/** IdentityRotatedEvent: a new, valid identity replaced the old one; new connections use it. */
export interface IdentityRotatedEvent {
  readonly type: "identity-rotated";
  readonly spiffeId: string;
  readonly fingerprint256: string;
  readonly previousFingerprint256: string;
  /** validToMs is when the new leaf expires (ms since the epoch). */
  readonly validToMs: number;
}

/** IdentityRejectedEvent: new key/certificate/bundle failed validation; the old identity stays. */
export interface IdentityRejectedEvent {
  readonly type: "identity-rejected";
  /** reason says what was wrong, e.g. "key does not match the leaf certificate". */
  readonly reason: string;
  readonly error: Error;
  /** keptFingerprint256 is the fingerprint of the identity still in use. */
  readonly keptFingerprint256: string;
}

/** IdentityEvent is what an identity source reports about rotations. */
export type IdentityEvent = IdentityRotatedEvent | IdentityRejectedEvent;
