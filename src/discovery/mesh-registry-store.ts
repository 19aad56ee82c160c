import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, readdir, rename, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MESH_REGISTRY_NAME_PATTERN } from "./mesh-registry-name.js";
import { type MeshRegistryRecord, parseMeshRegistryRecord } from "./mesh-registry-record.js";

// The on-disk layout of the mesh registry, shared by registrars and resolvers
// in any number of processes:
//
//   <dir>/<service>/<instanceId>.json     one live or expired registration
//   <dir>/<service>/.<instanceId>.<nonce>.tmp   a write in progress
//
// Writers never modify a record in place: they write a temp file in the same
// directory and rename it over the record, which is atomic on POSIX file
// systems, so a reader sees the old record or the new one, never half of one.

/**
 * MAX_RECORD_BYTES caps what a scan reads from one file. A record is an
 * address and a handful of short metadata strings; anything this large is not
 * ours, and reading it whole on every scan would be a cheap way to stall us.
 */
export const MAX_RECORD_BYTES = 64 * 1024;

const RECORD_SUFFIX = ".json";
const TEMP_SUFFIX = ".tmp";

/** recordPath is the file that holds one instance's registration. */
export function recordPath(serviceDir: string, instanceId: string): string {
  return join(serviceDir, `${instanceId}${RECORD_SUFFIX}`);
}

/**
 * ensureMeshRegistryRoot creates `dir` (mode 0700) if missing and checks that
 * it is safe to trust: a directory owned by the current user and writable by
 * no one else. The default lives in the shared temp directory, where another
 * user could otherwise pre-create it and inject records that steer our
 * traffic, or plant a symlink that makes our garbage collection delete files
 * elsewhere. Skipped where the platform has no uids (Windows).
 */
export async function ensureMeshRegistryRoot(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const uid = process.getuid?.();
  if (uid === undefined) return;
  const link = await lstat(dir);
  const target = link.isSymbolicLink() ? await stat(dir) : link;
  if (!target.isDirectory()) {
    throw new Error(`mesh registry dir ${JSON.stringify(dir)} is not a directory`);
  }
  if (link.uid !== uid || target.uid !== uid) {
    throw new Error(
      `mesh registry dir ${JSON.stringify(dir)} is owned by uid ${target.uid}, not ${uid}; ` +
        "set MESH_REGISTRY_DIR to a directory you own",
    );
  }
  if ((target.mode & 0o022) !== 0) {
    throw new Error(
      `mesh registry dir ${JSON.stringify(dir)} is writable by others ` +
        `(mode ${(target.mode & 0o777).toString(8)}); chmod go-w it or set MESH_REGISTRY_DIR`,
    );
  }
}

/**
 * writeRecordAtomically replaces `path` with `content` via a temp file in the
 * same directory and a rename, creating the directory if it is missing (a
 * resolver or a person may have removed it).
 */
export async function writeRecordAtomically(
  serviceDir: string,
  instanceId: string,
  content: string,
): Promise<void> {
  const temp = join(serviceDir, `.${instanceId}.${randomBytes(6).toString("hex")}${TEMP_SUFFIX}`);
  try {
    await writeFile(temp, content, { mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    await mkdir(serviceDir, { recursive: true, mode: 0o700 });
    await writeFile(temp, content, { mode: 0o600 });
  }
  try {
    await rename(temp, recordPath(serviceDir, instanceId));
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}

/** removeRecord deletes a record file; a file already gone is not an error. */
export async function removeRecord(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/** ScannedRecord is a live record found by scanServiceDir. */
export interface ScannedRecord extends MeshRegistryRecord {
  /** path is the record's file. */
  readonly path: string;
}

/** ServiceDirScan is one read of a service directory. */
export interface ServiceDirScan {
  /** records are the well-formed, unexpired records, in file-name order. */
  readonly records: readonly ScannedRecord[];
  /** bad lists files that are not valid records, with the reason. */
  readonly bad: readonly { readonly path: string; readonly reason: string }[];
  /** gcErrors are failures to delete long-expired files; the scan is still good. */
  readonly gcErrors: readonly unknown[];
}

/** ScanOptions configures scanServiceDir. */
export interface ScanOptions {
  /** wallNow is the wall-clock time (ms) against which expiresAt is judged. */
  readonly wallNow: number;
  /**
   * gcAfterMs: records expired for longer than this, and temp files older
   * than this, are deleted (a writer that died mid-write leaves a temp file).
   */
  readonly gcAfterMs: number;
}

// Per-file errors that mean "this one file is unusable", not "the directory
// is unreadable": they make a bad record rather than a failed scan.
const BAD_FILE_CODES = new Set(["EACCES", "EPERM", "EISDIR", "ELOOP", "ENOTDIR"]);

/**
 * scanServiceDir reads every record in `serviceDir`. It throws only when the
 * directory itself cannot be listed or a file read fails in a way that says
 * the source is unhealthy (EIO, EMFILE…): callers must then keep their
 * last-known endpoints. Bad files are reported, never thrown; files that
 * vanish between listing and reading (deregistered, garbage-collected) are
 * skipped silently.
 */
export async function scanServiceDir(
  serviceDir: string,
  options: ScanOptions,
): Promise<ServiceDirScan> {
  const entries = await readdir(serviceDir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const records: ScannedRecord[] = [];
  const bad: { path: string; reason: string }[] = [];
  const gcErrors: unknown[] = [];
  const gcBefore = options.wallNow - options.gcAfterMs;
  const collect = async (path: string) => {
    try {
      await removeRecord(path);
    } catch (error) {
      gcErrors.push(error);
    }
  };

  for (const entry of entries) {
    const path = join(serviceDir, entry.name);
    if (entry.name.startsWith(".")) {
      if (entry.name.endsWith(TEMP_SUFFIX) && entry.isFile()) {
        const st = await stat(path).catch(() => undefined);
        if (st !== undefined && st.mtimeMs < gcBefore) await collect(path);
      }
      continue;
    }
    if (!entry.name.endsWith(RECORD_SUFFIX)) {
      bad.push({ path, reason: `file name does not end in ${RECORD_SUFFIX}` });
      continue;
    }
    if (!MESH_REGISTRY_NAME_PATTERN.test(entry.name.slice(0, -RECORD_SUFFIX.length))) {
      bad.push({ path, reason: "file name is not a valid instance id" });
      continue;
    }
    if (!entry.isFile()) {
      bad.push({ path, reason: "not a regular file" });
      continue;
    }
    const text = await readSmallFile(path);
    if (text === undefined) continue;
    if (typeof text !== "string") {
      bad.push({ path, reason: text.reason });
      continue;
    }
    const record = parseMeshRegistryRecord(text);
    if (typeof record === "string") {
      bad.push({ path, reason: record });
      continue;
    }
    if (record.expiresAt <= options.wallNow) {
      if (record.expiresAt < gcBefore) await collect(path);
      continue;
    }
    records.push({ ...record, path });
  }
  return { records, bad, gcErrors };
}

/**
 * readSmallFile returns the file's text, undefined if it no longer exists, or
 * a reason when this one file cannot be used. Errors that point at the whole
 * source (EIO, EMFILE) are thrown.
 */
async function readSmallFile(path: string): Promise<string | undefined | { reason: string }> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "r");
    const { size } = await handle.stat();
    if (size > MAX_RECORD_BYTES) {
      return { reason: `file is ${size} bytes, more than ${MAX_RECORD_BYTES}` };
    }
    return await handle.readFile("utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code !== undefined && BAD_FILE_CODES.has(code)) return { reason: `unreadable: ${code}` };
    throw error;
  } finally {
    await handle?.close();
  }
}
