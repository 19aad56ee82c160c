// "Other load" for the lab suites: machine-wide busy CPU (/proc/stat) minus
// the CPU of this process and all its descendants (bench children, etcd),
// read from /proc/<pid>/stat. Linux only; NaN elsewhere.

import { readdirSync, readFileSync } from "node:fs";
import { readCpuTimes } from "../sysload.js";

const TICK_US = 10_000;

interface ProcStat {
  readonly ppid: number;
  /** cpuUs is utime + stime + cutime + cstime: its own CPU and that of its reaped children. */
  readonly cpuUs: number;
}

function readProcStat(pid: string): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses: fields start after the last ")".
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); ppid is field 4, utime..cstime are fields 14..17.
  const ppid = Number(rest[1]);
  const ticks = [11, 12, 13, 14].reduce((acc, i) => acc + Number(rest[i] ?? 0), 0);
  return Number.isFinite(ppid) && Number.isFinite(ticks)
    ? { ppid, cpuUs: ticks * TICK_US }
    : undefined;
}

/**
 * treeCpuUs sums the CPU of `root` and its live descendants (each including
 * its reaped children), so the total stays continuous when a child exits.
 */
export function treeCpuUs(root = process.pid): number {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((n) => /^\d+$/.test(n));
  } catch {
    return Number.NaN;
  }
  const stats = new Map<number, ProcStat>();
  for (const p of pids) {
    const s = readProcStat(p);
    if (s !== undefined) {
      stats.set(Number(p), s);
    }
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) {
    const list = children.get(s.ppid) ?? [];
    list.push(pid);
    children.set(s.ppid, list);
  }
  let total = 0;
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    total += stats.get(pid)?.cpuUs ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** OtherLoadMeter measures the cores used by processes outside the benchmark over a window. */
export class OtherLoadMeter {
  private sys = readCpuTimes();
  private own = treeCpuUs();

  /** reset starts a new window. */
  reset(): void {
    this.sys = readCpuTimes();
    this.own = treeCpuUs();
  }

  /** cores is the average number of cores other processes used since the last reset. */
  cores(): number {
    const sys = readCpuTimes();
    const own = treeCpuUs();
    if (sys === undefined || this.sys === undefined || !Number.isFinite(own)) {
      return Number.NaN;
    }
    const wallUs = (sys.atMs - this.sys.atMs) * 1000;
    if (wallUs <= 0) {
      return Number.NaN;
    }
    return Math.max(0, (sys.busyUs - this.sys.busyUs - (own - this.own)) / wallUs);
  }

  /** ownCores is the average number of cores the benchmark's processes used since the last reset. */
  ownCores(): number {
    const sys = readCpuTimes();
    const own = treeCpuUs();
    if (sys === undefined || this.sys === undefined) {
      return Number.NaN;
    }
    const wallUs = (sys.atMs - this.sys.atMs) * 1000;
    return wallUs > 0 ? (own - this.own) / wallUs : Number.NaN;
  }
}
