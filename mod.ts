/**
 * `@qtk/tcp-framework`: an asynchronous TCP request framework for Deno, Bun
 * and Node.js (20 or later), speaking the wire protocol of the Node.js
 * `@qtk/tcp-framework` 3.x package byte for byte, so services on any of the
 * three runtimes can be mixed. Optionally over TLS (the `tls` options).
 *
 * A {@linkcode Client} sends requests `{uuid, data}`; a {@linkcode Server}
 * receives them as `data` events and answers with `send(socket, {uuid, data})`.
 * Connections are kept alive with heartbeats, silent ones are dropped, and the
 * client reconnects and queues what is sent while disconnected. The framework
 * never looks inside payloads.
 *
 * @example
 * ```ts
 * import { Client, Server } from "@qtk/tcp-framework";
 *
 * await using server = new Server({ host: "127.0.0.1", port: 0 });
 * server.on("data", (socket, { uuid, data }) => server.send(socket, { uuid, data }));
 * await server.start();
 *
 * await using client = new Client({ host: "127.0.0.1", port: server.port });
 * const reply = await client.request(new TextEncoder().encode("echo"), { timeout: 1000 });
 * console.log(new TextDecoder().decode(reply)); // "echo"
 * ```
 *
 * @module
 */

export {
  Client,
  type ClientEventDetails,
  type ClientEvents,
  type ClientOptions,
  DEFAULT_MAX_QUEUED_MESSAGES,
  DEFAULT_REQUEST_TIMEOUT,
  type OutlierOptions,
  reconnectDelay,
  type RequestOptions,
  type ServerAddress,
  type ServersChange,
} from "./client.ts";
export {
  type ConnectionOptions,
  DEFAULT_GRACE_PERIOD,
  DEFAULT_HEARTBEAT,
  DEFAULT_HOST,
  DEFAULT_MAX_BUFFERED_BYTES,
  DEFAULT_PROXY_HEADER_TIMEOUT,
  DEFAULT_TIMEOUT,
  type ProxyProtocolOptions,
  Server,
  type ServerEventDetails,
  type ServerEvents,
  type ServerOptions,
  type ServerSocket,
} from "./server.ts";
export type {
  ClientServerStats,
  ClientStats,
  ConnectionStats,
  ServerStats,
  TrafficStats,
} from "./stats.ts";
export type { Message, SendOptions } from "./message.ts";
export {
  type ByteConnection,
  type ByteStreams,
  frameStream,
  type FrameStreamOptions,
  type FrameStreamPair,
} from "./frame_stream.ts";
export type {
  Accept,
  ClientTlsOptions,
  ConnectionHandler,
  ConnectOptions,
  ListenOptions,
  NetAddress,
  PeerCertificate,
  ServerTlsOptions,
  Transport,
  TransportConnection,
  TransportListener,
} from "./transport/transport.ts";
export {
  type DetailListener,
  type EventShape,
  type Listener,
  TypedEventTarget,
} from "./events.ts";
export {
  decodeFrame,
  type DecoderOptions,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameDecoderStream,
  FrameEncoderStream,
  type ProtocolVersion,
  type Sign,
  SIGN_DATA,
  SIGN_PING,
} from "./codec.ts";
export {
  BufferFullError,
  ClosedError,
  ConnectionLimitError,
  ConnectionLostError,
  FrameTooLargeError,
  NetworkError,
  type NetworkOperation,
  PeerRefusedError,
  ProtocolError,
  ProxyProtocolError,
  type ProxyProtocolErrorReason,
  ResolveError,
  TimeoutError,
  TlsError,
  type TlsErrorCode,
} from "./errors.ts";
export type { ProxyAddress, ProxyHeader } from "./proxy_protocol.ts";
