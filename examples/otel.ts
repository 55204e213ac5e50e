// OpenTelemetry for @qtk/tcp-framework, as an application would wire it: the
// library's diagnostics_channel channels become spans, its counters become
// metrics. The library itself depends on nothing; only this example needs the
// OpenTelemetry packages (npm: @opentelemetry/api, and an SDK to export with).
// The SDK is its 2.x line (pinned in tools/package.json and deno.json), which
// supports Node.js 20; its 3.x line wants Node.js 22.15 or later.
//
//   deno run -A examples/otel.ts    (deno.json "imports" maps the packages)
//   bun examples/otel.ts            (examples/node_modules: a link to
//                                    tools/node_modules, the dev dependencies)
//
// Run directly, it serves an echo server, sends it requests, and prints the
// spans and metrics that the SDK's in-memory exporters collected.
//
// What it makes:
// - a CLIENT span per `client.request()` ("tcp-framework request"), from
//   the call to its reply or failure, with the uuid and sizes;
// - a SERVER span per message a server handles ("tcp-framework message"),
//   around its `data` listeners;
// - metrics: `tcp_framework.request.duration` (histogram, ms, by outcome),
//   `tcp_framework.connections` (gauge: open connections, by side),
//   `tcp_framework.messages` and `tcp_framework.bytes` (counters, by side and
//   direction), read from `stats()` when the SDK collects.

import {
  type Attributes,
  type BatchObservableCallback,
  type Meter,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  ValueType,
} from "@opentelemetry/api";
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import {
  MESSAGE_TRACE,
  type MessageContext,
  REQUEST_TRACE,
  type RequestContext,
} from "../diagnostics.ts";
import type { Client, Server } from "../mod.ts";

/** What to instrument, and with which tracer and meter. */
export interface InstrumentOptions {
  tracer: Tracer;
  meter: Meter;
  /** Servers whose counters become metrics. */
  servers?: Server[];
  /** Clients whose counters become metrics. */
  clients?: Client[];
}

/**
 * Turns the library's channels into spans and its counters into metrics.
 * Returns a function that undoes it.
 */
export function instrument(options: InstrumentOptions): () => void {
  const { tracer, meter } = options;
  const servers = options.servers ?? [];
  const clients = options.clients ?? [];
  const undo: Array<() => void> = [];
  const on = (name: string, listener: (message: unknown) => void) => {
    subscribe(name, listener);
    undo.push(() => unsubscribe(name, listener));
  };

  // Spans. The library hands the same context object to every event of one
  // request (or message), so the span rides along in a WeakMap.
  const spans = new WeakMap<object, { span: Span; started: number }>();
  const duration = meter.createHistogram("tcp_framework.request.duration", {
    description: "Time from request() to its reply or failure",
    unit: "ms",
  });
  on(`tracing:${REQUEST_TRACE}:start`, (message) => {
    const request = message as RequestContext;
    spans.set(request, {
      span: tracer.startSpan("tcp-framework request", {
        kind: SpanKind.CLIENT,
        attributes: {
          "tcp_framework.uuid": request.uuid,
          "tcp_framework.request.size": request.size,
        },
      }),
      started: performance.now(),
    });
  });
  on(`tracing:${REQUEST_TRACE}:asyncEnd`, (message) => {
    const request = message as RequestContext;
    const entry = spans.get(request);
    if (entry === undefined) return;
    spans.delete(request);
    const { span, started } = entry;
    if (request.error === undefined) {
      span.setAttribute("tcp_framework.reply.size", request.replySize ?? 0);
    } else {
      span.recordException(request.error as Error);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: (request.error as Error)?.name,
      });
    }
    span.end();
    duration.record(performance.now() - started, {
      outcome: request.error === undefined
        ? "ok"
        : (request.error as Error)?.name ?? "error",
    });
  });
  on(`tracing:${MESSAGE_TRACE}:start`, (message) => {
    const handled = message as MessageContext;
    spans.set(handled, {
      span: tracer.startSpan("tcp-framework message", {
        kind: SpanKind.SERVER,
        attributes: {
          "tcp_framework.uuid": handled.uuid,
          "tcp_framework.request.size": handled.size,
          "network.peer.address": handled.socket.remoteAddr.hostname,
        },
      }),
      started: 0,
    });
  });
  on(`tracing:${MESSAGE_TRACE}:error`, (message) => {
    const handled = message as MessageContext;
    const span = spans.get(handled)?.span;
    span?.recordException(handled.error as Error);
    span?.setStatus({ code: SpanStatusCode.ERROR });
  });
  on(`tracing:${MESSAGE_TRACE}:end`, (message) => {
    spans.get(message as object)?.span.end();
    spans.delete(message as object);
  });

  // Metrics from the counters, read only when the SDK collects.
  const connections = meter.createObservableGauge("tcp_framework.connections", {
    description: "Open connections",
    valueType: ValueType.INT,
  });
  const messages = meter.createObservableCounter("tcp_framework.messages", {
    description: "DATA frames, by side and direction",
    valueType: ValueType.INT,
  });
  const bytes = meter.createObservableCounter("tcp_framework.bytes", {
    description: "Bytes of frames, by side and direction",
    unit: "By",
    valueType: ValueType.INT,
  });
  const observe: BatchObservableCallback = (result) => {
    const sides: Array<["server" | "client", Array<Server | Client>]> = [
      ["server", servers],
      ["client", clients],
    ];
    for (const [side, owners] of sides) {
      let open = 0;
      const sums = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 };
      for (const owner of owners) {
        const stats = owner.stats();
        open += stats.connectionsOpen;
        for (const key of Object.keys(sums) as Array<keyof typeof sums>) {
          sums[key] += stats[key];
        }
      }
      if (owners.length === 0) continue;
      const attributes = (direction?: string): Attributes =>
        direction ? { side, direction } : { side };
      result.observe(connections, open, attributes());
      result.observe(messages, sums.messagesIn, attributes("in"));
      result.observe(messages, sums.messagesOut, attributes("out"));
      result.observe(bytes, sums.bytesIn, attributes("in"));
      result.observe(bytes, sums.bytesOut, attributes("out"));
    }
  };
  meter.addBatchObservableCallback(observe, [connections, messages, bytes]);
  undo.push(() =>
    meter.removeBatchObservableCallback(observe, [connections, messages, bytes])
  );

  return () => undo.splice(0).forEach((fn) => fn());
}

/**
 * An SDK set up with in-memory exporters (the way its own tests do): a tracer
 * and a meter, and `collect()` for what they recorded so far.
 */
export function inMemorySdk(): {
  tracer: Tracer;
  meter: Meter;
  collect(): Promise<{ spans: ReadableSpan[]; metrics: MetricData[] }>;
  shutdown(): Promise<void>;
} {
  const spanExporter = new InMemorySpanExporter();
  const tracerProvider = new TracerProvider({
    spanProcessors: [new SimpleSpanProcessor({ exporter: spanExporter })],
  });
  const metricExporter = new InMemoryMetricExporter(
    AggregationTemporality.CUMULATIVE,
  );
  const reader = new PeriodicExportingMetricReader({
    exporter: metricExporter,
    exportIntervalMillis: 60_000,
  });
  const meterProvider = new MeterProvider({ readers: [reader] });
  return {
    tracer: tracerProvider.getTracer("tcp-framework-example"),
    meter: meterProvider.getMeter("tcp-framework-example"),
    async collect() {
      await tracerProvider.forceFlush();
      await reader.forceFlush();
      const last = metricExporter.getMetrics().at(-1);
      return {
        spans: spanExporter.getFinishedSpans(),
        metrics: last?.scopeMetrics.flatMap((scope) => scope.metrics) ?? [],
      };
    },
    async shutdown() {
      await meterProvider.shutdown();
      await tracerProvider.shutdown();
    },
  };
}

/** Serves an echo, sends it requests, and prints what OpenTelemetry got. */
async function main(): Promise<void> {
  const { Client, Server } = await import("../mod.ts");
  const sdk = inMemorySdk();
  const server = new Server({ host: "127.0.0.1", port: 0 });
  // Echoes, except one-byte requests: never answered (a failed span).
  server.on("data", (socket, message) => {
    if (message.data.length !== 1) socket.send(message);
  });
  await server.start();
  const client = new Client({ host: "127.0.0.1", port: server.port });
  const stop = instrument({
    tracer: sdk.tracer,
    meter: sdk.meter,
    servers: [server],
    clients: [client],
  });
  for (let i = 0; i < 20; i++) await client.request(new Uint8Array(100));
  await client.request(new Uint8Array(1), { timeout: 50 }).catch(() => {});

  const { spans, metrics } = await sdk.collect();
  const count = (name: string) => spans.filter((s) => s.name === name).length;
  console.log(
    `spans: ${count("tcp-framework request")} request (${
      spans.filter((s) => s.status.code === SpanStatusCode.ERROR).length
    } failed), ${count("tcp-framework message")} message`,
  );
  const first = spans.find((s) => s.name === "tcp-framework request")!;
  console.log(`  first request span: ${JSON.stringify(first.attributes)}`);
  for (const metric of metrics) {
    console.log(`metric ${metric.descriptor.name}:`);
    for (const point of metric.dataPoints) {
      const value = point.value as number | { count: number; sum: number };
      const shown = typeof value === "number"
        ? value
        : `count ${value.count}, mean ${
          (value.sum / value.count).toFixed(2)
        } ms`;
      console.log(`  ${JSON.stringify(point.attributes)} ${shown}`);
    }
  }
  stop();
  await client.close();
  await server.stop();
  await sdk.shutdown();
}

if ((import.meta as { main?: boolean }).main) await main();
