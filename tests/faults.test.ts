// Faults a hostile user found (issue 11): settled requests that were still
// sent, connects that never ended, stalls that dropped healthy peers, errors
// nobody heard, option mistakes that passed silently.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { decoder, encoder, HOST, sleep } from "./_helpers.ts";
import { Client, Server, TimeoutError } from "../mod.ts";

test("a request that timed out or was aborted while disconnected is never sent", async () => {
  const first = new Server({ host: HOST, port: 0 });
  await first.start();
  const port = first.port;
  await first.stop();
  await using client = new Client({
    host: HOST,
    port,
    reconnect: () => 20,
  });
  client.on("exception", () => {}); // refused connects while nothing listens
  const abort = new AbortController();
  // Each handled from the start: they reject before they are awaited.
  const timedOut = Array.from(
    { length: 200 },
    (_, i) =>
      assert.rejects(
        client.request(encoder.encode(`dead ${i}`), { timeout: 30 }),
        TimeoutError,
      ),
  );
  const aborted = Array.from(
    { length: 50 },
    (_, i) =>
      assert.rejects(
        client.request(encoder.encode(`aborted ${i}`), {
          signal: abort.signal,
        }),
        /caller gave up/,
      ),
  );
  // Queued between the dead ones: these must still go out, in order.
  client.send({ uuid: crypto.randomUUID(), data: encoder.encode("sent") });
  const live = client.request(encoder.encode("live"), { timeout: 10_000 });
  live.catch(() => {}); // awaited below, unless an assertion fails first
  const queuedBytes = client.bufferedAmount;
  abort.abort(new Error("caller gave up"));
  await Promise.all([...timedOut, ...aborted]);
  // Only the two live messages are still counted.
  assert.ok(queuedBytes > 250 * 45, `${queuedBytes} bytes queued`);
  assert.equal(client.bufferedAmount, 2 * 45 + "sent".length + "live".length);

  const received: string[] = [];
  await using server = new Server({ host: HOST, port });
  server.on("data", (socket, message) => {
    received.push(decoder.decode(message.data));
    socket.send(message);
  });
  await server.start();
  assert.equal(decoder.decode(await live), "live");
  await sleep(50); // anything else written would have arrived by now
  assert.deepEqual(received, ["sent", "live"]);
  assert.equal(client.bufferedAmount, 0);
});

test("drained() resolves once every queued message left the queue unsent", async () => {
  await using client = new Client({ host: HOST, port: 1, reconnect: false });
  client.on("exception", () => {});
  const request = client.request(encoder.encode("x"), { timeout: 20 });
  const drained = client.drained();
  await assert.rejects(request, TimeoutError);
  await drained;
  assert.equal(client.bufferedAmount, 0);
});
