// Machine-wide CPU use from /proc/stat (Linux), to tell how much CPU other
// processes took while a window was measured. This machine may be shared, and
// a busy neighbour skews every figure; the report shows it per configuration.

import { readFileSync } from "node:fs";

/** USER_HZ: /proc/stat counts in clock ticks of 1/100 s on Linux. */
const TICK_US = 10_000;

export interface CpuTimes {
  /** busyUs is non-idle CPU time summed over all CPUs since boot. */
  readonly busyUs: number;
  readonly atMs: number;
}

/** readCpuTimes returns undefined where /proc/stat is missing (non-Linux). */
export function readCpuTimes(): CpuTimes | undefined {
  let text: string;
  try {
    text = readFileSync("/proc/stat", "latin1");
  } catch {
    return undefined;
  }
  const line = text.split("\n", 1)[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isFinite(n))) {
    return undefined;
  }
  // user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return {
    busyUs: (user + nice + system + irq + softirq + steal) * TICK_US,
    atMs: performance.now(),
  };
}

/**
 * otherCores is the average number of cores kept busy between two readings
 * by everything except `ownCpuUs` (the benchmark's own processes).
 */
export function otherCores(a: CpuTimes, b: CpuTimes, ownCpuUs: number): number {
  const wallUs = (b.atMs - a.atMs) * 1000;
  if (wallUs <= 0) {
    return Number.NaN;
  }
  return Math.max(0, (b.busyUs - a.busyUs - ownCpuUs) / wallUs);
}

/** sampleOtherCores measures other processes' load over `ms` while the benchmark is idle. */
export async function sampleOtherCores(ms: number): Promise<number> {
  const a = readCpuTimes();
  const own = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = readCpuTimes();
  const d = process.cpuUsage(own);
  if (a === undefined || b === undefined) {
    return Number.NaN;
  }
  return otherCores(a, b, d.user + d.system);
}
