// The diagnostics_channel channels, as the Server and Client publish on them.
//
// node:diagnostics_channel is in Deno, Bun and Node.js, but on Deno loading it
// costs about 5 ms (it more than doubles the load of mod.ts), so it is not
// imported statically: on Node.js and Bun it is taken synchronously from
// process.getBuiltinModule, on Deno it is loaded when a server starts or a
// client is made, or at once by importing ./diagnostics.ts. Until then there
// are no channels, and so nothing to subscribe to that could miss a message.
// Every publisher checks `hasSubscribers` before it builds a message.

/** The part of a diagnostics_channel `Channel` used here. */
export interface Channel {
  readonly hasSubscribers: boolean;
  publish(message: unknown): void;
  runStores?<T>(context: object, fn: () => T): T;
}

/** The five channels of a TracingChannel, as plain fields. */
export interface Trace {
  start: Channel;
  end: Channel;
  asyncStart: Channel;
  asyncEnd: Channel;
  error: Channel;
}

interface DiagnosticsChannelModule {
  channel(name: string): Channel;
  tracingChannel?(name: string): Trace;
}

/**
 * Published when a connection opens: a server's, as `connected` is emitted; a
 * client's, once connected.
 * @example `CONNECTION_OPENED === "tcp-framework:connection:opened"`
 */
export const CONNECTION_OPENED = "tcp-framework:connection:opened";
/**
 * Published when a connection that was opened closes, with its counters.
 * @example `CONNECTION_CLOSED === "tcp-framework:connection:closed"`
 */
export const CONNECTION_CLOSED = "tcp-framework:connection:closed";
/**
 * Published when a client's connect attempt fails, or a server closes a
 * connection before it was opened (refused, or a failed TLS handshake or
 * PROXY header).
 * @example `CONNECTION_FAILED === "tcp-framework:connection:failed"`
 */
export const CONNECTION_FAILED = "tcp-framework:connection:failed";
/**
 * Published when a peer sends something that is not a frame (the connection
 * closes).
 * @example `PROTOCOL_ERROR === "tcp-framework:protocol:error"`
 */
export const PROTOCOL_ERROR = "tcp-framework:protocol:error";
/**
 * Published when a server begins to drain: `stop()` was called.
 * @example `SERVER_DRAIN === "tcp-framework:server:drain"`
 */
export const SERVER_DRAIN = "tcp-framework:server:drain";
/**
 * Published when a client's server set changes (a DNS answer, or
 * `setServers`): what joined and what left.
 * @example `CLIENT_SERVERS === "tcp-framework:client:servers"`
 */
export const CLIENT_SERVERS = "tcp-framework:client:servers";
/**
 * The TracingChannel around `client.request()`: its channels are
 * `tracing:tcp-framework:request:start`, `:end`, `:asyncStart`, `:asyncEnd`
 * and `:error`.
 * @example `REQUEST_TRACE === "tcp-framework:request"`
 */
export const REQUEST_TRACE = "tcp-framework:request";
/**
 * The TracingChannel around a server's `data` event (the dispatch of a
 * message to its listeners): `tracing:tcp-framework:server:message:start`,
 * `:end` and `:error`.
 * @example `MESSAGE_TRACE === "tcp-framework:server:message"`
 */
export const MESSAGE_TRACE = "tcp-framework:server:message";

// The trace contexts as client.ts and server.ts build them: diagnostics.ts's
// RequestContext and MessageContext with the classes as parameters, so that
// the publishers need not import diagnostics.ts, which names the classes for
// subscribers (an import circle, if only of types). tests/typing.test.ts
// checks that these say what the public types say.

/** diagnostics.ts's `RequestContext`, of a `Client`. */
export interface RequestContextOf<Client> {
  client: Client;
  uuid: string;
  size: number;
  replySize?: number;
  error?: unknown;
}

/** diagnostics.ts's `MessageContext`, of a `Server` and its socket. */
export interface MessageContextOf<Server, Socket> {
  server: Server;
  socket: Socket;
  uuid: string;
  size: number;
  error?: unknown;
}

/** The channels, once node:diagnostics_channel is loaded. */
export interface Channels {
  opened: Channel;
  closed: Channel;
  failed: Channel;
  protocolError: Channel;
  drain: Channel;
  servers: Channel;
  request: Trace;
  message: Trace;
}

/** Undefined until node:diagnostics_channel is loaded. */
export let channels: Channels | undefined;

function trace(dc: DiagnosticsChannelModule, name: string): Trace {
  // Without tracingChannel (older runtimes) the same names, by hand.
  const t = dc.tracingChannel?.(name);
  const ch = (event: string) => dc.channel(`tracing:${name}:${event}`);
  return {
    start: t?.start ?? ch("start"),
    end: t?.end ?? ch("end"),
    asyncStart: t?.asyncStart ?? ch("asyncStart"),
    asyncEnd: t?.asyncEnd ?? ch("asyncEnd"),
    error: t?.error ?? ch("error"),
  };
}

/** Makes the channels from a loaded node:diagnostics_channel. */
export function install(dc: DiagnosticsChannelModule): void {
  if (channels !== undefined) return;
  channels = {
    opened: dc.channel(CONNECTION_OPENED),
    closed: dc.channel(CONNECTION_CLOSED),
    failed: dc.channel(CONNECTION_FAILED),
    protocolError: dc.channel(PROTOCOL_ERROR),
    drain: dc.channel(SERVER_DRAIN),
    servers: dc.channel(CLIENT_SERVERS),
    request: trace(dc, REQUEST_TRACE),
    message: trace(dc, MESSAGE_TRACE),
  };
}

let loading: Promise<void> | undefined;

/** Loads node:diagnostics_channel once; never rejects. */
export function loadChannels(): Promise<void> {
  if (channels !== undefined) return Promise.resolve();
  // A variable specifier: bundlers and `deno info` leave it alone.
  const specifier = "node:diagnostics_channel";
  loading ??= import(specifier).then(
    (dc: DiagnosticsChannelModule) => install(dc),
    () => {/* a runtime without it: no channels */},
  );
  return loading;
}

// Node.js (20.16+) and Bun hand built-in modules over synchronously, at no
// cost worth deferring.
if (!("Deno" in globalThis)) {
  const process = (globalThis as {
    process?: { getBuiltinModule?(name: string): unknown };
  }).process;
  const dc = process?.getBuiltinModule?.("node:diagnostics_channel");
  if (dc) install(dc as DiagnosticsChannelModule);
}

/** Whether anyone listens on any channel of `trace`. */
export function tracing(trace: Trace): boolean {
  return trace.start.hasSubscribers || trace.end.hasSubscribers ||
    trace.asyncEnd.hasSubscribers || trace.error.hasSubscribers ||
    trace.asyncStart.hasSubscribers;
}

/**
 * Runs `fn` between `start` and `end` (start's bound stores active, so a
 * tracer's context reaches `fn`), publishing `error` if it throws.
 */
export function traceSync<T>(
  trace: Trace,
  context: { error?: unknown },
  fn: () => T,
): T {
  const run = () => {
    try {
      return fn();
    } catch (error) {
      context.error = error;
      trace.error.publish(context);
      throw error;
    } finally {
      trace.end.publish(context);
    }
  };
  if (trace.start.runStores) return trace.start.runStores(context, run);
  trace.start.publish(context);
  return run();
}
