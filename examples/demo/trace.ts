import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";

/** LogLine is one parsed JSON log line. */
export type LogLine = Record<string, unknown> & { readonly raw: string };

/** LogScan is what one pass over the JSON log file finds. */
export interface LogScan {
  readonly lines: number;
  readonly unparsable: number;
  /** trace is every line of the chosen trace, in file order. */
  readonly trace: readonly LogLine[];
  readonly traceId: string | undefined;
  /** why says how the trace was chosen. */
  readonly why: string;
}

/**
 * findRetriedTrace reads the JSON log file twice: first to pick a
 * CreateOrder that was retried (preferring one whose retry got a replayed
 * answer, the idempotency key at work), then to collect every line of its
 * trace from every process.
 */
export async function findRetriedTrace(path: string): Promise<LogScan> {
  let lines = 0;
  let unparsable = 0;
  let best: { traceId: string; score: number; why: string } | undefined;
  for await (const raw of readLines(path)) {
    lines++;
    const l = parse(raw);
    if (l === undefined) {
      unparsable++;
      continue;
    }
    if (
      l.msg !== "finished call" ||
      l["grpc.component"] !== "client" ||
      l["grpc.method"] !== "CreateOrder" ||
      typeof l.trace_id !== "string"
    ) {
      continue;
    }
    const attempts = Number(l["grpc.attempts"] ?? 1);
    if (attempts < 2) continue;
    const ok = l["grpc.code"] === "OK";
    const replayed = l["idempotency.replayed"] === true;
    const score = (ok ? 2 : 0) + (replayed ? 4 : 0) + Math.min(attempts, 3) / 10;
    if (best === undefined || score > best.score) {
      best = {
        traceId: l.trace_id,
        score,
        why: `CreateOrder, ${attempts} attempts, ${String(l["grpc.code"])}${replayed ? ", answer replayed from the idempotency record" : ""}`,
      };
    }
  }
  if (best === undefined) {
    return { lines, unparsable, trace: [], traceId: undefined, why: "no CreateOrder was retried" };
  }
  const trace: LogLine[] = [];
  for await (const raw of readLines(path)) {
    if (!raw.includes(best.traceId)) continue;
    const l = parse(raw);
    if (l?.trace_id === best.traceId) trace.push(l);
  }
  return { lines, unparsable, trace, traceId: best.traceId, why: best.why };
}

function parse(raw: string): LogLine | undefined {
  if (raw === "") return undefined;
  try {
    const v = JSON.parse(raw) as Record<string, unknown>;
    return { ...v, raw };
  } catch {
    return undefined;
  }
}

async function* readLines(path: string): AsyncGenerator<string> {
  const rl = createInterface({ input: createReadStream(path, "utf8"), crlfDelay: Infinity });
  for await (const line of rl) yield line;
}

/** startOf is when the span of a log line started: its time less its duration. */
export function startOf(l: LogLine): number {
  const t = typeof l.time === "number" ? l.time : 0;
  return t - (typeof l["grpc.time_ms"] === "number" ? l["grpc.time_ms"] : 0);
}

/**
 * orderTrace sorts a trace's lines by when their spans started (a call
 * before its attempts, an attempt before the server that served it).
 */
export function orderTrace(lines: readonly LogLine[]): LogLine[] {
  const rank = (l: LogLine) =>
    l.msg === "finished call" && l["grpc.component"] === "client"
      ? 0
      : l.msg === "finished attempt"
        ? 1
        : 2;
  // The call line first: it is the whole call, its attempts start inside it.
  return [...lines].sort(
    (a, b) =>
      Number(rank(a) !== 0) - Number(rank(b) !== 0) || startOf(a) - startOf(b) || rank(a) - rank(b),
  );
}

/**
 * digest renders one log line of a trace as a short line for people: when
 * its span started (ms after t0) and how long it took, the process, and the
 * fields that tell the story.
 */
export function digest(l: LogLine, t0: number, nameOf: (address: string) => string): string {
  const at = `+${Math.round(startOf(l) - t0)} ms`.padStart(8);
  const took = typeof l["grpc.time_ms"] === "number" ? `${l["grpc.time_ms"].toFixed(1)} ms` : "";
  const proc = String(l.proc ?? "?").padEnd(10);
  const parts: string[] = [];
  const msg = String(l.msg ?? "");
  const method = String(l["grpc.method"] ?? "");
  if (msg === "finished attempt") parts.push(`attempt ${String(l.attempt)}`);
  else if (msg === "finished call" && l["grpc.component"] === "client")
    parts.push(`call ${method}`);
  else if (msg === "finished call") parts.push(`served ${method}`);
  else parts.push(msg);
  if (typeof l.endpoint === "string" && msg === "finished attempt") {
    parts.push(`→ ${nameOf(l.endpoint)}`);
  }
  if (l["grpc.code"] !== undefined) parts.push(String(l["grpc.code"]));
  // --mtls: the server's line names the verified caller.
  if (typeof l["peer.identity"] === "string") parts.push(`caller ${l["peer.identity"]}`);
  if (l["grpc.attempts"] !== undefined) parts.push(`after ${String(l["grpc.attempts"])} attempts`);
  if (l["idempotency.replayed"] === true) parts.push("(idempotency-replayed)");
  if (typeof l["grpc.error"] === "string") parts.push(`"${l["grpc.error"]}"`);
  const span = typeof l.span_id === "string" ? `${l.span_id.slice(0, 8)}  ` : "          ";
  return `${at} ${took.padStart(10)}  ${proc} ${span}${parts.join(" ")}`;
}
