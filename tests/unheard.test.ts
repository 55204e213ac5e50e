// Issue 11, item 4: an `exception` that nobody listens to is printed on
// stderr (rate-limited), and an `exception` listener that throws is said once.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { HOST, until } from "./_helpers.ts";
import { Client, Server, TimeoutError } from "../mod.ts";
import { UNHEARD_PER_WINDOW, UnheardErrors } from "../_unheard.ts";

/** Runs `fn` with console.error captured; returns the printed lines. */
async function capturingStderr(
  fn: (lines: string[]) => Promise<void>,
): Promise<string[]> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => {
    lines.push(
      args.map((arg) =>
        arg instanceof Error ? `${arg.name}: ${arg.message}` : String(arg)
      )
        .join(" "),
    );
  };
  try {
    await fn(lines);
  } finally {
    console.error = original;
  }
  return lines;
}

test("unheard: a data listener's TypeError with no exception listener is printed on stderr; the server goes on", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  let calls = 0;
  server.on("data", (socket, message) => {
    if (++calls === 1) {
      (undefined as unknown as { boom(): void }).boom();
    }
    socket.send(message);
  });
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  const lines = await capturingStderr(async () => {
    await assert.rejects(
      client.request(new Uint8Array([1]), { timeout: 300 }),
      TimeoutError,
    );
    // The server is still serving: the next request is answered.
    const reply = await client.request(new Uint8Array([2]), { timeout: 5000 });
    assert.deepEqual([...reply], [2]);
  });
  const printed = lines.filter((line) => line.includes("TypeError"));
  assert.equal(printed.length, 1, lines.join("\n"));
  assert.match(printed[0], /^Server: unhandled "exception" event/);
});

test("unheard: an exception listener that throws is said once, not once per message", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", () => {
    throw new TypeError("handler bug");
  });
  let heard = 0;
  server.on("exception", () => {
    heard++;
    throw new Error("listener bug");
  });
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  const messages = 50;
  const lines = await capturingStderr(async () => {
    for (let i = 0; i < messages; i++) {
      client.send({ uuid: crypto.randomUUID(), data: new Uint8Array([i]) });
    }
    await until(() => heard === messages, 5000, "every exception heard");
  });
  const said = lines.filter((line) => line.includes("listener threw"));
  assert.equal(said.length, 1, lines.join("\n"));
  assert.match(said[0], /listener bug/);
});

test("unheard: a flood is printed up to the rate limit, then counted, and the count is said when printing resumes", async () => {
  let now = 0;
  const reporter = new UnheardErrors(() => "Server", () => now);
  const lines = await capturingStderr(() => {
    for (let i = 0; i < 25; i++) reporter.report(new Error(`e${i}`));
    now += 60_000;
    reporter.report(new Error("after"));
    return Promise.resolve();
  });
  assert.equal(lines.length, UNHEARD_PER_WINDOW + 2, lines.join("\n"));
  assert.match(lines[UNHEARD_PER_WINDOW - 1], /only counted/);
  assert.match(lines[UNHEARD_PER_WINDOW], /15 more .* not printed/);
  assert.match(lines[UNHEARD_PER_WINDOW + 1], /Error: after/);
});
