import {
  formatRegistrationRecord,
  parseRegistrationRecord,
  type Registration,
} from "./registry.js";

/**
 * MeshRegistryRecord is the content of one mesh registry file: the shared
 * registration record (`{"Addr":…,"Metadata":{…}}`, grpc-go's naming format)
 * plus the lease's `expiresAt`.
 */
export interface MeshRegistryRecord {
  readonly address: string;
  readonly weight: number;
  readonly metadata: Record<string, string>;
  /**
   * expiresAt is wall-clock time (`Date.now()` milliseconds) after which the
   * record is dead. It is the one place the mesh uses wall time instead of the
   * injected clock: the value is read by other processes, and a monotonic
   * clock (`performance.now()`) counts from each process's own start, so only
   * the host's wall clock means the same instant to writer and reader.
   */
  readonly expiresAt: number;
}

/**
 * formatMeshRegistryRecord renders the file content of a registration whose
 * lease runs until `expiresAt` (wall-clock ms).
 */
export function formatMeshRegistryRecord(registration: Registration, expiresAt: number): string {
  // Built from the shared formatter so the file stays a valid grpc-go naming
  // record that other tools can read; expiresAt is one extra field.
  const record = JSON.parse(formatRegistrationRecord(registration)) as Record<string, unknown>;
  return JSON.stringify({ ...record, expiresAt });
}

/**
 * parseMeshRegistryRecord reads a file's content. It returns the record, or a
 * string saying why it is bad: any reason parseRegistrationRecord gives, or a
 * missing or non-finite `expiresAt`.
 */
export function parseMeshRegistryRecord(text: string): MeshRegistryRecord | string {
  const base = parseRegistrationRecord(text);
  if (typeof base === "string") return base;
  // parseRegistrationRecord accepted it, so this is a JSON object.
  const { expiresAt } = JSON.parse(text) as { expiresAt?: unknown };
  if (typeof expiresAt !== "number" || !Number.isFinite(expiresAt)) {
    return `expiresAt ${JSON.stringify(expiresAt)} is not a finite number`;
  }
  return { ...base, expiresAt };
}
