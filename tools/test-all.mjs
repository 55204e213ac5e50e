// The whole suite, as CI runs it: the checks (fmt, lint, types, docs), then
// the tests under Deno, Bun and Node.js. Every step runs even when an earlier
// one failed, so one run shows every failure; the summary at the end gives
// each runner's passed, failed and skipped counts, and the exit code is 1 if
// any step failed.
//
//   npm test --prefix tools        (from the repository root)

import { runSteps, testSteps } from "./_steps.mjs";

process.exit(
  await runSteps([
    ["checks (fmt, lint, types, docs, publish)", "deno", ["task", "check"]],
    ...testSteps(),
  ]),
);
