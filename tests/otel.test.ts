// examples/otel.ts against the real OpenTelemetry SDK, with its in-memory
// exporters, after real traffic. The packages are dev dependencies in
// tools/package.json, which the example finds as an application would: Deno
// through deno.json "imports" (npm: specifiers), Bun through
// examples/node_modules (a link to tools/node_modules), Node.js through
// npm/node_modules (made by build-npm.mjs).

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { HOST } from "./_helpers.ts";
import { Client, Server } from "../mod.ts";
import { inMemorySdk, instrument } from "../examples/otel.ts";

// @opentelemetry/api's SpanKind and SpanStatusCode.
const CLIENT = 2;
const SERVER = 1;
const ERROR = 2;

test("examples/otel.ts: spans and metrics from real traffic, through the OpenTelemetry SDK", async () => {
  const sdk = inMemorySdk();
  const server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, message) => {
    if (message.data.length !== 1) socket.send(message);
  });
  await server.start();
  const client = new Client({ host: HOST, port: server.port });
  let collected: Awaited<ReturnType<typeof sdk.collect>> | undefined;
  const stop = instrument({
    tracer: sdk.tracer,
    meter: sdk.meter,
    servers: [server],
    clients: [client],
  });
  try {
    for (let i = 0; i < 10; i++) await client.request(new Uint8Array(100));
    await assert.rejects(client.request(new Uint8Array(1), { timeout: 30 }));
    // Read before shutdown, which empties the in-memory exporters.
    collected = await sdk.collect();
  } finally {
    stop();
    await client.close();
    await server.stop();
    await sdk.shutdown();
  }
  const { spans, metrics: exported } = collected!;

  const requests = spans.filter((span) => span.kind === CLIENT);
  const handled = spans.filter((span) => span.kind === SERVER);
  assert.equal(requests.length, 11);
  assert.equal(handled.length, 11);
  assert.deepEqual(
    requests.map((span) => span.status.code === ERROR),
    [...Array(10).fill(false), true],
  );
  assert.equal(requests[0].attributes["tcp_framework.request.size"], 100);
  assert.equal(requests[0].attributes["tcp_framework.reply.size"], 100);
  // The server's span of each request carries the same uuid.
  assert.deepEqual(
    handled.map((span) => span.attributes["tcp_framework.uuid"]),
    requests.map((span) => span.attributes["tcp_framework.uuid"]),
  );

  const metrics = new Map(
    exported.map((metric) => [metric.descriptor.name, metric.dataPoints]),
  );
  const point = (name: string, attributes: Record<string, string>) =>
    metrics.get(name)?.find((p) =>
      JSON.stringify(p.attributes) === JSON.stringify(attributes)
    )?.value;
  const ok = point("tcp_framework.request.duration", { outcome: "ok" }) as {
    count: number;
    sum: number;
  };
  assert.equal(ok.count, 10);
  assert.ok(ok.sum > 0);
  assert.equal(
    (point("tcp_framework.request.duration", {
      outcome: "TimeoutError",
    }) as { count: number }).count,
    1,
  );
  assert.equal(point("tcp_framework.connections", { side: "server" }), 1);
  assert.equal(point("tcp_framework.connections", { side: "client" }), 1);
  assert.equal(
    point("tcp_framework.messages", { side: "server", direction: "in" }),
    11,
  );
  assert.equal(
    point("tcp_framework.messages", { side: "server", direction: "out" }),
    10,
  );
  assert.equal(
    point("tcp_framework.messages", { side: "client", direction: "out" }),
    11,
  );
  const clientOut = point("tcp_framework.bytes", {
    side: "client",
    direction: "out",
  }) as number;
  assert.ok(clientOut >= 10 * 145 + 46, `${clientOut} bytes out`);
  assert.equal(
    point("tcp_framework.bytes", { side: "server", direction: "in" }),
    clientOut,
  );
});
