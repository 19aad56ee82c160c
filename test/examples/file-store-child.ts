// Child process for file-store.test.ts: races the parent for the same keys
// in a shared dir. argv: dir, key prefix, count. Reads a wall-clock start
// time on stdin and starts then (so both processes race), then prints one JSON line:
// { claimed: string[], completed: string[] }.
import { createFileIdempotencyStore } from "../../src/idempotency/file-store.js";

const [dir, prefix, countText] = process.argv.slice(2);
if (dir === undefined || prefix === undefined || countText === undefined) {
  throw new Error("usage: file-store-child.ts <dir> <prefix> <count>");
}
const store = createFileIdempotencyStore({ dir });
const count = Number(countText);

process.stdin.once("data", async (data) => {
  const startAt = Number(String(data).trim());
  await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())));
  const claimed: string[] = [];
  const completed: string[] = [];
  // Four workers walk the keys in order, as the parent does: every key is contended.
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = next++; i < count; i = next++) {
        const key = `${prefix}-${i}`;
        const c = await store.claim(key, "fp", 10_000);
        if (c.state !== "claimed") continue;
        claimed.push(key);
        const ok = await store.complete(
          key,
          c.token,
          { kind: "ok", message: new Uint8Array([1]), header: [["x-by", "child"]], trailer: [] },
          60_000,
        );
        if (ok) completed.push(key);
      }
    }),
  );
  process.stdout.write(`${JSON.stringify({ claimed, completed })}\n`);
  process.exit(0);
});
process.stdout.write("ready\n");
