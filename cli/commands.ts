/**
 * The `serve`, `send` and `ping` subcommands of the command-line tool
 * (`cli/main.ts`). Private: nothing here is part of the library's API.
 *
 * @module
 */

import { Client } from "../client.ts";
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  type ProtocolVersion,
  SIGN_DATA,
  SIGN_PING,
} from "../codec.ts";
import {
  ClosedError,
  NetworkError,
  ProtocolError,
  TimeoutError,
} from "../errors.ts";
import { Server, type ServerSocket } from "../server.ts";
import {
  DEFAULT_MAX_FAILURES,
  HEALTHY_AFTER,
  serveWorkers,
  type Workers,
  WorkersUnavailableError,
} from "../workers.ts";
import { statsLine } from "./_stats.ts";
import {
  runtimeTransport,
  type TransportConnection,
} from "../transport/mod.ts";
import {
  CliError,
  ExitCode,
  type Flag,
  flagHelp,
  numberOption,
  oneLine,
  optionFlags,
  type OptionSpec,
  parseArgs,
  type ParsedArgs,
  protocolHint,
  protocolOption,
  toCliError,
  usage,
} from "./_args.ts";
import type { CliIo } from "./_io.ts";
import { randomUuid } from "../message.ts";
import { SERVER_TABLE } from "../_server_options.ts";
import { CONNECTION_TABLE, SERVER_ADDRESS_TABLE } from "../_options.ts";
import { PROXY_PROTOCOL_TABLE } from "../_proxy_gate.ts";

/** Host every subcommand uses unless `--host` says otherwise. */
export const CLI_DEFAULT_HOST = "127.0.0.1";

const encoder = new TextEncoder();

const HELP_FLAG: Flag = { type: "boolean", short: "h", help: "show this help" };

/** Where a client subcommand connects: the Client options it offers. */
const TARGET_FLAGS = optionFlags({
  ...CONNECTION_TABLE,
  ...SERVER_ADDRESS_TABLE,
}, {
  host: { type: "string", arg: "<host>", default: CLI_DEFAULT_HOST },
  port: { type: "number", short: "p", arg: "<port>", after: " (required)" },
  protocol: { type: "number", arg: "<2|3>" },
});

/** Options every client subcommand takes (`--timeout` helped by each). */
export const CLIENT_OPTIONS: Record<string, OptionSpec> = {
  help: HELP_FLAG,
  ...TARGET_FLAGS,
  timeout: { type: "number", short: "t" },
};

/** The help lines of the client options, `--timeout` and `--help` aside. */
function targetHelp(): string {
  return flagHelp(TARGET_FLAGS);
}
/** Where to connect, as the client subcommands read it. */
export interface Target {
  host: string;
  port: number;
  protocol: ProtocolVersion;
  /** `host:port`, for messages. */
  peer: string;
}

/** Reads `--host`, `--port` (required) and `--protocol`. */
export function targetOptions(values: ParsedArgs["values"]): Target {
  const host = String(values.host ?? CLI_DEFAULT_HOST);
  const port = numberOption(values, "port", undefined, {
    integer: true,
    min: 1,
    max: 65535,
  });
  const protocol = protocolOption(values);
  const peer = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  return { host, port, protocol, peer };
}

/** Reads `--timeout` in seconds (fractions allowed) and returns milliseconds. */
export function timeoutOption(
  values: ParsedArgs["values"],
  fallbackSeconds: number,
): number {
  return numberOption(values, "timeout", fallbackSeconds, { above: 0 }) * 1000;
}

// ----------------------------------------------------------------- serve ----

/** The options of `serve`; those of a Server come from its option table. */
const SERVE_FLAGS: Record<string, Flag> = {
  ...optionFlags(SERVER_TABLE, {
    host: { type: "string", arg: "<host>", default: CLI_DEFAULT_HOST },
    port: { type: "number", short: "p", arg: "<port>", default: 0 },
    protocol: { type: "number", arg: "<2|3>" },
  }),
  reply: {
    type: "string",
    arg: "<text|@file>",
    help: "answer every request with this text, or the bytes of file",
  },
  workers: {
    type: "number",
    arg: "<n>",
    help:
      `run n server processes sharing the port (Linux; needs --port other than 0; Node.js 22.12 or later): restarted if they die, given up after ${DEFAULT_MAX_FAILURES} deaths in a row, drained on Ctrl-C or SIGTERM. Deno also needs --allow-run`,
  },
  ...optionFlags(SERVER_TABLE, {
    reusePort: { type: "boolean", after: " (on Deno also --unstable-net)" },
    proxyProtocol: {
      type: "boolean",
      after:
        " (behind HAProxy send-proxy-v2, nginx proxy_protocol on); logs the client's address",
    },
  }),
  ...optionFlags(PROXY_PROTOCOL_TABLE, {
    trusted: {
      type: "string",
      arg: "<list>",
      before: "with --proxy-protocol: ",
      after: ", comma-separated",
      default: "any",
    },
  }),
  verbose: {
    type: "boolean",
    short: "v",
    help:
      "also log every request, and the server's counters every --stats seconds",
  },
  stats: {
    type: "number",
    arg: "<sec>",
    help: "with -v: seconds between counter lines (default 5)",
  },
  quiet: { type: "boolean", short: "q", help: "log nothing on stderr" },
  help: HELP_FLAG,
};

/** Help text of `serve`. */
const SERVE_HELP = `Usage: tcp-framework serve [options]

Runs a server for trying clients: it answers every request with its own
payload (echo), or with a fixed reply. Prints "listening on HOST:PORT" on
stdout once listening, logs connections on stderr, and stops on Ctrl-C
(SIGINT) or SIGTERM.

Options:
${flagHelp(SERVE_FLAGS)}
Exit codes: 0 stopped by a signal, 1 usage error, 2 cannot listen (with --workers:
cannot run workers here, or every worker kept dying), 5 cannot read --reply file.
`;

/** `tcp-framework serve`: an echo or fixed-reply server. */
export async function serve(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs(argv, SERVE_FLAGS);
  if (values.help) {
    await io.stdout(SERVE_HELP);
    return ExitCode.OK;
  }
  if (values.workers !== undefined) {
    return await serveWithWorkers(argv, values, io);
  }
  if (positionals.length > 0) {
    throw usage(`serve takes no argument, got "${positionals[0]}"`);
  }
  const host = String(values.host ?? CLI_DEFAULT_HOST);
  const port = numberOption(values, "port", 0, {
    integer: true,
    min: 0,
    max: 65535,
  });
  const protocol = protocolOption(values);
  const statsMs = numberOption(values, "stats", 5, { above: 0 }) * 1000;
  let reply: Uint8Array | undefined;
  if (typeof values.reply === "string") {
    reply = values.reply.startsWith("@")
      ? await readInput(io, values.reply.slice(1))
      : encoder.encode(values.reply);
  }

  let logs = Promise.resolve();
  const log = (line: string) => {
    if (!values.quiet) {
      logs = logs.then(() => io.stderr(line + "\n")).catch(() => {});
    }
  };
  if (values.trusted !== undefined && !values["proxy-protocol"]) {
    throw usage("--trusted needs --proxy-protocol");
  }
  let server: Server;
  try {
    server = new Server({
      host,
      port,
      protocol,
      reusePort: values["reuse-port"] === true,
      proxyProtocol: values["proxy-protocol"] === true &&
        (values.trusted === undefined
          ? true
          : { trusted: String(values.trusted).split(",").filter(Boolean) }),
    });
  } catch (error) {
    throw usage(oneLine(error));
  }
  const address = (a: { hostname: string; port: number }) =>
    `${a.hostname}:${a.port}`;
  const name = (socket: ServerSocket) =>
    socket.proxyAddr
      ? `${address(socket.remoteAddr)} via ${address(socket.proxyAddr)}`
      : address(socket.remoteAddr);
  server.on("connected", (socket) => log(`connected ${name(socket)}`));
  server.on("closed", (socket) => log(`closed ${name(socket)}`));
  server.on(
    "exception",
    (socket, error) =>
      log(`error ${socket ? name(socket) + " " : ""}${oneLine(error)}`),
  );
  server.on("data", (socket, { uuid, data }) => {
    if (values.verbose) {
      log(`request ${name(socket)} ${uuid} ${data.length} bytes`);
    }
    socket.send({ uuid, data: reply ?? data });
  });
  // Listening for signals before the port opens: a worker of `--workers`
  // may be told to stop as soon as it is up, and must drain, not die.
  let stopInterrupts = () => {};
  const interrupted = new Promise<void>((resolve) => {
    stopInterrupts = io.onInterrupt(resolve);
  });
  try {
    await server.start();
  } catch (error) {
    stopInterrupts();
    // The reason alone: the Server's message names the address too.
    const reason = error instanceof NetworkError
      ? `${error.reason} (${error.code})`
      : oneLine((error as Error)?.cause ?? error);
    throw new CliError(
      ExitCode.CONNECTION,
      `cannot listen on ${host}:${port}: ${reason}`,
    );
  }
  let statsTimer: ReturnType<typeof setInterval> | undefined;
  if (values.verbose && !values.quiet) {
    let previous = server.stats();
    let previousAt = performance.now();
    statsTimer = setInterval(() => {
      const stats = server.stats();
      const now = performance.now();
      log(`stats ${statsLine(stats, previous, (now - previousAt) / 1000)}`);
      previous = stats;
      previousAt = now;
    }, statsMs);
  }
  try {
    await io.stdout(
      `listening on ${host}:${server.port} (protocol ${protocol}, ${
        reply ? `fixed reply of ${reply.length} bytes` : "echo"
      })\n`,
    );
    await interrupted;
    log("stopping");
  } finally {
    clearInterval(statsTimer);
    stopInterrupts();
    await server.stop();
    await logs;
  }
  return ExitCode.OK;
}

/**
 * `serve --workers N`: N processes of this tool's `serve`, with the same
 * options and --reuse-port, restarted if they die, drained on a signal.
 */
async function serveWithWorkers(
  argv: string[],
  values: ParsedArgs["values"],
  io: CliIo,
): Promise<number> {
  const count = numberOption(values, "workers", 1, {
    integer: true,
    min: 1,
    max: 1024,
  });
  const port = numberOption(values, "port", 0, {
    integer: true,
    min: 0,
    max: 65535,
  });
  if (port === 0) {
    throw usage(
      "--workers needs --port other than 0 (each worker would pick its own)",
    );
  }
  const args = ["serve", "--reuse-port"];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--workers") i++;
    else if (arg.startsWith("--workers=") || arg === "--reuse-port") continue;
    else args.push(arg);
  }
  const main = new URL(
    import.meta.url.endsWith(".js") ? "./main.js" : "./main.ts",
    import.meta.url,
  );
  let stopping = false;
  let givenUp = 0;
  let allFailed = () => {};
  const failed = new Promise<void>((resolve) => allFailed = resolve);
  let workers: Workers;
  try {
    workers = serveWorkers(main, {
      workers: count,
      args,
      handleSignals: false,
      onExit: (worker, code, signal) => {
        if (!stopping) {
          io.stderr(`worker ${worker} exited (${signal ?? `code ${code}`})\n`)
            .catch(() => {});
        }
      },
      onGiveUp: (worker, failures) => {
        io.stderr(
          `worker ${worker} died ${failures} times in a row, each within ${HEALTHY_AFTER} s of its start; not restarting it\n`,
        ).catch(() => {});
        if (++givenUp === count) allFailed();
      },
    });
  } catch (error) {
    // Nothing was started: say why, as a server that cannot listen does.
    if (!(error instanceof WorkersUnavailableError)) throw error;
    throw new CliError(
      ExitCode.CONNECTION,
      `--workers cannot work here: ${
        error.message.replace(/^serveWorkers: /, "")
      }`,
    );
  }
  let stopInterrupts = () => {};
  let interrupted = false;
  try {
    await io.stderr(
      `started ${count} workers on ${
        values.host ?? CLI_DEFAULT_HOST
      }:${port}\n`,
    );
    await Promise.race([
      failed,
      new Promise<void>((resolve) => {
        stopInterrupts = io.onInterrupt(() => {
          interrupted = true;
          resolve();
        });
      }),
    ]);
  } finally {
    stopping = true;
    stopInterrupts();
  }
  const clean = await workers.stop();
  if (!interrupted) {
    throw new CliError(
      ExitCode.CONNECTION,
      `every worker died ${DEFAULT_MAX_FAILURES} times in a row; see their errors above`,
    );
  }
  await io.stderr(
    clean
      ? "all workers drained and stopped\n"
      : "some workers did not stop cleanly\n",
  );
  return clean ? ExitCode.OK : ExitCode.CONNECTION;
}

// ------------------------------------------------------------------ send ----

/** Help text of `send`. */
const SEND_HELP = `Usage: tcp-framework send [options] [payload]

Sends one request and prints the reply's payload on stdout, byte for byte.
The payload is the argument (as UTF-8 text), the bytes of --file, or stdin
when neither is given (or the argument is "-").

Options:
${targetHelp()}  -f, --file <path>      send the bytes of this file
  -o, --out <path>       write the reply to this file instead of stdout
  -t, --timeout <sec>    give up after this long, connecting included (default 10)
  -h, --help             show this help

Exit codes: 0 reply received, 1 usage error, 2 connection refused or lost,
3 timeout, 4 protocol error, 5 cannot read or write a file.
`;

/** `tcp-framework send`: one request, the reply on stdout. */
export async function send(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs(argv, {
    ...CLIENT_OPTIONS,
    file: { type: "string", short: "f" },
    out: { type: "string", short: "o" },
  });
  if (values.help) {
    await io.stdout(SEND_HELP);
    return ExitCode.OK;
  }
  const target = targetOptions(values);
  const timeout = timeoutOption(values, 10);
  if (positionals.length > 1) throw usage("send takes at most one payload");
  if (positionals.length === 1 && values.file !== undefined) {
    throw usage("give the payload as an argument or --file, not both");
  }
  const payload = typeof values.file === "string"
    ? await readInput(io, values.file)
    : positionals.length === 1 && positionals[0] !== "-"
    ? encoder.encode(positionals[0])
    : await readInput(io, "-");

  const deadline = performance.now() + timeout;
  const client = new Client({
    host: target.host,
    port: target.port,
    protocol: target.protocol,
    reconnect: false,
    // Its own report of a failed attempt says why (a server that answers
    // nothing may speak the other protocol): it comes before the wait ends.
    connectTimeout: timeout / 1000,
  });
  let protocolError: ProtocolError | undefined;
  client.on("exception", (error) => {
    if (error instanceof ProtocolError) protocolError ??= error;
  });
  let reply: Uint8Array;
  try {
    await connected(client, timeout);
    reply = await client.request(payload, {
      timeout: Math.max(0, deadline - performance.now()),
    });
  } catch (error) {
    // Report the whole --timeout, not what was left of it for the reply.
    const reported = error instanceof TimeoutError
      ? new TimeoutError(error.message, timeout, { cause: error })
      : error;
    throw toCliError(protocolError ?? reported, target.peer, target.protocol);
  } finally {
    await client.close();
  }
  if (typeof values.out === "string") {
    try {
      await io.writeFile(values.out, reply);
    } catch (error) {
      throw new CliError(
        ExitCode.IO,
        `cannot write ${values.out}: ${oneLine(error)}`,
      );
    }
  } else {
    await io.stdout(reply);
  }
  return ExitCode.OK;
}

/**
 * Past a client's `connectTimeout`, the time its own report of the failed
 * attempt (which says why) takes to arrive.
 */
const REPORT_MARGIN_MS = 250;

/** Resolves once `client` is connected; rejects with its first exception. */
export function connected(client: Client, timeoutMs: number): Promise<void> {
  if (client.connected) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      client.off("connected", onConnected);
      client.off("exception", onException);
    };
    const onConnected = () => {
      done();
      resolve();
    };
    const onException = (error: unknown) => {
      done();
      reject(error);
    };
    const timer = setTimeout(() => {
      done();
      reject(
        new TimeoutError(
          `Not connected within ${Math.round(timeoutMs)} ms`,
          Math.round(timeoutMs),
        ),
      );
    }, timeoutMs + REPORT_MARGIN_MS);
    client.on("connected", onConnected);
    client.on("exception", onException);
  });
}

/** Reads a file, or stdin for "-", turning failures into exit code 5. */
async function readInput(io: CliIo, path: string): Promise<Uint8Array> {
  try {
    return path === "-" ? await io.readStdin() : await io.readFile(path);
  } catch (error) {
    throw new CliError(
      ExitCode.IO,
      `cannot read ${path === "-" ? "stdin" : path}: ${oneLine(error)}`,
    );
  }
}

// ------------------------------------------------------------------ ping ----

/** Help text of `ping`. */
const PING_HELP = `Usage: tcp-framework ping [options]

Measures round-trip times to a server: sends PING frames one at a time (a
server echoes every PING unchanged), or requests with --request (for servers
that echo requests), and prints each time and min/avg/max.

Options:
${targetHelp()}  -c, --count <n>        round trips (default 5)
  -i, --interval <sec>   pause between round trips (default 0.2)
  -s, --size <bytes>     payload size of each frame (default 0)
  --request              send DATA requests instead of PINGs
  -t, --timeout <sec>    wait this long for each reply, and to connect (default 5)
  --json                 print one JSON object instead of text
  -h, --help             show this help

Exit codes: 0 every reply received, 1 usage error, 2 connection refused or
lost, 3 at least one reply timed out, 4 protocol error.
`;

/** `tcp-framework ping`: round-trip times of PINGs or requests. */
export async function ping(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs(argv, {
    ...CLIENT_OPTIONS,
    count: { type: "number", short: "c" },
    interval: { type: "number", short: "i" },
    size: { type: "number", short: "s" },
    request: { type: "boolean" },
    json: { type: "boolean" },
  });
  if (values.help) {
    await io.stdout(PING_HELP);
    return ExitCode.OK;
  }
  if (positionals.length > 0) {
    throw usage(`ping takes no argument, got "${positionals[0]}"`);
  }
  const target = targetOptions(values);
  const timeout = timeoutOption(values, 5);
  const count = numberOption(values, "count", 5, { integer: true, min: 1 });
  const interval = numberOption(values, "interval", 0.2, { min: 0 }) * 1000;
  const size = numberOption(values, "size", 0, { integer: true, min: 0 });
  const sign = values.request ? SIGN_DATA : SIGN_PING;
  const json = values.json === true;
  const payload = new Uint8Array(size).map((_, i) => i & 0xff);

  let peer: RawPeer;
  try {
    peer = await RawPeer.open(target, timeout);
  } catch (error) {
    throw toCliError(error, target.peer, target.protocol);
  }
  const times: number[] = [];
  let lost = 0;
  try {
    if (!json) {
      await io.stdout(
        `PING ${target.peer} (protocol ${target.protocol}, ${
          values.request ? "DATA requests" : "PING frames"
        }, ${size} payload bytes)\n`,
      );
    }
    for (let seq = 1; seq <= count; seq++) {
      if (seq > 1 && interval > 0) await sleep(interval);
      try {
        const time = await peer.roundTrip(sign, payload, timeout);
        times.push(time);
        if (!json) await io.stdout(`seq=${seq} time=${time.toFixed(3)} ms\n`);
      } catch (error) {
        if (!(error instanceof TimeoutError)) throw error;
        lost++;
        if (!json) await io.stdout(`seq=${seq} timeout\n`);
      }
    }
  } catch (error) {
    throw toCliError(error, target.peer, target.protocol);
  } finally {
    await peer.close();
  }
  const min = times.length ? Math.min(...times) : NaN;
  const max = times.length ? Math.max(...times) : NaN;
  const avg = times.length
    ? times.reduce((sum, time) => sum + time, 0) / times.length
    : NaN;
  if (json) {
    await io.stdout(
      JSON.stringify({
        peer: target.peer,
        protocol: target.protocol,
        mode: values.request ? "request" : "ping",
        sent: count,
        received: times.length,
        lost,
        timesMs: times,
        minMs: times.length ? min : null,
        avgMs: times.length ? avg : null,
        maxMs: times.length ? max : null,
      }) + "\n",
    );
  } else {
    await io.stdout(
      `--- ${target.peer} ---\n${count} sent, ${times.length} received, ${lost} lost` +
        (times.length
          ? `; rtt min/avg/max = ${min.toFixed(3)}/${avg.toFixed(3)}/${
            max.toFixed(3)
          } ms\n`
          : "\n"),
    );
  }
  if (lost > 0) {
    if (!json) {
      await io.stderr(
        `tcp-framework: timeout: ${lost} of ${count} replies from ${target.peer} missing after ${timeout} ms ${
          protocolHint(target.protocol)
        }\n`,
      );
    }
    return ExitCode.TIMEOUT;
  }
  return ExitCode.OK;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A connection below the Client: frames in, frames out, replies matched by
 * uuid. The Client never surfaces PING echoes, so `ping` needs this.
 */
class RawPeer {
  readonly #protocol: ProtocolVersion;
  readonly #waiting = new Map<string, (frame: Frame) => void>();
  #connection: TransportConnection | undefined;
  #failure: unknown;
  #failed: ((error: unknown) => void) | undefined;
  #ended!: Promise<void>;

  private constructor(protocol: ProtocolVersion) {
    this.#protocol = protocol;
  }

  static async open(target: Target, timeoutMs: number): Promise<RawPeer> {
    const peer = new RawPeer(target.protocol);
    const decoder = new FrameDecoder({ protocol: target.protocol });
    let ended!: () => void;
    peer.#ended = new Promise((resolve) => ended = resolve);
    const connecting = runtimeTransport().connect(
      { hostname: target.host, port: target.port },
      (connection) => ({
        received: (chunk) => {
          try {
            decoder.push(
              chunk,
              (frame) => peer.#waiting.get(frame.uuid)?.(frame),
            );
          } catch (error) {
            peer.#fail(error);
            connection.close();
          }
        },
        ended: (error) => {
          peer.#fail(
            new ClosedError("Connection closed before the reply", {
              cause: error,
            }),
          );
          ended();
        },
      }),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new TimeoutError(
              `Not connected within ${timeoutMs} ms`,
              timeoutMs,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      peer.#connection = await Promise.race([connecting, timedOut]);
    } catch (error) {
      connecting.then((connection) => connection.close(), () => {});
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return peer;
  }

  /** Sends one frame and resolves with the milliseconds until its echo. */
  roundTrip(
    sign: typeof SIGN_DATA | typeof SIGN_PING,
    payload: Uint8Array,
    timeoutMs: number,
  ): Promise<number> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const uuid = randomUuid(this.#protocol);
    const bytes = encodeFrame({ sign, uuid, payload }, this.#protocol);
    return new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const done = () => {
        clearTimeout(timer);
        this.#waiting.delete(uuid);
        this.#failed = undefined;
      };
      const timer = setTimeout(() => {
        done();
        reject(new TimeoutError(`No reply within ${timeoutMs} ms`, timeoutMs));
      }, timeoutMs);
      this.#failed = (error) => {
        done();
        reject(error);
      };
      this.#waiting.set(uuid, (frame) => {
        if (frame.sign !== sign) return;
        done();
        resolve(performance.now() - started);
      });
      this.#connection!.write(bytes)?.catch((error) => this.#fail(error));
    });
  }

  #fail(error: unknown): void {
    this.#failure ??= error;
    this.#failed?.(this.#failure);
  }

  async close(): Promise<void> {
    this.#connection?.close();
    await this.#ended;
  }
}
