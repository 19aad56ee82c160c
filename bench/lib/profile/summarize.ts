// Self time of a V8 CPU profile (`node --cpu-prof` output) by layer, over a
// time window, as µs per call.

import { layerOf } from "./layers.js";

/** CpuProfile is the part of V8's `.cpuprofile` JSON this reads. */
export interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number;
    readonly callFrame: {
      readonly functionName: string;
      readonly url: string;
      readonly lineNumber: number;
    };
    readonly children?: readonly number[];
  }>;
  /** startTime and timeDeltas are µs on the monotonic clock (process.hrtime's). */
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** LayerRow is one layer's self time in the window. */
export interface LayerRow {
  readonly layer: string;
  readonly us_per_call: number;
  /** pct is the share of the sampled busy time (everything but idle). */
  readonly pct: number | null;
  readonly self_ms: number;
}

/** HotFunction is one of the functions with the most self time. */
export interface HotFunction {
  readonly function: string;
  readonly where: string;
  readonly layer: string;
  readonly us_per_call: number;
  readonly pct: number;
}

/** ProfileSummary is one process's profile over the window. */
export interface ProfileSummary {
  readonly window_ms: number;
  readonly samples: number;
  /** busy_us_per_call is the sampled time that was not idle, per call. */
  readonly busy_us_per_call: number;
  readonly layers: readonly LayerRow[];
  readonly top: readonly HotFunction[];
}

const round1 = (v: number) => Math.round(v * 10) / 10;

/**
 * summarizeProfile charges each sample inside [fromUs, toUs) to the layer of
 * its frame; a native frame (no script) is charged to its nearest JavaScript
 * caller, so e.g. a Buffer copy done for Connect counts as Connect's. A
 * sample lasts until the next one.
 */
export function summarizeProfile(
  profile: CpuProfile,
  fromUs: number,
  toUs: number,
  calls: number,
  repoRoot: string,
  topN = 25,
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    for (const c of n.children ?? []) {
      parent.set(c, n.id);
    }
  }
  const layerCache = new Map<number, string>();
  const layerOfNode = (id: number): string => {
    const cached = layerCache.get(id);
    if (cached !== undefined) {
      return cached;
    }
    let layer: string | undefined;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)?.callFrame;
      if (f === undefined) {
        break;
      }
      layer = layerOf(f.functionName, f.url, repoRoot);
      if (layer !== undefined) {
        break;
      }
    }
    const out = layer ?? "native (no JS caller)";
    layerCache.set(id, out);
    return out;
  };

  const layerUs = new Map<string, number>();
  const fnUs = new Map<number, number>();
  let t = profile.startTime;
  let samples = 0;
  const n = profile.samples.length;
  for (let i = 0; i < n; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (t < fromUs || t >= toUs) {
      continue;
    }
    const next = i + 1 < n ? (profile.timeDeltas[i + 1] ?? 0) : 0;
    const dur = Math.max(0, Math.min(next, toUs - t));
    const id = profile.samples[i] as number;
    const layer = layerOfNode(id);
    layerUs.set(layer, (layerUs.get(layer) ?? 0) + dur);
    fnUs.set(id, (fnUs.get(id) ?? 0) + dur);
    samples++;
  }
  const totalUs = [...layerUs.values()].reduce((a, b) => a + b, 0);
  const busyUs = totalUs - (layerUs.get("idle") ?? 0);
  const perCall = (us: number) => (calls > 0 ? round1(us / calls) : 0);
  const layers = [...layerUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([layer, us]) => ({
      layer,
      us_per_call: perCall(us),
      pct: layer === "idle" || busyUs === 0 ? null : round1((100 * us) / busyUs),
      self_ms: round1(us / 1000),
    }));

  // Hot functions: merge nodes of the same function (it appears once per call path).
  const fnTotals = new Map<string, { f: HotFunction; us: number }>();
  for (const [id, us] of fnUs) {
    const node = byId.get(id);
    if (node === undefined) {
      continue;
    }
    const f = node.callFrame;
    const layer = layerOfNode(id);
    if (layer === "idle") {
      continue;
    }
    const where = f.url === "" ? "(native)" : `${shortUrl(f.url, repoRoot)}:${f.lineNumber + 1}`;
    const key = `${f.functionName}@${where}@${layer}`;
    const prev = fnTotals.get(key);
    const name = f.functionName === "" ? "(anonymous)" : f.functionName;
    fnTotals.set(key, {
      f: { function: name, where, layer, us_per_call: 0, pct: 0 },
      us: (prev?.us ?? 0) + us,
    });
  }
  const top = [...fnTotals.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map(({ f, us }) => ({
      ...f,
      us_per_call: perCall(us),
      pct: busyUs === 0 ? 0 : round1((100 * us) / busyUs),
    }));
  return {
    window_ms: round1((toUs - fromUs) / 1000),
    samples,
    busy_us_per_call: perCall(busyUs),
    layers,
    top,
  };
}

function shortUrl(url: string, repoRoot: string): string {
  const path = url.startsWith("file://") ? decodeURIComponent(url.slice("file://".length)) : url;
  const nm = path.lastIndexOf("/node_modules/");
  if (nm !== -1) {
    return path.slice(nm + "/node_modules/".length);
  }
  return path.startsWith(repoRoot) ? path.slice(repoRoot.length) : path;
}
