// The command-line tool (cli/main.ts), run as a child process under the runtime
// running the tests, against servers and clients made in the test.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { decoder, encoder, HOST, next, until } from "./_helpers.ts";
import { type Child, runtimeExecutable, spawn } from "./_spawn.ts";
import { Client, ProtocolError, Server } from "../mod.ts";
import { ExitCode } from "../cli/main.ts";
import { runtimeTransport } from "../transport/mod.ts";

// Beside the sources, or beside the compiled package (npm/tests → npm/cli/main.js).
const CLI = decodeURIComponent(
  new URL(
    import.meta.url.endsWith(".js") ? "../cli/main.js" : "../cli/main.ts",
    import.meta.url,
  )
    .pathname,
);

function cli(...args: string[]): Promise<Child> {
  const runArgs = runtime === "deno"
    ? ["run", "--allow-net", "--allow-read", "--allow-write", CLI, ...args]
    : [CLI, ...args];
  return spawn(runtimeExecutable(), runArgs);
}

/** Runs the tool to its end, feeding `stdin` (then closing it). */
async function run(
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = await cli(...args);
  try {
    if (stdin !== undefined) await child.write(stdin);
    await child.closeStdin();
    const code = await child.exited;
    return { code, stdout: child.stdout(), stderr: child.stderr() };
  } finally {
    await child.kill();
  }
}

async function echoServer(): Promise<Server> {
  const server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, message) => socket.send(message));
  await server.start();
  return server;
}

test("cli: --help at the top level and per command", async () => {
  const top = await run(["--help"]);
  assert.equal(top.code, ExitCode.OK);
  for (const command of ["serve", "send", "ping", "bench"]) {
    assert.match(top.stdout, new RegExp(`^  ${command} `, "m"));
  }
  assert.match(top.stdout, /^Exit codes:/m);
  const send = await run(["send", "--help"]);
  assert.equal(send.code, ExitCode.OK);
  assert.match(send.stdout, /^Usage: tcp-framework send/);
  const bad = await run(["send", "--port", "1", "--nope"]);
  assert.equal(bad.code, ExitCode.USAGE);
  assert.equal(bad.stderr.trim().split("\n").length, 1);
  assert.match(bad.stderr, /unknown option --nope/);
});

test("cli: send prints the echo, from an argument and from stdin", async () => {
  await using server = await echoServer();
  const fromArgument = await run([
    "send",
    "--port",
    String(server.port),
    "hello",
  ]);
  assert.equal(fromArgument.code, ExitCode.OK, fromArgument.stderr);
  assert.equal(fromArgument.stdout, "hello");
  const fromStdin = await run(
    ["send", "--port", String(server.port)],
    "from stdin\nwith two lines",
  );
  assert.equal(fromStdin.code, ExitCode.OK, fromStdin.stderr);
  assert.equal(fromStdin.stdout, "from stdin\nwith two lines");
});

test("cli: serve answers a Client, then stops on SIGTERM", async () => {
  const child = await cli("serve", "--port", "0", "--reply", "pong");
  try {
    const line = await child.waitFor(/^listening on /, 10_000);
    const port = Number(/:(\d+) /.exec(line)![1]);
    await using client = new Client({ host: HOST, port, reconnect: false });
    await next(client, "connected");
    const reply = await client.request(encoder.encode("ping"), {
      timeout: 5000,
    });
    assert.equal(decoder.decode(reply), "pong");
    await client.close();
    child.signal("SIGTERM");
    assert.equal(await child.exited, ExitCode.OK);
  } finally {
    await child.kill();
  }
});

test("cli: a refused connection exits 2 with one clear line", async () => {
  const server = new Server({ host: HOST, port: 0 });
  await server.start();
  const port = server.port;
  await server.stop(); // nothing listens there now
  const result = await run(["send", "--port", String(port), "x"]);
  assert.equal(result.code, ExitCode.CONNECTION);
  assert.equal(result.stdout, "");
  assert.equal(
    result.stderr,
    `tcp-framework: connection refused: nothing is listening on ${HOST}:${port}\n`,
  );
});

test("cli: a protocol mismatch fails with one line that suggests --protocol", async () => {
  for (const [serverProtocol, cliProtocol] of [[2, 3], [3, 2]] as const) {
    await using server = new Server({
      host: HOST,
      port: 0,
      protocol: serverProtocol,
    });
    server.on("data", (socket, message) => socket.send(message));
    // The server refuses the other protocol's frames: a ProtocolError (too
    // large, or the stream ending inside a frame), its own to hear.
    const exceptions: unknown[] = [];
    server.on("exception", (_socket, error) => exceptions.push(error));
    await server.start();
    const result = await run([
      "send",
      "--port",
      String(server.port),
      "--protocol",
      String(cliProtocol),
      "--timeout",
      "2",
      "x",
    ]);
    const label = `server ${serverProtocol}, send --protocol ${cliProtocol}`;
    // The server closes a connection whose first bytes are not its frames
    // (exit 2); were it to wait instead, the send would time out (exit 3).
    assert.ok(
      result.code === ExitCode.CONNECTION || result.code === ExitCode.TIMEOUT,
      `${label}: exit ${result.code}, ${result.stderr}`,
    );
    assert.equal(result.stdout, "");
    assert.equal(result.stderr.split("\n").length, 2, label); // one line
    assert.ok(
      result.stderr.endsWith(
        `(if the peer speaks protocol ${serverProtocol}, add --protocol ${serverProtocol})\n`,
      ),
      `${label}: ${result.stderr}`,
    );
    for (const error of exceptions) {
      assert.ok(error instanceof ProtocolError, `${label}: ${error}`);
    }
  }
});

test("cli: serve on a taken port says so once, and exits 2", async () => {
  await using taken = new Server({ host: HOST, port: 0 });
  await taken.start();
  const result = await run(["serve", "--port", String(taken.port)]);
  assert.equal(result.code, ExitCode.CONNECTION);
  assert.equal(
    result.stderr,
    `tcp-framework: cannot listen on ${HOST}:${taken.port}: address in use (EADDRINUSE)\n`,
  );
});

test("cli: no reply exits 3, a malformed reply exits 4", async () => {
  await using silent = new Server({ host: HOST, port: 0 });
  await silent.start();
  const timedOut = await run([
    "send",
    "--port",
    String(silent.port),
    "--timeout",
    "0.3",
    "x",
  ]);
  assert.equal(timedOut.code, ExitCode.TIMEOUT);
  assert.match(
    timedOut.stderr,
    /^tcp-framework: timeout: no reply from .* within 300 ms \(if the peer speaks protocol 2, add --protocol 2\)\n$/,
  );

  // A listener that answers anything with bytes that are not a frame.
  const open = new Set<Promise<void>>();
  const garbage = await runtimeTransport().listen(
    { hostname: HOST, port: 0 },
    (connection) => {
      let ended!: () => void;
      const done = new Promise<void>((resolve) => ended = resolve);
      open.add(done);
      return {
        received: () =>
          connection.write(new Uint8Array(64).fill(0xee))?.catch(() => {}),
        ended: () => {
          open.delete(done);
          ended();
        },
      };
    },
  );
  try {
    const malformed = await run([
      "send",
      "--port",
      String(garbage.addr.port),
      "x",
    ]);
    assert.equal(malformed.code, ExitCode.PROTOCOL);
    assert.match(malformed.stderr, /^tcp-framework: protocol error from .*\n$/);
  } finally {
    await garbage.close();
    await Promise.all(open);
  }
});

test("cli: ping and bench report on an echo server", async () => {
  await using server = await echoServer();
  const port = String(server.port);
  const ping = await run([
    "ping",
    "--port",
    port,
    "--count",
    "3",
    "--interval",
    "0",
  ]);
  assert.equal(ping.code, ExitCode.OK, ping.stderr);
  assert.match(
    ping.stdout,
    /^3 sent, 3 received, 0 lost; rtt min\/avg\/max = /m,
  );
  const bench = await run([
    "bench",
    "--port",
    port,
    "--connections",
    "2",
    "--inflight",
    "4",
    "--size",
    "100",
    "--duration",
    "0.3",
    "--json",
  ]);
  assert.equal(bench.code, ExitCode.OK, bench.stderr);
  const summary = JSON.parse(bench.stdout);
  assert.ok(summary.messages > 0);
  assert.equal(summary.errors, 0);
  assert.equal(summary.connections, 2);
  assert.ok(summary.latencyMs.p50 <= summary.latencyMs.p99);
  assert.equal(bench.stderr, ""); // no progress line: stderr is not a terminal
});

test("cli: the npm package's bin runs the tool (Node.js)", async () => {
  // npm/tests → npm/package.json and npm/cli/bin.js, as installed.
  const { readFile } = await import("node:fs/promises");
  const pkg = JSON.parse(
    await readFile(new URL("../package.json", import.meta.url), "utf8"),
  );
  assert.equal(pkg.bin?.["tcp-framework"], "./cli/bin.js");
  const bin = decodeURIComponent(
    new URL("../cli/bin.js", import.meta.url).pathname,
  );
  const child = await spawn(runtimeExecutable(), [bin, "--help"]);
  try {
    await child.closeStdin();
    assert.equal(await child.exited, ExitCode.OK, child.stderr());
    assert.match(child.stdout(), /^Usage: tcp-framework <command>/);
  } finally {
    await child.kill();
  }
}, {
  skip: import.meta.url.endsWith(".js")
    ? undefined
    : `the npm bin check runs from the npm build (Node.js), not on ${runtime}`,
});

test("cli: serve -v prints the server's counters every --stats seconds", async () => {
  const child = await cli("serve", "--port", "0", "-v", "--stats", "0.05");
  try {
    const line = await child.waitFor(/^listening on /, 10_000);
    const port = Number(/:(\d+) /.exec(line)![1]);
    await using client = new Client({ host: HOST, port, reconnect: false });
    await client.request(new Uint8Array(10), { timeout: 5000 });
    await until(
      () =>
        /^stats connections 1 open, 1 total, 0 refused; messages in 1 \(\d+\/s\) out 1; bytes in \d+ B out \d+ B;.* protocol errors 0; timeouts 0; quiet resets 0; buffer full 0; buffered 0 B$/m
          .test(child.stderr()),
      10_000,
      "a stats line",
    );
    await client.close();
    child.signal("SIGTERM");
    assert.equal(await child.exited, ExitCode.OK);
  } finally {
    await child.kill();
  }
});

test("cli: bench --serve reports its own server's counters", async () => {
  const bench = await run([
    "bench",
    "--serve",
    "--connections",
    "2",
    "--inflight",
    "4",
    "--size",
    "100",
    "--duration",
    "0.3",
    "--json",
  ]);
  assert.equal(bench.code, ExitCode.OK, bench.stderr);
  const summary = JSON.parse(bench.stdout);
  assert.ok(summary.messages > 0);
  assert.equal(summary.server.messagesIn, summary.messages);
  assert.equal(summary.server.messagesOut, summary.messages);
  assert.equal(summary.server.connectionsTotal, 2);
  assert.equal(summary.server.connectionsOpen, 0);
  assert.equal(
    summary.server.bytesIn,
    summary.messages * 145 + summary.server.pingsIn * 45,
  );
  const table = await run(["bench", "--serve", "--duration", "0.2"]);
  assert.equal(table.code, ExitCode.OK, table.stderr);
  assert.match(table.stdout, /^server +connections 0 open, 4 total/m);
});
