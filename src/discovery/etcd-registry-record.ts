import { parseAddress } from "./address.js";
import {
  formatRegistrationRecord,
  parseRegistrationRecord,
  type Registration,
} from "./registry.js";

/*
 * The etcd registry's record codec: where a registration lives
 * (`<prefix>/<service>/<instanceId>`) and what it holds (grpc-go's naming
 * record, shared with the mesh registry through registry.ts), the etcd twin
 * of mesh-registry-record.ts and mesh-registry-name.ts.
 */

/** utf8 converts etcd's byte keys and values; etcd records are UTF-8 text. */
export const utf8 = {
  encoder: new TextEncoder(),
  decoder: new TextDecoder(),
  encode(s: string): Uint8Array {
    return this.encoder.encode(s);
  },
  decode(b: Uint8Array): string {
    return this.decoder.decode(b);
  },
};

/** etcdRecordKey is the key of one instance's record. */
export function etcdRecordKey(prefix: string, service: string, instanceId: string): string {
  return `${prefix}/${service}/${instanceId}`;
}

/** assertEtcdSegment throws a TypeError quoting a key segment that is empty or holds "/". */
export function assertEtcdSegment(what: string, value: unknown): void {
  if (typeof value !== "string" || value === "" || value.includes("/")) {
    throw new TypeError(`${what} ${JSON.stringify(value)} must be a non-empty string without "/"`);
  }
}

/**
 * validateEtcdRegistration throws a TypeError unless the registration makes
 * a record that resolvers would accept: registering a record every reader
 * skips would look like success and serve nothing.
 */
export function validateEtcdRegistration(r: Registration): void {
  assertEtcdSegment("service", r.service);
  assertEtcdSegment("instanceId", r.instanceId);
  parseAddress(r.address);
  const parsed = parseRegistrationRecord(formatRegistrationRecord(r));
  if (typeof parsed === "string") {
    throw new TypeError(`registration ${JSON.stringify(r.instanceId)}: ${parsed}`);
  }
}

/**
 * parseEtcdRecordKey returns the instance id of a key under `base`
 * (`<prefix>/<service>/`), or a string saying why the key is not a record key.
 */
export function parseEtcdRecordKey(base: string, key: string): { id: string } | string {
  const id = key.startsWith(base) ? key.slice(base.length) : undefined;
  if (id === undefined) return `key is outside ${JSON.stringify(base)}`;
  if (id === "" || id.includes("/")) {
    return `key must be ${JSON.stringify(`${base}<instanceId>`)} with one path segment`;
  }
  return { id };
}
