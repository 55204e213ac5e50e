// Socket errors name the address and the reason, in the same words on Deno,
// Bun and Node.js (Deno's and Bun's own errors leave out host:port; Bun's
// listen error says only "Failed to listen at 127.0.0.1").

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { freePort, HOST, next } from "./_helpers.ts";
import { Client, ClosedError, NetworkError, Server } from "../mod.ts";
import { runtimeTransport } from "../transport/mod.ts";
import { spawn } from "./_spawn.ts";

const RESET_PEER = decodeURIComponent(
  new URL("./fixtures/reset_peer.cjs", import.meta.url).pathname,
);

function assertNetworkError(
  error: unknown,
  operation: string,
  where: string,
  reason: string,
  code: string,
): void {
  assert.ok(
    error instanceof NetworkError,
    `${runtime}: expected a NetworkError, got ${error}`,
  );
  assert.equal(error.operation, operation);
  assert.equal(error.code, code);
  assert.equal(error.reason, reason);
  assert.ok(
    error.message.includes(where) && error.message.includes(reason),
    `${runtime}: "${error.message}" should name ${where} and "${reason}"`,
  );
}

test("errors: a taken port names the address and 'address in use'", async () => {
  await using first = new Server({ host: HOST, port: 0 });
  await first.start();
  const second = new Server({ host: HOST, port: first.port });
  const error = await second.start().then(() => undefined, (e) => e);
  assertNetworkError(
    error,
    "listen",
    `${HOST}:${first.port}`,
    "address in use",
    "EADDRINUSE",
  );
  assert.equal(
    error.message,
    `Cannot listen on ${HOST}:${first.port}: address in use (EADDRINUSE)`,
  );
  assert.ok(error.cause !== undefined, "the runtime's error is the cause");
  assert.equal(second.listening, false);
});

test("errors: a refused connection names the address and 'connection refused'", async () => {
  const port = await freePort();
  // Through the transport,
  const direct = await runtimeTransport().connect(
    { hostname: HOST, port },
    () => ({ received() {}, ended() {} }),
  ).then(() => undefined, (e) => e);
  assertNetworkError(
    direct,
    "connect",
    `${HOST}:${port}`,
    "connection refused",
    "ECONNREFUSED",
  );
  assert.equal(
    direct.message,
    `Cannot connect to ${HOST}:${port}: connection refused (ECONNREFUSED)`,
  );
  // and as a Client's exception.
  await using client = new Client({ host: HOST, port, reconnect: false });
  const [error] = await next<[unknown]>(client, "exception");
  assertNetworkError(
    error,
    "connect",
    `${HOST}:${port}`,
    "connection refused",
    "ECONNREFUSED",
  );
});

test("errors: a connection reset by the peer names it and 'connection reset by peer'", async () => {
  const peer = await resettingListener();
  try {
    await using client = new Client({
      host: HOST,
      port: peer.port,
      reconnect: false,
    });
    await next(client, "connected");
    const failed = next<[unknown]>(client, "exception");
    const request = client.request(new Uint8Array([1]), { timeout: 5000 })
      .catch((e) => e);
    const [error] = await failed;
    assertNetworkError(
      error,
      "connection",
      `${HOST}:${peer.port}`,
      "connection reset by peer",
      "ECONNRESET",
    );
    assert.equal(
      (error as Error).message,
      `Connection with ${HOST}:${peer.port} failed: connection reset by peer (ECONNRESET)`,
    );
    // The request that was on it learns of it too.
    assert.ok((await request) instanceof ClosedError);
  } finally {
    await peer.close();
  }
});

/**
 * A listener that echoes a connection's first chunk (the client's hello PING,
 * answered as a 3.x server would) and resets (TCP RST) the connection when
 * the next one arrives: with
 * Bun's `terminate()` under Bun, node:net's `resetAndDestroy()` elsewhere (in
 * a child Node.js process under Deno). The framework's own sockets never
 * reset.
 */
async function resettingListener(): Promise<
  { port: number; close(): Promise<void> }
> {
  const bun = (globalThis as unknown as { Bun?: BunListenApi }).Bun;
  if (bun) {
    const chunks = new WeakSet<BunSocket>();
    const listener = bun.listen({
      hostname: HOST,
      port: 0,
      socket: {
        data: (socket, chunk) => {
          if (chunks.has(socket)) return socket.terminate();
          chunks.add(socket);
          socket.write(chunk);
        },
        open() {},
        close() {},
        error() {},
      },
    });
    return {
      port: listener.port,
      close: () => Promise.resolve(listener.stop(true)),
    };
  }
  if ("Deno" in globalThis) {
    // Node.js in a child process: node:net loaded into the Deno test process
    // itself made a later test's worker processes die of SIGTERM now and then.
    const child = await spawn("node", [RESET_PEER]);
    const line = await child.waitFor(/^LISTENING \d+$/, 10_000);
    return {
      port: Number(line.split(" ")[1]),
      close: async () => {
        await child.closeStdin();
        await child.kill();
      },
    };
  }
  const net = await import("node:net");
  const sockets = new Set<import("node:net").Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    socket.once("data", (hello) => {
      socket.write(hello);
      socket.once("data", () => socket.resetAndDestroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    port: (server.address() as import("node:net").AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

interface BunSocket {
  terminate(): void;
  write(bytes: Uint8Array): number;
}

interface BunListenApi {
  listen(options: {
    hostname: string;
    port: number;
    socket: {
      data(socket: BunSocket, chunk: Uint8Array): void;
      open(): void;
      close(): void;
      error(): void;
    };
  }): { port: number; stop(closeActiveConnections?: boolean): void };
}
