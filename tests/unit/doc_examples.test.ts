// Doc examples assert with node:assert: `console.assert` only logs, so an
// example using it passes `deno test --doc` whatever it computes.

import assert from "node:assert/strict";
import { runtime, test } from "../_harness.ts";

// A variable specifier keeps tsc (the Node.js build) from resolving it early.
const fsModule = "node:fs/promises";

// The Node.js run works on compiled JavaScript, without the sources'
// comments; Deno and Bun read the sources.
const skip = import.meta.url.endsWith(".ts")
  ? undefined
  : `no sources to scan for doc examples on ${runtime}`;

test("doc examples assert with node:assert, never console.assert", async () => {
  const { readdir, readFile } = await import(fsModule);
  const root = new URL("../../", import.meta.url);
  const offenders: string[] = [];
  for (const dir of ["", "transport/", "cli/"]) {
    for (const name of await readdir(new URL(dir, root))) {
      if (!name.endsWith(".ts")) continue;
      const text: string = await readFile(new URL(dir + name, root), "utf8");
      text.split("\n").forEach((line, i) => {
        if (/^\s*\*.*console\.assert\(/.test(line)) {
          offenders.push(`${dir}${name}:${i + 1}`);
        }
      });
    }
  }
  assert.deepEqual(offenders, []);
}, { skip });
