/**
 * The `node:diagnostics_channel` channels that servers and clients publish
 * on, for tools (tracers, metrics, loggers) that observe them without
 * patching: their names and the shape of every message. Messages carry
 * uuids, sizes, addresses and errors, never payloads; none is built while
 * its channel has no subscriber.
 *
 * Importing this module loads `node:diagnostics_channel` at once. The
 * library itself never loads it statically: on Node.js and Bun it takes it
 * from the runtime when `mod.ts` loads; on Deno (where loading it costs a few
 * milliseconds) when a server starts or a client is made. A Deno program that
 * subscribes before then (to see a client's first request) imports this
 * module first, as subscribers usually do for the names.
 *
 * | Channel | Message |
 * | --- | --- |
 * | `tcp-framework:connection:opened` | {@linkcode ConnectionMessage} |
 * | `tcp-framework:connection:closed` | {@linkcode ConnectionClosedMessage} |
 * | `tcp-framework:connection:failed` | {@linkcode ConnectionFailedMessage} |
 * | `tcp-framework:protocol:error` | {@linkcode ConnectionFailedMessage} |
 * | `tcp-framework:server:drain` | {@linkcode DrainMessage} |
 * | `tcp-framework:client:servers` | {@linkcode ServersMessage} |
 * | `tracing:tcp-framework:request:{start,end,asyncStart,asyncEnd,error}` | {@linkcode RequestContext} |
 * | `tracing:tcp-framework:server:message:{start,end,error}` | {@linkcode MessageContext} |
 *
 * @example
 * ```ts
 * import { Client, Server } from "@qtk/tcp-framework";
 * import { REQUEST_TRACE, type RequestContext } from "@qtk/tcp-framework/diagnostics";
 * import { subscribe, unsubscribe } from "node:diagnostics_channel";
 * import assert from "node:assert";
 *
 * const sizes: number[] = [];
 * const onReply = (message: unknown) => sizes.push((message as RequestContext).replySize ?? -1);
 * subscribe(`tracing:${REQUEST_TRACE}:asyncEnd`, onReply);
 * await using server = new Server({ host: "127.0.0.1", port: 0 });
 * server.on("data", (socket, message) => socket.send(message));
 * await server.start();
 * await using client = new Client({ host: "127.0.0.1", port: server.port });
 * await client.request(new Uint8Array(3));
 * unsubscribe(`tracing:${REQUEST_TRACE}:asyncEnd`, onReply);
 * assert.deepEqual(sizes, [3]);
 * ```
 *
 * @module
 */

import * as diagnosticsChannel from "node:diagnostics_channel";
import { install } from "./_diagnostics.ts";
import type { Client } from "./client.ts";
import type { Server, ServerSocket } from "./server.ts";
import type { TrafficStats } from "./stats.ts";
import type { NetAddress } from "./transport/transport.ts";

install(diagnosticsChannel);

export {
  CLIENT_SERVERS,
  CONNECTION_CLOSED,
  CONNECTION_FAILED,
  CONNECTION_OPENED,
  MESSAGE_TRACE,
  PROTOCOL_ERROR,
  REQUEST_TRACE,
  SERVER_DRAIN,
} from "./_diagnostics.ts";

/**
 * A server's connection, as its channel messages name it.
 *
 * @example
 * ```ts
 * import type { ServerConnectionMessage } from "@qtk/tcp-framework/diagnostics";
 * const who = (m: ServerConnectionMessage) => `${m.remoteAddr.hostname}:${m.remoteAddr.port}`;
 * ```
 */
export interface ServerConnectionMessage {
  /** Which end published it. */
  side: "server";
  /** The server. */
  server: Server;
  /** The connection (`socket.stats()` reads its counters). */
  socket: ServerSocket;
  /** The client's address (with `proxyProtocol`, the PROXY header's). */
  remoteAddr: NetAddress;
}

/**
 * A client's connection, as its channel messages name it.
 *
 * @example
 * ```ts
 * import type { ClientConnectionMessage } from "@qtk/tcp-framework/diagnostics";
 * const who = (m: ClientConnectionMessage) => `${m.host}:${m.port}`;
 * ```
 */
export interface ClientConnectionMessage {
  /** Which end published it. */
  side: "client";
  /** The client. */
  client: Client;
  /** The server as `"host:port"`, as the client's events name it. */
  server: string;
  /** The server's host, as configured. */
  host: string;
  /** The server's port, as configured. */
  port: number;
  /** The server's address as connected; undefined when no connection was made. */
  remoteAddr: NetAddress | undefined;
}

/**
 * The message of `tcp-framework:connection:opened`.
 *
 * @example
 * ```ts
 * import { subscribe } from "node:diagnostics_channel";
 * import { CONNECTION_OPENED, type ConnectionMessage } from "@qtk/tcp-framework/diagnostics";
 * subscribe(CONNECTION_OPENED, (message) => console.log((message as ConnectionMessage).side));
 * ```
 */
export type ConnectionMessage =
  | ServerConnectionMessage
  | ClientConnectionMessage;

/**
 * The message of `tcp-framework:connection:closed`: a connection that was
 * opened (and announced with `connected`) has closed.
 *
 * @example
 * ```ts
 * import type { ConnectionClosedMessage } from "@qtk/tcp-framework/diagnostics";
 * const bytes = (m: ConnectionClosedMessage) => m.stats.bytesIn + m.stats.bytesOut;
 * ```
 */
export type ConnectionClosedMessage = ConnectionMessage & {
  /** Why it failed, if it failed rather than ended. */
  error: unknown;
  /** The connection's counters at the end. */
  stats: TrafficStats;
};

/**
 * The message of `tcp-framework:connection:failed` (a client's connect
 * attempt failed; a server refused a connection, or lost it before it was
 * opened: TLS handshake, PROXY header) and of `tcp-framework:protocol:error`
 * (the peer sent something that is not a frame; the connection closes).
 *
 * @example
 * ```ts
 * import type { ConnectionFailedMessage } from "@qtk/tcp-framework/diagnostics";
 * const reason = (m: ConnectionFailedMessage) => String(m.error);
 * ```
 */
export type ConnectionFailedMessage = ConnectionMessage & {
  /** The error, as the `exception` event has it. */
  error: unknown;
};

/**
 * The message of `tcp-framework:server:drain`: `stop()` began; the server
 * stops accepting and closes its connections once they are done.
 *
 * @example
 * ```ts
 * import type { DrainMessage } from "@qtk/tcp-framework/diagnostics";
 * const left = (m: DrainMessage) => m.connections;
 * ```
 */
export interface DrainMessage {
  /** The server. */
  server: Server;
  /** Connections open as it began. */
  connections: number;
}

/**
 * A message of `tcp-framework:client:servers`: a client's server set
 * changed, by a DNS answer or `setServers()`. Servers are named
 * `"host:port"`, as the client's events and stats name them.
 *
 * @example
 * ```ts
 * import type { ServersMessage } from "@qtk/tcp-framework/diagnostics";
 * const line = (m: ServersMessage) => `+${m.added.join(",")} -${m.removed.join(",")}`;
 * ```
 */
export interface ServersMessage {
  /** The client. */
  client: Client;
  /** Servers that joined. */
  added: string[];
  /** Servers that left: they take no new message. */
  removed: string[];
  /** The set now. */
  servers: string[];
}

/**
 * The context object of the `tcp-framework:request` TracingChannel, one per
 * `client.request()`: the same object goes to `start` and `end` (around the
 * call, which returns the promise) and to `asyncStart` and `asyncEnd` (once
 * it settles), with `error` before those if it rejected. A subscriber may
 * keep its own fields on it (a span) from start to end.
 *
 * @example
 * ```ts
 * import type { RequestContext } from "@qtk/tcp-framework/diagnostics";
 * const ok = (c: RequestContext) => c.error === undefined;
 * ```
 */
export interface RequestContext {
  /** The client. */
  client: Client;
  /** The request's uuid. */
  uuid: string;
  /** Bytes of the request's payload. */
  size: number;
  /** Bytes of the reply's payload, once it arrived. */
  replySize?: number;
  /** Why the request failed (`TimeoutError`, `ClosedError`, …). */
  error?: unknown;
}

/**
 * The context object of the `tcp-framework:server:message` TracingChannel,
 * one per DATA frame a server receives: `start` and `end` around the
 * dispatch of its `data` event (with `start`'s bound stores active, so
 * spans made by listeners nest under the subscriber's), and `error` before
 * `end` when a listener throws (it is still reported as `exception`).
 *
 * @example
 * ```ts
 * import type { MessageContext } from "@qtk/tcp-framework/diagnostics";
 * const label = (c: MessageContext) => `${c.uuid} (${c.size} B)`;
 * ```
 */
export interface MessageContext {
  /** The server. */
  server: Server;
  /** The connection the message came on. */
  socket: ServerSocket;
  /** The message's uuid. */
  uuid: string;
  /** Bytes of its payload. */
  size: number;
  /** What a listener threw. */
  error?: unknown;
}
