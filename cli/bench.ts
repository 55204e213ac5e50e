/**
 * The `bench` subcommand of the command-line tool (`cli/main.ts`): a load run
 * against any server that answers requests. Private: nothing here is part of
 * the library's API.
 *
 * @module
 */

import { Client } from "../client.ts";
import { headerSize } from "../codec.ts";
import { ProtocolError, TimeoutError } from "../errors.ts";
import {
  ExitCode,
  numberOption,
  parseArgs,
  type ParsedArgs,
  protocolOption,
  toCliError,
  usage,
} from "./_args.ts";
import {
  CLI_DEFAULT_HOST,
  CLIENT_OPTIONS,
  connected,
  targetOptions,
  timeoutOption,
} from "./commands.ts";
import { Histogram } from "./_histogram.ts";
import { statsLine } from "./_stats.ts";
import { Server } from "../server.ts";
import type { CliIo } from "./_io.ts";

/** Help text of `bench`. */
const BENCH_HELP = `Usage: tcp-framework bench [options]

A load run against any server that answers requests (try "tcp-framework
serve"): --connections clients each keep --inflight requests of --size bytes
outstanding for --duration seconds. Shows a live progress line on stderr when
it is a terminal, then a summary on stdout: messages/s, MB/s (1 MB = 10^6
bytes of payload) and latency percentiles. Ctrl-C ends the run early and
still prints the summary.

Options:
  --host <host>            server address (default ${CLI_DEFAULT_HOST})
  -p, --port <port>        server port (required, unless --serve)
  --serve                  run an echo server in this process (on --host, and
                           --port or a free one) and bench that; the summary
                           then has the server's counters too
  --protocol <2|3>         wire protocol (default 3)
  -c, --connections <n>    connections (default 4)
  -n, --inflight <n>       requests outstanding per connection (default 16)
  -s, --size <bytes>       request payload size (default 64)
  -d, --duration <sec>     length of the run (default 5)
  -t, --timeout <sec>      limit for connecting and for each reply (default 10)
  --json                   print one JSON object instead of the table
  -h, --help               show this help

Exit codes: 0 done without errors, 1 usage error, 2 connection refused or
lost, 3 a reply timed out, 4 protocol error (the summary is printed first
when the run got going).
`;

/** `tcp-framework bench`: a load run and its summary. */
export async function bench(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs(argv, {
    ...CLIENT_OPTIONS,
    connections: { type: "number", short: "c" },
    inflight: { type: "number", short: "n" },
    size: { type: "number", short: "s" },
    duration: { type: "number", short: "d" },
    json: { type: "boolean" },
    serve: { type: "boolean" },
  });
  if (values.help) {
    await io.stdout(BENCH_HELP);
    return ExitCode.OK;
  }
  if (positionals.length > 0) {
    throw usage(`bench takes no argument, got "${positionals[0]}"`);
  }
  let server: Server | undefined;
  if (values.serve) {
    // Ours: an echo server whose counters the summary can show.
    server = new Server({
      host: String(values.host ?? CLI_DEFAULT_HOST),
      port: numberOption(values, "port", 0, {
        integer: true,
        min: 0,
        max: 65535,
      }),
      protocol: protocolOption(values),
    });
    server.on("data", (socket, message) => socket.send(message));
    try {
      await server.start();
    } catch (error) {
      throw toCliError(error, `${values.host ?? CLI_DEFAULT_HOST}`);
    }
  }
  try {
    return await run(
      server ? { ...values, port: server.port } : values,
      io,
      server,
    );
  } finally {
    await server?.stop();
  }
}

async function run(
  values: ParsedArgs["values"],
  io: CliIo,
  server: Server | undefined,
): Promise<number> {
  const target = targetOptions(values);
  const timeout = timeoutOption(values, 10);
  const connections = numberOption(values, "connections", 4, {
    integer: true,
    min: 1,
    max: 10_000,
  });
  const inflight = numberOption(values, "inflight", 16, {
    integer: true,
    min: 1,
    max: 100_000,
  });
  const size = numberOption(values, "size", 64, {
    integer: true,
    min: 0,
    max: 64 * 1024 * 1024,
  });
  const durationMs = numberOption(values, "duration", 5, { above: 0 }) * 1000;
  const payload = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
  const request = size <= 65536 ? payload : new Uint8Array(size);

  const clients = Array.from(
    { length: connections },
    () =>
      new Client({
        host: target.host,
        port: target.port,
        protocol: target.protocol,
        reconnect: false,
        // Room for every outstanding request, however large.
        maxBufferedBytes: Math.max(
          8 * 1024 * 1024,
          inflight * (size + headerSize(target.protocol)) * 2,
        ),
      }),
  );
  let protocolError: ProtocolError | undefined;
  for (const client of clients) {
    client.on("exception", (error) => {
      if (error instanceof ProtocolError) protocolError ??= error;
    });
  }
  const histogram = new Histogram();
  let bytesIn = 0;
  let errors = 0;
  let firstError: unknown;
  let running = true;
  let started = 0;
  let elapsed = 0;
  let stopInterrupts = () => {};
  let progressTimer: ReturnType<typeof setInterval> | undefined;
  let stopTimer: ReturnType<typeof setTimeout> | undefined;
  const progress = io.isTerminal("stderr") && !values.json;
  try {
    try {
      await Promise.all(clients.map((client) => connected(client, timeout)));
    } catch (error) {
      throw toCliError(protocolError ?? error, target.peer, target.protocol);
    }
    const worker = async (client: Client) => {
      while (running) {
        const sent = performance.now();
        try {
          const reply = await client.request(request, { timeout });
          histogram.record(performance.now() - sent);
          bytesIn += reply.length;
        } catch (error) {
          errors++;
          firstError ??= error;
          if (!(error instanceof TimeoutError)) return; // the connection is gone
        }
      }
    };
    started = performance.now();
    const finished = new Promise<void>((resolve) => {
      stopTimer = setTimeout(resolve, durationMs);
      stopInterrupts = io.onInterrupt(resolve);
    }).then(() => running = false);
    if (progress) {
      let lastCount = 0;
      let lastTime = started;
      progressTimer = setInterval(() => {
        const now = performance.now();
        const rate = (histogram.count - lastCount) / ((now - lastTime) / 1000);
        lastCount = histogram.count;
        lastTime = now;
        io.stderr(
          `\r\x1b[2K${
            ((now - started) / 1000).toFixed(1)
          } s  ${histogram.count} msgs  ${Math.round(rate)} msg/s  p50 ${
            fixed(histogram.percentile(0.5))
          } ms  errors ${errors}`,
        ).catch(() => {});
      }, 1000);
    }
    const workers = clients.flatMap((client) =>
      Array.from({ length: inflight }, () => worker(client))
    );
    // Stop at the deadline, or early if every worker lost its connection.
    await Promise.race([finished, Promise.all(workers)]);
    running = false;
    elapsed = performance.now() - started;
    await Promise.all(workers);
  } finally {
    clearTimeout(stopTimer);
    clearInterval(progressTimer);
    stopInterrupts();
    await Promise.all(clients.map((client) => client.close()));
    if (progress) await io.stderr("\r\x1b[2K");
  }

  // Our server's counters once it has seen the clients go (within 200 ms).
  for (let i = 0; server && server.stats().connectionsOpen > 0 && i < 40; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const seconds = elapsed / 1000;
  const count = histogram.count;
  const summary = {
    peer: target.peer,
    protocol: target.protocol,
    connections,
    inflight,
    size,
    durationSeconds: seconds,
    messages: count,
    messagesPerSecond: count / seconds,
    mbPerSecondOut: (count * size) / seconds / 1e6,
    mbPerSecondIn: bytesIn / seconds / 1e6,
    latencyMs: {
      p50: histogram.percentile(0.5),
      p99: histogram.percentile(0.99),
      min: count ? histogram.min : NaN,
      max: count ? histogram.max : NaN,
      avg: count ? histogram.sum / count : NaN,
    },
    errors,
    ...(server ? { server: server.stats() } : {}),
  };
  if (values.json) {
    await io.stdout(
      JSON.stringify(
        summary,
        (_key, value) =>
          typeof value === "number" && !Number.isFinite(value) ? null : value,
      ) +
        "\n",
    );
  } else {
    const rows: [string, string][] = [
      ["target", `${target.peer} (protocol ${target.protocol})`],
      ["connections", String(connections)],
      ["in-flight", `${inflight} per connection`],
      ["payload", `${size} B`],
      ["duration", `${seconds.toFixed(2)} s`],
      ["messages", String(count)],
      ["messages/s", summary.messagesPerSecond.toFixed(0)],
      ["MB/s out", summary.mbPerSecondOut.toFixed(2)],
      ["MB/s in", summary.mbPerSecondIn.toFixed(2)],
      ["latency p50", `${fixed(summary.latencyMs.p50)} ms`],
      ["latency p99", `${fixed(summary.latencyMs.p99)} ms`],
      ["latency max", `${fixed(summary.latencyMs.max)} ms`],
      ["errors", String(errors)],
    ];
    if (summary.server) {
      rows.push(["server", statsLine(summary.server)]);
    }
    const width = Math.max(...rows.map(([name]) => name.length)) + 2;
    await io.stdout(
      rows.map(([name, value]) => name.padEnd(width) + value).join("\n") +
        "\n",
    );
  }
  if (firstError !== undefined) {
    throw toCliError(protocolError ?? firstError, target.peer, target.protocol);
  }
  return ExitCode.OK;
}

function fixed(ms: number): string {
  return Number.isFinite(ms) ? ms.toFixed(3) : "-";
}
