import { createRequire } from "node:module";
import * as path from "node:path";
import { type DestinationStream, type Logger, pino } from "pino";

/** The environment variables the default logger reads. */
export interface DefaultLoggerEnv {
  readonly MESH_LOG_LEVEL?: string | undefined;
  readonly MESH_LOG_PRETTY?: string | undefined;
}

/** DefaultLoggerConfig is what the environment asks of the default logger. */
export interface DefaultLoggerConfig {
  /** level is a pino level name or `silent`. */
  readonly level: string;
  /** fd is where lines go: 1 (stdout) when a level was asked for, else 2 (stderr). */
  readonly fd: 1 | 2;
  /** pretty asks for pino-pretty output instead of JSON lines. */
  readonly pretty: boolean;
}

const LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/**
 * defaultLoggerConfig decides the default logger from the environment. A
 * library should be quiet unless asked, as grpc-js is: without
 * `MESH_LOG_LEVEL` only warnings and errors (failed calls, lost leases) are
 * written, to stderr, so a program's stdout stays its own. Setting
 * `MESH_LOG_LEVEL` (e.g. `info` for one line per call) sends JSON lines to
 * stdout, where log shippers expect them. `MESH_LOG_PRETTY=1` asks for
 * pino-pretty. A bad level is a RangeError naming it.
 */
export function defaultLoggerConfig(env: DefaultLoggerEnv): DefaultLoggerConfig {
  const asked = env.MESH_LOG_LEVEL?.trim().toLowerCase() ?? "";
  if (asked !== "" && !LEVELS.has(asked)) {
    throw new RangeError(
      `MESH_LOG_LEVEL ${JSON.stringify(env.MESH_LOG_LEVEL)} must be one of ${[...LEVELS].join(", ")}`,
    );
  }
  const pretty = /^(1|true|yes|on)$/i.test(env.MESH_LOG_PRETTY?.trim() ?? "");
  return asked === "" ? { level: "warn", fd: 2, pretty } : { level: asked, fd: 1, pretty };
}

type PrettyFactory = (options: {
  destination: number;
  sync: boolean;
  colorize: boolean;
}) => DestinationStream;

/**
 * loadPinoPretty finds pino-pretty (an optional development dependency) from
 * the application's directory first, then from connect-mesh's, or returns
 * undefined. It is synchronous so the default logger can be built on demand.
 */
function loadPinoPretty(): PrettyFactory | undefined {
  for (const from of [path.join(process.cwd(), "index.js"), import.meta.url]) {
    try {
      const mod = createRequire(from)("pino-pretty") as { default?: PrettyFactory } | PrettyFactory;
      return typeof mod === "function" ? mod : mod.default;
    } catch {
      // not installed there: try the next place
    }
  }
  return undefined;
}

/** Seams for tests of the default logger. */
export interface DefaultLoggerDeps {
  /** loadPretty returns pino-pretty's factory, or undefined when it is not installed. */
  readonly loadPretty?: () => PrettyFactory | undefined;
  /** warn writes the one-line notice that pino-pretty is missing; default stderr. */
  readonly warn?: (line: string) => void;
}

/**
 * createDefaultLogger builds the logger {@link defaultLoggerConfig} describes.
 * @internal
 */
export function createDefaultLogger(env: DefaultLoggerEnv, deps: DefaultLoggerDeps = {}): Logger {
  const config = defaultLoggerConfig(env);
  if (config.pretty) {
    const pretty = (deps.loadPretty ?? loadPinoPretty)();
    if (pretty !== undefined) {
      const isTty = (config.fd === 1 ? process.stdout : process.stderr).isTTY === true;
      return pino(
        { level: config.level },
        pretty({ destination: config.fd, sync: true, colorize: isTty }),
      );
    }
    (deps.warn ?? ((line) => process.stderr.write(`${line}\n`)))(
      "connect-mesh: MESH_LOG_PRETTY is set but pino-pretty is not installed (npm install --save-dev pino-pretty); logging JSON lines",
    );
  }
  // sync: warnings written just before a process exits must not be lost.
  return pino({ level: config.level }, pino.destination({ dest: config.fd, sync: true }));
}

let shared: Logger | undefined;

/**
 * defaultLogger is the pino logger servers, transports and workers use when
 * given none, built once from the environment (see
 * {@link defaultLoggerConfig}): warnings and errors to stderr by default; JSON
 * lines to stdout at `MESH_LOG_LEVEL` when set (`info`: one line per call;
 * `silent`: nothing, as the test suite runs); pino-pretty with
 * `MESH_LOG_PRETTY=1`.
 */
export function defaultLogger(): Logger {
  shared ??= createDefaultLogger(process.env);
  return shared;
}

/** SILENT_LOGGER discards everything: what `logger: false` means. */
export const SILENT_LOGGER: Logger = pino({ level: "silent" });
