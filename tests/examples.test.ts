// The examples run, as a reader would run them, under the runtime running the
// tests (Node.js: the compiled examples beside the compiled package).

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { runtimeExecutable, spawn } from "./_spawn.ts";

function example(name: string): string {
  const compiled = import.meta.url.endsWith(".js");
  return decodeURIComponent(
    new URL(`../examples/${name}.${compiled ? "js" : "ts"}`, import.meta.url)
      .pathname,
  );
}

test("examples/streams: a bare socket through the codec's streams talks to a Server", async () => {
  const args = runtime === "deno"
    ? ["run", "-N", example("streams")]
    : [example("streams")];
  const child = await spawn(runtimeExecutable(), args);
  try {
    await child.closeStdin();
    assert.equal(await child.exited, 0, child.stderr());
    const lines = child.stdout().trim().split("\n");
    assert.equal(lines.length, 2, child.stdout());
    assert.match(lines[1], /^[0-9a-f-]{36} echo: hello 1$/);
  } finally {
    await child.kill();
  }
});

test("examples/shutdown: SIGTERM stops server and client, and the process ends by itself", async () => {
  const args = runtime === "deno"
    ? ["run", "-N", example("shutdown")]
    : [example("shutdown")];
  const child = await spawn(runtimeExecutable(), args);
  try {
    await child.waitFor(/^listening on /, 10_000);
    child.signal("SIGTERM");
    assert.equal(await child.exited, 0, child.stderr());
    assert.match(child.stdout(), /SIGTERM: stopping\nstopped\n$/);
  } finally {
    await child.kill();
  }
});
