import type { EjectionRecord } from "../state/snapshot.js";
import type { OutlierEvent } from "./outlier-detector.js";

/** EJECTION_HISTORY_SIZE is how many records an endpoint keeps: its recent story, not a log. */
export const EJECTION_HISTORY_SIZE = 16;

// Addresses remembered at most: endpoints that left long ago are forgotten first.
const MAX_ADDRESSES = 1024;

/**
 * EjectionHistory keeps the latest outlier events per address, fed from the
 * detector's events (never from the call path), for snapshots.
 */
export interface EjectionHistory {
  /** record notes one detector event. */
  record(event: OutlierEvent): void;
  /** of returns the address's records, oldest first, frozen. */
  of(address: string): readonly EjectionRecord[];
}

/** createEjectionHistory builds an empty history. */
export function createEjectionHistory(): EjectionHistory {
  const byAddress = new Map<string, EjectionRecord[]>();
  return {
    record(event) {
      let list = byAddress.get(event.address);
      if (list === undefined) {
        if (byAddress.size >= MAX_ADDRESSES) {
          const oldest = byAddress.keys().next().value;
          if (oldest !== undefined) byAddress.delete(oldest);
        }
        list = [];
        byAddress.set(event.address, list);
      }
      list.push(
        Object.freeze({
          type: event.type,
          at: event.at,
          reason: event.type === "restored" ? null : event.reason,
          until: event.type === "ejected" ? event.until : null,
          ejectionMs: event.type === "ejected" ? event.ejectionMs : null,
        }),
      );
      if (list.length > EJECTION_HISTORY_SIZE) list.shift();
    },
    of(address) {
      return Object.freeze([...(byAddress.get(address) ?? [])]);
    },
  };
}
