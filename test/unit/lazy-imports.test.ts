// Importing connect-mesh loads no package only some features need: those load
// with the first object that uses them (src/lazy-module.ts), so a process pays
// their memory only when it uses them.

import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

it("importing the library loads neither dns-packet nor ioredis nor bullmq", () => {
  const script = `
    import { createRequire } from "node:module";
    await import(${JSON.stringify(`${ROOT}src/index.ts`)});
    const cache = createRequire(import.meta.url).cache;
    const loaded = Object.keys(cache).flatMap((k) => {
      const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(k);
      return m === null ? [] : [m[1]];
    });
    console.log(JSON.stringify([...new Set(loaded)]));
  `;
  const out = execFileSync(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script],
    { cwd: ROOT, encoding: "utf8" },
  );
  const packages = JSON.parse(out.trim().split("\n").at(-1) ?? "[]") as string[];
  expect(packages).not.toContain("dns-packet");
  expect(packages).not.toContain("ioredis");
  expect(packages).not.toContain("bullmq");
}, 30_000);
