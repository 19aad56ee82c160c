import type { Fleet } from "./fleet.js";
import { ROLE_TEXT } from "./protocol.js";
import { type NotableEvent, percentile, type RunStats, shortMethod } from "./run-stats.js";

/** Snapshot is what one status line or screen shows. */
interface Snapshot {
  readonly atS: number;
  readonly calls: number;
  readonly retries: number;
  readonly latencyIndex: number;
  readonly requests: ReadonlyMap<string, number>;
}

const ESC = "\x1b[";
const bold = (s: string, tty: boolean) => (tty ? `${ESC}1m${s}${ESC}22m` : s);
const dim = (s: string, tty: boolean) => (tty ? `${ESC}2m${s}${ESC}22m` : s);
const color = (s: string, code: number, tty: boolean) => (tty ? `${ESC}${code}m${s}${ESC}39m` : s);

/**
 * createStatus shows the run while it goes: on a terminal a block redrawn in
 * place every tick; otherwise one plain line per `plainEveryS` and a line per
 * notable event (kills, ejections, endpoint changes, breakers).
 */
export function createStatus(options: {
  readonly out: NodeJS.WriteStream;
  readonly stats: RunStats;
  readonly fleet: Fleet;
  readonly durationS: number;
  readonly header: string;
  readonly plainEveryS?: number;
}) {
  const { out, stats, fleet, durationS } = options;
  const tty = out.isTTY === true;
  const plainEveryS = options.plainEveryS ?? 2;
  let previous: Snapshot = snapshot();
  let lastPlain = 0;
  let drawnLines = 0;
  let timer: NodeJS.Timeout | undefined;
  // Plain mode prints events on the next tick, when the names of new
  // addresses are known (a replica's "ready" can trail its registration).
  const pending: NotableEvent[] = [];
  const flushEvents = () => {
    for (const e of pending.splice(0)) {
      out.write(`${e.atS.toFixed(1).padStart(5)} s  * ${e.text()}\n`);
    }
  };

  function requestsBy(): Map<string, number> {
    const m = new Map<string, number>();
    for (const r of fleet.replicas.values()) {
      let n = 0;
      for (const inc of r.incarnations) {
        for (const v of Object.values(inc.stats?.requests ?? {})) n += v;
      }
      m.set(r.name, n);
    }
    return m;
  }

  function snapshot(): Snapshot {
    return {
      atS: stats.elapsedS(),
      calls: stats.calls,
      retries: stats.retries,
      latencyIndex: stats.latencies.length,
      requests: requestsBy(),
    };
  }

  function measure() {
    const now = snapshot();
    const dt = Math.max(0.001, now.atS - previous.atS);
    const rate = (now.calls - previous.calls) / dt;
    const recent = stats.latencies.slice(previous.latencyIndex).sort((a, b) => a - b);
    const share = new Map<string, number>();
    let total = 0;
    for (const [name, n] of now.requests) total += n - (previous.requests.get(name) ?? 0);
    for (const [name, n] of now.requests) {
      share.set(name, total === 0 ? 0 : (n - (previous.requests.get(name) ?? 0)) / total);
    }
    const result = {
      now,
      rate,
      retryRate: (now.retries - previous.retries) / dt,
      p50: percentile(recent, 0.5),
      p99: percentile(recent, 0.99),
      share,
    };
    previous = now;
    return result;
  }

  const successText = () => {
    if (stats.calls === 0) return "-";
    return `${((100 * stats.ok) / stats.calls).toFixed(2)}%`;
  };
  const failedText = () => {
    const failed = stats.calls - stats.ok;
    if (failed === 0) return "0 failed";
    return `${failed} failed (${[...stats.failedByCode].map(([c, n]) => `${c} ${n}`).join(", ")})`;
  };
  const breakersText = () => {
    const entries = [...stats.breakers].filter(([, s]) => s !== "closed");
    if (entries.length === 0) return tty ? color("all closed", 32, tty) : "all closed";
    return entries.map(([k, s]) => color(`${shortMethod(k)} ${s}`, 33, tty)).join(", ");
  };

  function replicaState(name: string): string {
    const r = fleet.replicas.get(name);
    const inc = r?.incarnations.at(-1);
    if (r === undefined || inc === undefined) return "";
    const restarted = inc.number > 1 ? ` (restart #${inc.number - 1})` : "";
    switch (inc.state) {
      case "starting":
        return color(`starting${restarted}`, 33, tty);
      case "serving":
        return `pid ${inc.pid} ${inc.address ?? ""}${restarted}`;
      case "killed":
        return color(`killed (pid ${inc.pid})`, 31, tty);
      case "stopping":
        return "stopping";
      case "stopped":
        return "stopped";
      case "exited":
        return color(`exited (pid ${inc.pid})`, 31, tty);
    }
  }

  function drawTty() {
    const m = measure();
    const width = Math.max(60, out.columns ?? 100);
    const lines: string[] = [];
    const t = Math.min(durationS, m.now.atS);
    lines.push(`${bold(options.header, tty)}  ${dim(`${t.toFixed(1)} / ${durationS} s`, tty)}`);
    lines.push(
      `  calls/s ${bold(m.rate.toFixed(0).padStart(5), tty)}   in flight ${String(stats.inFlight).padStart(3)}   success ${bold(successText(), tty)}  ${stats.ok} ok, ${failedText()}`,
    );
    lines.push(
      `  retries ${String(stats.retries).padStart(5)} (${m.retryRate.toFixed(0)}/s, ${stats.transparentRetries} transparent)   replays ${stats.replays}   p50 ${fmtMs(m.p50)}  p99 ${fmtMs(m.p99)}`,
    );
    lines.push(
      `  breakers ${breakersText()}   ejections ${stats.ejections}${stats.ejected.size > 0 ? ` (now: ${[...stats.ejected].map(stats.nameOf).join(", ")})` : ""}   endpoints ${stats.endpoints} (${stats.endpointChanges} changes)`,
    );
    lines.push("");
    for (const r of fleet.replicas.values()) {
      const share = m.share.get(r.name) ?? 0;
      const bar = "█".repeat(Math.round(share * 30)).padEnd(30, "·");
      lines.push(
        `  ${r.name.padEnd(10)} ${bar} ${(share * 100).toFixed(0).padStart(3)}%  ${ROLE_TEXT[r.role].padEnd(56)} ${replicaState(r.name)}`,
      );
    }
    lines.push("");
    const recent = stats.notable.slice(-5);
    for (let i = 0; i < 5; i++) {
      const e = recent[i];
      lines.push(
        e === undefined ? "" : dim(`  ${e.atS.toFixed(1).padStart(5)} s  ${e.text()}`, tty),
      );
    }
    let text = drawnLines > 0 ? `${ESC}${drawnLines}F` : "";
    for (const l of lines) text += `${ESC}2K${truncate(l, width)}\n`;
    out.write(text);
    drawnLines = lines.length;
  }

  function drawPlain(force = false) {
    const at = stats.elapsedS();
    if (!force && at - lastPlain < plainEveryS) return;
    lastPlain = at;
    const m = measure();
    const share = [...m.share]
      .map(([n, s]) => `${n.replace("replica-", "r")} ${(s * 100).toFixed(0)}%`)
      .join(" ");
    const breakers = [...stats.breakers].filter(([, st]) => st !== "closed");
    out.write(
      `${at.toFixed(1).padStart(5)} s  ${m.rate.toFixed(0).padStart(4)} calls/s  ok ${successText()}  retries ${stats.retries}  replays ${stats.replays}  p50 ${fmtMs(m.p50)} p99 ${fmtMs(m.p99)}  share ${share}  ejected ${stats.ejected.size}  endpoints ${stats.endpoints}  breakers ${breakers.length === 0 ? "closed" : breakers.map(([k, st]) => `${shortMethod(k)} ${st}`).join(",")}\n`,
    );
  }

  return {
    start() {
      previous = snapshot();
      if (tty) {
        out.write(`${ESC}?25l`);
        stats.onNotable = () => {};
      } else {
        stats.onNotable = (e) => pending.push(e);
      }
      timer = setInterval(
        () => {
          if (tty) return drawTty();
          flushEvents();
          drawPlain();
        },
        tty ? 500 : 250,
      );
    },
    /** note prints a line of the demo's own (kills, restarts) as an event. */
    note(text: string) {
      stats.note(text);
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      if (tty) {
        drawTty();
        out.write(`${ESC}?25h`);
      } else {
        flushEvents();
        drawPlain(true);
      }
      stats.onNotable = () => {};
    },
    /** restoreCursor undoes what start did to the terminal (for exit handlers). */
    restoreCursor() {
      if (tty) out.write(`${ESC}?25h`);
    },
  };
}

/** fmtMs formats milliseconds for people. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(0)} ms`;
}

// truncate cuts a line to the terminal width, not counting escape sequences.
function truncate(line: string, width: number): string {
  let visible = 0;
  let out = "";
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\x1b") {
      const end = line.indexOf("m", i);
      const seq = end < 0 ? line.slice(i) : line.slice(i, end + 1);
      out += seq;
      i += seq.length - 1;
      continue;
    }
    if (visible >= width - 1) continue;
    out += line[i];
    visible++;
  }
  return out;
}
