// A server that runs out of file descriptors must keep serving once some are
// free again: a failed accept is not the end of the accept loop.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { encoder, HOST, sleep } from "./_helpers.ts";
import { RawSocket } from "./_helpers.ts";
import { runtimeExecutable, spawn } from "./_spawn.ts";
import { Client } from "../mod.ts";

const CLI = decodeURIComponent(
  new URL(
    import.meta.url.endsWith(".js") ? "../cli/main.js" : "../cli/main.ts",
    import.meta.url,
  ).pathname,
);

/** Low enough to run out with a few dozen connections, high enough to start. */
const FD_LIMIT = 64;
const CONNECTIONS = 80;

test("a server out of file descriptors serves again once they are freed", async () => {
  const runArgs = runtime === "deno"
    ? ["run", "--allow-net", "--allow-read", CLI]
    : [CLI];
  // `ulimit -n` applies to the child only; the test process keeps its own.
  const child = await spawn("sh", [
    "-c",
    `ulimit -n ${FD_LIMIT} && exec "$0" "$@"`,
    runtimeExecutable(),
    ...runArgs,
    "serve",
    "--host",
    HOST,
    "--port",
    "0",
  ]);
  const raws: RawSocket[] = [];
  try {
    const line = await child.waitFor(/listening on/, 10_000);
    const port = Number(line.match(/listening on [^ ]*:(\d+)/)![1]);
    // More connections than the server has descriptors for: the kernel
    // completes them all, the server's accepts start failing.
    for (let i = 0; i < CONNECTIONS; i++) {
      raws.push(await RawSocket.connect(port));
    }
    await sleep(200);
    await Promise.all(raws.splice(0).map((raw) => raw.close()));
    await sleep(200);
    // Descriptors are free again: a new client must be served.
    await using client = new Client({ host: HOST, port, reconnect: false });
    client.on("exception", () => {});
    const reply = await client.request(encoder.encode("still there"), {
      timeout: 5000,
    });
    assert.equal(new TextDecoder().decode(reply), "still there");
  } finally {
    await Promise.all(raws.map((raw) => raw.close()));
    await child.kill();
  }
});
