// The test command of each runtime, as CI runs it: one definition for the
// whole suite (test-all.mjs, .ci/run) and for one file (test-file.mjs), so
// the two cannot drift. Deno's flags live in deno.json's `test:file` task,
// which `test` extends.

import { spawn } from "node:child_process";
import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * The test steps of every runtime, each `[name, command, args]`: the whole
 * suite, or only `files` (paths from the repository root, e.g.
 * tests/unit/codec.test.ts).
 */
export function testSteps(files = []) {
  const whole = files.length === 0;
  return [
    [
      "tests under Deno",
      "deno",
      whole ? ["task", "test"] : ["task", "test:file", ...files],
    ],
    [
      "tests under Bun",
      "bun",
      // A path without ./ would be a name filter to bun test, not a file.
      [
        "test",
        "--timeout",
        "30000",
        ...(whole ? ["./tests/"] : files.map(explicitPath)),
      ],
    ],
    ["tests under Node.js", process.execPath, [
      "tools/test-node.mjs",
      ...files,
    ]],
  ];
}

function explicitPath(file) {
  return isAbsolute(file) || file.startsWith("./") ? file : `./${file}`;
}

// deno-lint-ignore no-control-regex
const COLOURS = /\x1b\[[0-9;]*m/g;

/**
 * The counts a runner's closing lines give (Deno, Bun, node:test's spec
 * reporter), or undefined where it printed none.
 */
export function counts(output) {
  const text = output.replace(COLOURS, "");
  const deno = [
    ...text.matchAll(
      /^(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \(\d+ steps?\))?(?: \| (\d+) ignored)?/gm,
    ),
  ].at(-1);
  if (deno) {
    return { passed: +deno[1], failed: +deno[2], skipped: +(deno[3] ?? 0) };
  }
  const last = (pattern) => {
    const found = [...text.matchAll(pattern)].at(-1);
    return found === undefined ? undefined : +found[1];
  };
  const bun = {
    passed: last(/^\s*(\d+) pass$/gm),
    failed: last(/^\s*(\d+) fail$/gm),
    skipped: last(/^\s*(\d+) skip$/gm) ?? 0,
  };
  if (bun.passed !== undefined && bun.failed !== undefined) return bun;
  const node = {
    passed: last(/^ℹ pass (\d+)$/gm),
    failed: last(/^ℹ fail (\d+)$/gm),
    skipped: last(/^ℹ skipped (\d+)$/gm) ?? 0,
  };
  if (node.passed !== undefined && node.failed !== undefined) return node;
  return undefined;
}

/** Keeps the last `limit` characters of a stream it also passes through. */
function tail(limit, into) {
  let kept = "";
  return {
    write(chunk) {
      into.write(chunk);
      kept = (kept + chunk.toString("utf8")).slice(-limit);
    },
    get text() {
      return kept;
    },
  };
}

/** Runs `command`, its output shown as it comes; its exit code and tails. */
function run(command, args) {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      stdio: ["inherit", "pipe", "pipe"],
    });
    const out = tail(20_000, process.stdout);
    const err = tail(20_000, process.stderr);
    child.stdout.on("data", (chunk) => out.write(chunk));
    child.stderr.on("data", (chunk) => err.write(chunk));
    child.on("error", (error) => resolve({ code: 1, why: error.message }));
    child.on("close", (code, signal) =>
      resolve({
        code: code ?? 1,
        why: signal ? `ended by ${signal}` : undefined,
        output: out.text + "\n" + err.text,
      }));
  });
}

/**
 * Runs every step, even after a failure, so one run shows every failure;
 * then a summary with each runner's counts. Resolves with the exit code: 1
 * if any step failed.
 */
export async function runSteps(steps) {
  const results = [];
  for (const [name, command, args] of steps) {
    const started = performance.now();
    console.log(`\n=== ${name}: ${command} ${args.join(" ")}\n`);
    const { code, why, output } = await run(command, args);
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    const counted = output === undefined ? undefined : counts(output);
    results.push({ name, failed: code !== 0, seconds, why, counted });
  }

  console.log("\n=== summary");
  const total = { passed: 0, failed: 0, skipped: 0 };
  let allCounted = true;
  for (const { name, failed, seconds, why, counted } of results) {
    const tally = counted === undefined
      ? ""
      : `: ${counted.passed} passed, ${counted.failed} failed, ${counted.skipped} skipped`;
    console.log(
      `${failed ? "FAILED" : "passed"}  ${name} (${seconds} s)${tally}${
        why ? ` (${why})` : ""
      }`,
    );
    if (name.startsWith("tests ")) {
      if (counted === undefined) allCounted = false;
      else for (const key in total) total[key] += counted[key];
    }
  }
  // The plain closing line, when every runner said its counts.
  if (allCounted) {
    console.log(
      `tests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`,
    );
  }
  return results.some((result) => result.failed) ? 1 : 0;
}
