// `reusePort`: servers sharing one port, the kernel spreading connections
// over them; or, where the runtime or OS would ignore the option, start()
// refusing to pretend.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { HOST, RawSocket, until } from "./_helpers.ts";
import { Server } from "../mod.ts";
import { runtimeExecutable, spawn } from "./_spawn.ts";

/** Why this runtime cannot share a port here, or undefined if it can. */
function expectedProblem(): RegExp | undefined {
  const g = globalThis as unknown as {
    Deno?: { build: { os: string }; listenDatagram?: unknown };
    process?: { platform: string; versions: { node: string } };
  };
  const os = g.Deno ? g.Deno.build.os : g.process?.platform;
  if (os !== "linux") return /reusePort needs Linux/;
  if (runtime === "deno" && typeof g.Deno?.listenDatagram !== "function") {
    return /--unstable-net/;
  }
  if (runtime === "node") {
    const [major, minor] = g.process!.versions.node.split(".").map(Number);
    if (
      !(major > 23 || (major === 23 && minor >= 1) ||
        (major === 22 && minor >= 12))
    ) {
      return /Node\.js 22\.12 or later/;
    }
  }
  return undefined;
}

const problem = expectedProblem();

test(
  "reusePort: where servers cannot share a port, start() says why",
  async () => {
    await using first = new Server({ host: HOST, port: 0, reusePort: true });
    await assert.rejects(first.start(), (error: Error) => {
      assert.match(error.message, problem!);
      assert.match(error.message, /reusePort/);
      return true;
    });
    assert.equal(first.listening, false);
  },
  { skip: problem ? undefined : "servers can share a port here" },
);

test("reusePort: two servers on one port both accept connections", async () => {
  await using first = new Server({ host: HOST, port: 0, reusePort: true });
  await first.start();
  await using second = new Server({
    host: HOST,
    port: first.port,
    reusePort: true,
  });
  await second.start();
  assert.equal(second.port, first.port);
  // A third server without the option cannot join them.
  await using loner = new Server({ host: HOST, port: first.port });
  await assert.rejects(loner.start());

  const sockets: RawSocket[] = [];
  try {
    for (let i = 0; i < 40; i++) {
      sockets.push(await RawSocket.connect(first.port));
    }
    await until(
      () => first.connections.size + second.connections.size === 40,
      5000,
      "40 accepted connections",
    );
    // The kernel hashes each connection's addresses: 40 to one server has a
    // chance of 2 in 2^40.
    assert.ok(first.connections.size > 0, "the first server got none");
    assert.ok(second.connections.size > 0, "the second server got none");
    console.log(
      `reusePort[${runtime}]: 40 connections spread ${first.connections.size} / ${second.connections.size}`,
    );
  } finally {
    await Promise.all(sockets.map((socket) => socket.close()));
  }
}, {
  skip: problem ? `reusePort is not available here (${problem})` : undefined,
});

test("reusePort must be a boolean", () => {
  assert.throws(
    () => new Server({ port: 0, reusePort: "yes" as unknown as boolean }),
    /Invalid reusePort "yes"/,
  );
});

test(
  "reusePort on Deno without --unstable-net: start() rejects (Deno would exit the process)",
  async () => {
    const mod = new URL("../mod.ts", import.meta.url).href;
    const script = `import { Server } from ${JSON.stringify(mod)};
const server = new Server({ host: "127.0.0.1", port: 0, reusePort: true });
try { await server.start(); console.log("started"); await server.stop(); }
catch (error) { console.log("refused: " + error.message); }`;
    const child = await spawn(runtimeExecutable(), [
      "eval",
      "--no-check",
      script,
    ]);
    try {
      const line = await child.waitFor(/^(started|refused)/, 10_000);
      assert.match(line, /^refused: .*--unstable-net/);
      assert.equal(await child.exited, 0);
    } finally {
      await child.kill();
    }
  },
  {
    skip: runtime === "deno"
      ? undefined
      : "a check of Deno's --unstable-net (Deno only)",
  },
);
