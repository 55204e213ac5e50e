import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { fromHex } from "./_hex.ts";
import { encoder, HOST, next, RawSocket, until } from "./_helpers.ts";
import {
  runtimeTransport,
  type TransportConnection,
} from "../transport/mod.ts";
import vectors from "./fixtures/vectors.json" with { type: "json" };
import { Client, FrameTooLargeError, ProtocolError, Server } from "../mod.ts";

for (const vector of vectors.invalid) {
  test(`malformed "${vector.name}" closes only that connection`, async () => {
    await using server = new Server({ host: HOST, port: 0 });
    server.on("data", (socket, message) => socket.send(message));
    const exceptions: unknown[] = [];
    server.on("exception", (_socket, error) => exceptions.push(error));
    await server.start();
    await using good = new Client({ host: HOST, port: server.port });
    await next(good, "connected");

    const bad = await RawSocket.connect(server.port);
    const closed = next(server, "closed");
    await bad.write(fromHex(vector.bytes));
    await closed;
    await bad.ended;
    await bad.close();
    assert.equal(exceptions.length, 1);
    assert.ok(exceptions[0] instanceof ProtocolError, String(exceptions[0]));

    const reply = await good.request(encoder.encode("still served"), {
      timeout: 2000,
    });
    assert.equal(new TextDecoder().decode(reply), "still served");
    assert.equal(server.connections.size, 1);
  });
}

test("a header claiming more than maxFrameSize is refused from the header alone", async () => {
  await using server = new Server({ host: HOST, port: 0, maxFrameSize: 1024 });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  const bad = await RawSocket.connect(server.port);
  const header = new Uint8Array(45);
  header[0] = 0x11;
  header.fill(0x61, 1, 37);
  new DataView(header.buffer).setFloat64(37, 1025);
  const closed = next(server, "closed");
  await bad.write(header); // the payload never comes: the header is enough
  await closed;
  await bad.close();
  assert.ok(exceptions[0] instanceof FrameTooLargeError);
  assert.equal((exceptions[0] as FrameTooLargeError).length, 1025);
});

test("a malformed frame from the server: the client reports it, drops the connection and reconnects", async () => {
  const garbage = fromHex(vectors.invalid[0].bytes);
  const open = new Set<TransportConnection>();
  let accepted = 0;
  // A raw listener that greets every connection with a malformed frame.
  const listener = await runtimeTransport().listen(
    { hostname: HOST, port: 0 },
    (connection) => {
      accepted++;
      open.add(connection);
      connection.write(garbage)?.catch(() => {});
      return { received() {}, ended: () => open.delete(connection) };
    },
  );
  const client = new Client({
    host: HOST,
    port: listener.addr.port,
    reconnect: () => 10,
  });
  const exceptions: unknown[] = [];
  client.on("exception", (error) => exceptions.push(error));
  try {
    await until(
      () => exceptions.filter((e) => e instanceof ProtocolError).length >= 2,
      3000,
      "two protocol errors",
    );
    assert.ok(accepted >= 2, "the client reconnected");
  } finally {
    await client.close();
    await listener.close();
    for (const connection of open) connection.close();
    await until(() => open.size === 0, 2000, "raw connections to close");
  }
});
