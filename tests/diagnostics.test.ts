import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import {
  channel,
  subscribe,
  tracingChannel,
  unsubscribe,
} from "node:diagnostics_channel";
import { test } from "./_harness.ts";
import { HOST, next, RawSocket, until } from "./_helpers.ts";
import { Client, Server, TimeoutError } from "../mod.ts";
import {
  CONNECTION_CLOSED,
  CONNECTION_FAILED,
  CONNECTION_OPENED,
  type ConnectionClosedMessage,
  type ConnectionFailedMessage,
  type ConnectionMessage,
  type DrainMessage,
  MESSAGE_TRACE,
  type MessageContext,
  PROTOCOL_ERROR,
  REQUEST_TRACE,
  type RequestContext,
  SERVER_DRAIN,
} from "../diagnostics.ts";

type Seen = Array<[string, unknown]>;

/** Subscribes to every channel, recording [channel, message]; returns the undo. */
function record(seen: Seen): () => void {
  const undo: Array<() => void> = [];
  for (
    const name of [
      CONNECTION_OPENED,
      CONNECTION_CLOSED,
      CONNECTION_FAILED,
      PROTOCOL_ERROR,
      SERVER_DRAIN,
    ]
  ) {
    const listener = (message: unknown) => seen.push([name, message]);
    subscribe(name, listener);
    undo.push(() => unsubscribe(name, listener));
  }
  for (const name of [REQUEST_TRACE, MESSAGE_TRACE]) {
    const handlers = Object.fromEntries(
      ["start", "end", "asyncStart", "asyncEnd", "error"].map((event) => [
        event,
        (message: unknown) => seen.push([`${name}:${event}`, message]),
      ]),
    );
    tracingChannel(name).subscribe(handlers as never);
    undo.push(() => tracingChannel(name).unsubscribe(handlers as never));
  }
  return () => undo.forEach((fn) => fn());
}

/** No payload bytes anywhere in a message: sizes and uuids only. */
function assertNoPayload(message: unknown): void {
  for (const value of Object.values(message as object)) {
    assert.ok(!(value instanceof Uint8Array), "a payload in a message");
  }
}

test("diagnostics: connection and request lifecycle on both sides", async () => {
  const seen: Seen = [];
  const stop = record(seen);
  try {
    const server = new Server({ host: HOST, port: 0 });
    server.on("data", (socket, message) => {
      if (message.data.length === 1) return; // never answered
      socket.send({ uuid: message.uuid, data: new Uint8Array(7) });
    });
    await server.start();
    const port = server.port;
    const client = new Client({ host: HOST, port });
    assert.equal((await client.request(new Uint8Array(3))).length, 7);
    await assert.rejects(
      client.request(new Uint8Array(1), { timeout: 10 }),
      TimeoutError,
    );
    await client.close();
    await server.stop();
    for (const [, message] of seen) assertNoPayload(message);

    const opened = seen.filter(([name]) => name === CONNECTION_OPENED)
      .map(([, message]) => message as ConnectionMessage);
    assert.deepEqual(opened.map((m) => m.side).sort(), ["client", "server"]);
    const clientOpened = opened.find((m) => m.side === "client")!;
    assert.equal(clientOpened.side === "client" && clientOpened.client, client);
    assert.equal(clientOpened.remoteAddr?.port, port);

    const requests = seen.filter(([name]) =>
      name.startsWith(REQUEST_TRACE + ":")
    );
    const ok = requests[0][1] as RequestContext;
    const late = requests.find(([name]) =>
      name.endsWith(":error")
    )![1] as RequestContext;
    assert.notEqual(ok.uuid, late.uuid);
    // The same context object throughout, in the TracingChannel's order.
    assert.deepEqual(
      requests.filter(([, m]) => m === ok).map(([name]) => name),
      ["start", "end", "asyncStart", "asyncEnd"].map((event) =>
        `${REQUEST_TRACE}:${event}`
      ),
    );
    assert.equal(ok.size, 3);
    assert.equal(ok.replySize, 7);
    assert.equal(ok.client, client);
    assert.ok(late.error instanceof TimeoutError);
    assert.deepEqual(
      requests.filter(([, m]) => m === late).map(([name]) => name),
      ["start", "end", "error", "asyncStart", "asyncEnd"].map((event) =>
        `${REQUEST_TRACE}:${event}`
      ),
    );

    const messages = seen.filter(([name]) => name === `${MESSAGE_TRACE}:start`)
      .map(([, m]) => m as MessageContext);
    assert.deepEqual(messages.map((m) => [m.uuid, m.size]), [
      [ok.uuid, 3],
      [late.uuid, 1],
    ]);
    assert.equal(messages[0].server, server);

    const drain = seen.find(([name]) =>
      name === SERVER_DRAIN
    )![1] as DrainMessage;
    assert.equal(drain.server, server);
    const closed = seen.filter(([name]) => name === CONNECTION_CLOSED)
      .map(([, m]) => m as ConnectionClosedMessage);
    assert.equal(closed.length, 2);
    for (const m of closed) {
      assert.equal(m.stats.messagesIn + m.stats.messagesOut, 3);
    }
  } finally {
    stop();
  }
});

test("diagnostics: failures, refusals, protocol errors and listener errors", async () => {
  const seen: Seen = [];
  const stop = record(seen);
  try {
    await using server = new Server({
      host: HOST,
      port: 0,
      maxConnections: 1,
    });
    server.on("exception", () => {});
    server.on("data", () => {
      throw new Error("listener failed");
    });
    await server.start();
    await using client = new Client({ host: HOST, port: server.port });
    client.send({ uuid: crypto.randomUUID(), data: new Uint8Array(2) });
    await until(
      () => seen.some(([name]) => name === `${MESSAGE_TRACE}:error`),
      5000,
      "the listener's error",
    );
    const failedMessage = seen.find(([name]) =>
      name === `${MESSAGE_TRACE}:error`
    )![1] as MessageContext;
    assert.equal((failedMessage.error as Error).message, "listener failed");
    // Past maxConnections: refused.
    const extra = await RawSocket.connect(server.port);
    await extra.ended;
    await client.close();
    // Garbage from a peer: a protocol error.
    const garbage = await RawSocket.connect(server.port);
    await garbage.write(new Uint8Array(45).fill(0x7f));
    await garbage.ended;
    const failed = seen.filter(([name]) => name === CONNECTION_FAILED)
      .map(([, m]) => m as ConnectionFailedMessage);
    assert.equal(failed.length, 1);
    assert.ok(failed[0].error instanceof RangeError);
    assert.equal(failed[0].side, "server");
    const protocol = seen.filter(([name]) => name === PROTOCOL_ERROR)
      .map(([, m]) => m as ConnectionFailedMessage);
    assert.equal(protocol.length, 1);
    assert.equal(protocol[0].side === "server" && protocol[0].server, server);

    // A client whose server is gone: its connect attempt fails.
    const port = server.port;
    await server.stop();
    const orphan = new Client({ host: HOST, port, reconnect: false });
    await next(orphan, "exception");
    await orphan.close();
    const clientFailed = seen.filter(([name, m]) =>
      name === CONNECTION_FAILED && (m as ConnectionMessage).side === "client"
    );
    assert.equal(clientFailed.length, 1);
    for (const [, message] of seen) assertNoPayload(message);
  } finally {
    stop();
  }
});

test("diagnostics: a store bound to the message trace is active in data listeners", async () => {
  const store = new AsyncLocalStorage<string>();
  const start = channel(`tracing:${MESSAGE_TRACE}:start`);
  start.bindStore(store, (context) => (context as MessageContext).uuid);
  try {
    await using server = new Server({ host: HOST, port: 0 });
    const active: Array<[string, string | undefined]> = [];
    server.on("data", (socket, message) => {
      active.push([message.uuid, store.getStore()]);
      socket.send(message);
    });
    await server.start();
    await using client = new Client({ host: HOST, port: server.port });
    await client.request(new Uint8Array(1));
    assert.equal(active.length, 1);
    assert.equal(active[0][1], active[0][0]);
  } finally {
    start.unbindStore(store);
  }
});
