import { parseArgs } from "node:util";

/** DemoOptions are the command-line options of `npm start`. */
export interface DemoOptions {
  readonly durationS: number;
  /** overloadS is the length of the overload phase's 3x burst; 0 skips the phase. */
  readonly overloadS: number;
  readonly replicas: number;
  readonly concurrency: number;
  readonly etcd: readonly string[] | undefined;
  readonly redis: string | undefined;
  readonly pretty: boolean;
  /** mtls runs every hop over mutual TLS with SPIFFE identities from a dev CA. */
  readonly mtls: boolean;
  readonly logFile: string;
  /** adminPort is the dashboard's port (0: a free one); undefined with --no-admin. */
  readonly adminPort: number | undefined;
  readonly help: boolean;
}

export const USAGE = `Usage: npm start -- [options]      (or: npx tsx examples/demo.ts [options])

Starts a service registry and N replicas of the example OrderService as
separate processes, injects faults (replica-1 slow, replica-2 failing 30% with
UNAVAILABLE and losing 5% of CreateOrder answers, replica-3 SIGKILLed and
restarted mid-run), drives CreateOrder and GetOrder calls through one mesh
transport, shows what the mesh does about it, and checks the outcome.

Options:
  --duration <s>        how long the load runs, in seconds (default 20)
  --overload <s>        length of the overload phase's burst at 3x a server's
                        capacity, adaptive concurrency limit on (default 4; 0 skips it)
  --replicas <n>        replicas to start, 3-8 (default 3; replicas 4+ are healthy)
  --concurrency <n>     calls in flight (default 48)
  --etcd <endpoints>    use etcd for discovery instead of the embedded registry,
                        e.g. 127.0.0.1:2379 (comma-separated for several)
  --redis <url>         keep idempotency records in Redis, e.g. redis://127.0.0.1:6379,
                        instead of the shared-directory file store
  --log-file <path>     where the JSON logs of every process go
                        (default .tmp/demo-logs.jsonl; overwritten each run)
  --mtls                every hop over mutual TLS: a dev CA made at start issues
                        SPIFFE certificates (replicas spiffe://demo.local/ns/shop/sa/orders,
                        the client .../sa/checkout); the client pins the replicas'
                        identity and the followed trace shows who called whom
  --admin-port <n>      serve the live dashboard (serveAdmin) on this loopback port
                        (default 0: a free port; the URL is printed at start)
  --no-admin            do not start the dashboard
  --pretty              show the traced call's log lines through pino-pretty (every
                        field, colours on a terminal) instead of one digest line
                        each; the log file stays JSON either way
  -h, --help            show this help

Exit status: 0 when the run met its expectations (>= 99.9% of calls succeeded,
no CreateOrder ran twice for one idempotency key, every replica served, the
restarted replica came back), 1 with the reasons otherwise, 2 for bad options,
130 when interrupted (Ctrl-C stops the load and still prints the summary).
Without a terminal the live status is printed as plain lines every 2 s.`;

/** OptionsError is a bad command line; its message says what is wrong. */
export class OptionsError extends Error {
  override readonly name = "OptionsError";
}

/** parseDemoOptions reads the command line (without node and the script). */
export function parseDemoOptions(argv: readonly string[]): DemoOptions {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    throw new OptionsError(e instanceof Error ? e.message : String(e));
  }
  const v = parsed.values;
  if (parsed.positionals.length > 0) {
    throw new OptionsError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  }
  const num = (name: string, text: string | undefined, def: number, min: number, max: number) => {
    if (text === undefined) return def;
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
      throw new OptionsError(
        `--${name} ${JSON.stringify(text)} must be a number from ${min} to ${max}`,
      );
    }
    return n;
  };
  const etcd = v.etcd
    ?.split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (etcd !== undefined && etcd.length === 0) {
    throw new OptionsError("--etcd needs at least one endpoint, e.g. 127.0.0.1:2379");
  }
  if (v.redis !== undefined && !/^rediss?:\/\//.test(v.redis)) {
    throw new OptionsError(`--redis ${JSON.stringify(v.redis)} must be a redis:// URL`);
  }
  return {
    durationS: num("duration", v.duration, 20, 1, 3_600),
    overloadS: num("overload", v.overload, 4, 0, 600),
    replicas: Math.floor(num("replicas", v.replicas, 3, 3, 8)),
    concurrency: Math.floor(num("concurrency", v.concurrency, 48, 1, 1_000)),
    etcd,
    redis: v.redis,
    pretty: v.pretty === true,
    mtls: v.mtls === true,
    logFile: v["log-file"] ?? ".tmp/demo-logs.jsonl",
    adminPort:
      v["no-admin"] === true
        ? undefined
        : Math.floor(num("admin-port", v["admin-port"], 0, 0, 65_535)),
    help: v.help === true,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      duration: { type: "string" },
      overload: { type: "string" },
      replicas: { type: "string" },
      concurrency: { type: "string" },
      etcd: { type: "string" },
      redis: { type: "string" },
      "log-file": { type: "string" },
      "admin-port": { type: "string" },
      "no-admin": { type: "boolean" },
      pretty: { type: "boolean" },
      mtls: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}
