/**
 * MESH_REGISTRY_NAME_PATTERN is what a mesh registry accepts as a service name
 * or instance id: 1..128 of `[A-Za-z0-9._-]`, not starting with a dot. Each
 * name becomes one path segment (`<dir>/<service>/<instanceId>.json`), so the
 * character set rules out separators and traversal; the leading-dot ban covers
 * `.` and `..` and keeps dot-files free for the registry's own temp files.
 */
export const MESH_REGISTRY_NAME_PATTERN = /^(?!\.)[A-Za-z0-9._-]{1,128}$/;

/**
 * assertMeshRegistryName returns `value` if it is a valid service name or
 * instance id (see MESH_REGISTRY_NAME_PATTERN), or throws a TypeError naming
 * `what` and quoting the bad value.
 */
export function assertMeshRegistryName(what: string, value: unknown): string {
  if (typeof value !== "string" || !MESH_REGISTRY_NAME_PATTERN.test(value)) {
    throw new TypeError(
      `${what} ${JSON.stringify(value)} must be 1..128 characters of [A-Za-z0-9._-] not starting with "."`,
    );
  }
  return value;
}
