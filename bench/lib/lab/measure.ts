// Measured windows over running load generators. A `cut` ends every load
// generator's current phase and starts the next at (nearly) the same
// instant. Calls count in the phase they started in, and carry it to the
// servers (`x-bench-phase`), which count attempts per client and phase; so
// once the load is drained (`finish`), each phase's figures are exact —
// server attempts caused by the calls started in it, whenever they ran —
// and do not depend on when the processes' event loops saw the cut. CPU and
// other load are measured between the runner's cut times.

import type { Lab, Loadgen, ReplicaGroup } from "./lab.js";
import { sleep } from "./lab.js";
import { treeCpuUs } from "./procload.js";
import type { PhaseStats, ReplicaCounts } from "./protocol.js";

export interface Window {
  readonly stats: PhaseStats;
  /** perReplica: server-side attempts, ok and errors of this client's calls started in the phase. */
  readonly perReplica: ReadonlyArray<{
    name: string;
    attempts: number;
    ok: number;
    errors: number;
  }>;
  readonly attempts: number;
  readonly otherLoadCores: number;
  /** clientCpuCores is the load generator process's CPU over the window, in cores. */
  readonly clientCpuCores: number;
  /** serverCpuCores is the replica processes' CPU over the window, in cores. */
  readonly serverCpuCores: number;
  /** elapsedMs is the phase's length (from the runner's cut to the next). */
  readonly elapsedMs: number;
}

interface CutRecord {
  readonly id: string;
  readonly t: number;
  readonly clientCpuUs: readonly number[];
  readonly serverCpuUs: number;
  /** otherLoadCores over the phase that this cut ended. */
  otherLoadCores: number;
}

/** Cutter cuts running load generators into phases and measures them. */
export class Cutter {
  private readonly cuts: CutRecord[] = [];
  private n = 0;

  constructor(
    private readonly lab: Lab,
    readonly clients: readonly Loadgen[],
    readonly groups: readonly ReplicaGroup[],
  ) {}

  /**
   * cut ends the current phase of every client and starts one labelled
   * `label`; it returns the new phase's id (for `window`) and the ended
   * phase's stats so far (calls still in flight are missing).
   */
  async cut(label: string): Promise<{ id: string; ended: PhaseStats[] }> {
    const id = `${label}#${this.n++}`;
    const ended = await Promise.all(this.clients.map((c) => c.phase(id)));
    const t = performance.now();
    const prev = this.cuts[this.cuts.length - 1];
    if (prev !== undefined) {
      prev.otherLoadCores = this.lab.load.cores();
    }
    this.lab.load.reset();
    this.cuts.push({
      id,
      t,
      clientCpuUs: this.clients.map((c) =>
        c.child.pid === undefined ? Number.NaN : treeCpuUs(c.child.pid),
      ),
      serverCpuUs: this.groups.reduce(
        (acc, g) => acc + (g.child.pid === undefined ? Number.NaN : treeCpuUs(g.child.pid)),
        0,
      ),
      otherLoadCores: Number.NaN,
    });
    return { id, ended };
  }

  /**
   * finish ends the last phase, stops the load, waits for calls in flight
   * (up to `drainWaitMs`, default 5 s), and returns a function giving each
   * client's Window of a phase id.
   */
  async finish(drainWaitMs?: number): Promise<(id: string) => Window[]> {
    await this.cut("end");
    const phases = await Promise.all(this.clients.map((c) => c.drain(drainWaitMs)));
    // A group that was killed on purpose has no counts any more.
    const counts = (
      await Promise.all(this.groups.map((g) => g.counts().catch(() => undefined)))
    ).filter((c): c is ReplicaCounts => c !== undefined);
    return (id) => {
      const k = this.cuts.findIndex((c) => c.id === id);
      const start = this.cuts[k];
      const end = this.cuts[k + 1];
      if (start === undefined || end === undefined) {
        throw new Error(`no complete phase ${id}`);
      }
      const elapsedMs = end.t - start.t;
      return this.clients.map((c, i) => {
        const stats = phases[i]?.find((p) => p.name === id);
        if (stats === undefined) {
          throw new Error(`client ${c.tag} has no phase ${id}`);
        }
        const perReplica = counts.flatMap((rc: ReplicaCounts) =>
          rc.replicas.map((x) => {
            const pc = x.byPhase[`${c.tag}/${id}`];
            return {
              name: x.name,
              attempts: pc?.attempts ?? 0,
              ok: pc?.ok ?? 0,
              errors: pc?.errors ?? 0,
            };
          }),
        );
        return {
          stats,
          perReplica,
          attempts: perReplica.reduce((a, x) => a + x.attempts, 0),
          otherLoadCores: start.otherLoadCores,
          clientCpuCores:
            ((end.clientCpuUs[i] as number) - (start.clientCpuUs[i] as number)) /
            (elapsedMs * 1000),
          serverCpuCores: (end.serverCpuUs - start.serverCpuUs) / (elapsedMs * 1000),
          elapsedMs,
        };
      });
    };
  }
}

/**
 * measureWindow runs the load generator for one phase of `durationMs`, then
 * drains it (it makes no more calls afterwards) and returns the phase's Window.
 */
export async function measureWindow(
  lab: Lab,
  lg: Loadgen,
  groups: readonly ReplicaGroup[],
  label: string,
  durationMs: number,
): Promise<Window> {
  const cutter = new Cutter(lab, [lg], groups);
  const { id } = await cutter.cut(label);
  await sleep(durationMs);
  const windows = await cutter.finish();
  return windows(id)[0] as Window;
}

/**
 * settle keeps the load running, cutting every `stepMs`, until one phase has
 * no failed call and no skipped start for every client (a breaker opened by a
 * slow start-up has closed again, connections are warm), or `maxMs` passes.
 */
export async function settle(
  cutter: Cutter,
  opts: { minMs: number; maxMs: number; stepMs?: number },
): Promise<{ clean: boolean; waitedMs: number }> {
  const stepMs = opts.stepMs ?? 500;
  const t0 = performance.now();
  await cutter.cut("settle");
  await sleep(opts.minMs);
  for (;;) {
    const { ended } = await cutter.cut("settle");
    const clean = ended.every((s) => s.errors === 0 && s.skipped === 0 && s.ok > 0);
    const waitedMs = performance.now() - t0;
    if (clean || waitedMs >= opts.maxMs) {
      return { clean, waitedMs };
    }
    await sleep(stepMs);
  }
}
