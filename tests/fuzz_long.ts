// The long decoder fuzz run: `deno task fuzz` (or `bun tests/fuzz_long.ts`).
//
//   deno task fuzz                          # 2,000,000 cases, seed from the clock
//   deno task fuzz --seed 42 --cases 5e6    # a chosen seed and count
//   deno task fuzz --seed 42 --from 1234 --cases 1   # replay one failing case
//   deno task fuzz --only proxy             # the PROXY header decoder only
//
// Without --only, each case index runs the frame decoder's case and the PROXY
// header decoder's case of that index.
//
// FUZZ_SEED and FUZZ_CASES in the environment work too. Prints the seed, the
// cases run and every failure (index and what went wrong); exits 1 on any.

import { generate, run } from "./_fuzz.ts";
import { generateProxy, runProxy } from "./_fuzz_proxy.ts";

const args: string[] = "Deno" in globalThis
  ? Deno.args
  : (globalThis as unknown as { process: { argv: string[] } }).process.argv
    .slice(2);

function env(name: string): string | undefined {
  try {
    return "Deno" in globalThis
      ? Deno.env.get(name)
      : (globalThis as unknown as { process: { env: Record<string, string> } })
        .process.env[name];
  } catch {
    return undefined; // no --allow-env
  }
}

function option(name: string): string | undefined {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : env(`FUZZ_${name.toUpperCase()}`);
}

const seed = Number(option("seed") ?? (Date.now() % 0x1_0000_0000)) >>> 0;
const cases = Number(option("cases") ?? 2_000_000);
const from = Number(option("from") ?? 0);
const only = option("only");
if (only !== undefined && only !== "frames" && only !== "proxy") {
  throw new RangeError('--only must be "frames" or "proxy"');
}
if (!Number.isSafeInteger(cases) || cases < 1 || !Number.isSafeInteger(from)) {
  throw new RangeError("--cases must be a positive integer, --from an integer");
}

console.log(
  `decoder fuzz (${only ?? "frames and proxy"}): seed ${seed}, cases ${from}..${
    from + cases - 1
  }`,
);
const started = performance.now();
const STEP = 100_000;
let done = 0;
let failed = 0;
const outcomes: Record<string, number> = {};
for (let at = from; at < from + cases; at += STEP) {
  const count = Math.min(STEP, from + cases - at);
  if (only !== "frames") {
    const report = runProxy(seed, count, at);
    failed += report.failed;
    for (const [k, v] of Object.entries(report.outcomes)) {
      outcomes[`proxy ${k}`] = (outcomes[`proxy ${k}`] ?? 0) + v;
    }
    for (const failure of report.failures) {
      const c = generateProxy(seed, failure.index);
      console.log(
        `FAIL proxy seed ${seed} case ${failure.index} (${c.bytes.length} bytes in ${c.chunks.length} chunks, ${failure.mutation}): ${failure.problem}`,
      );
    }
    if (only === "proxy") {
      done += report.cases;
      continue;
    }
  }
  const report = run(seed, count, at);
  done += report.cases;
  failed += report.failed;
  for (const [k, v] of Object.entries(report.outcomes)) {
    outcomes[k] = (outcomes[k] ?? 0) + v;
  }
  for (const failure of report.failures) {
    const c = generate(seed, failure.index);
    console.log(
      `FAIL seed ${seed} case ${failure.index} (protocol ${c.protocol}, maxFrameSize ${c.maxFrameSize}, ${c.bytes.length} bytes in ${c.chunks.length} chunks, ${failure.mutation}): ${failure.problem}`,
    );
  }
  if (cases > STEP) {
    const seconds = (performance.now() - started) / 1000;
    console.log(`  ${done} cases, ${failed} failures, ${seconds.toFixed(1)} s`);
  }
}
const seconds = (performance.now() - started) / 1000;
console.log(
  `cases run: ${done}; failures: ${failed}; seed: ${seed}; outcomes: ${
    JSON.stringify(outcomes)
  }; ${seconds.toFixed(1)} s`,
);
if (failed > 0) {
  if ("Deno" in globalThis) Deno.exit(1);
  (globalThis as unknown as { process: { exit(code: number): never } }).process
    .exit(1);
}
