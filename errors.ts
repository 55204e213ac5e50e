/**
 * The errors that callers of this package may want to catch. Bad arguments
 * are plain `TypeError`/`RangeError`; everything here is a failure of the peer,
 * the connection or the clock, with structured fields to act on.
 *
 * @module
 */

/**
 * The peer sent bytes that are not a valid frame. The connection that carried
 * them is closed; other connections are not affected.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { FrameDecoder, ProtocolError } from "@qtk/tcp-framework";
 * assert.throws(
 *   () => new FrameDecoder().push(new Uint8Array(45).fill(0x42), () => {}),
 *   ProtocolError,
 * );
 * ```
 */
export class ProtocolError extends Error {
  /** Offset of the offending frame's first byte in the decoded stream. */
  readonly offset: number;

  /**
   * Creates the instance.
   *
   * @param message What was wrong, with the offending value quoted.
   * @param offset Offset of the offending frame in the stream.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, offset = 0, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
    this.offset = offset;
  }
}

/**
 * A frame's header claims a payload larger than the receiver's
 * `maxFrameSize`. Raised from the header alone; the payload is never buffered.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { FrameTooLargeError } from "@qtk/tcp-framework";
 * const error = new FrameTooLargeError(2 ** 40, 1024);
 * assert.equal(error.length, 2 ** 40);
 * assert.equal(error.maxFrameSize, 1024);
 * ```
 */
export class FrameTooLargeError extends ProtocolError {
  /** The payload length the header claimed. */
  readonly length: number;
  /** The receiver's limit. */
  readonly maxFrameSize: number;

  /**
   * Creates the instance.
   *
   * @param length The claimed payload length.
   * @param maxFrameSize The receiver's limit.
   * @param offset Offset of the frame in the stream.
   * @param options Standard error options (`cause`).
   */
  constructor(
    length: number,
    maxFrameSize: number,
    offset = 0,
    options?: ErrorOptions,
  ) {
    super(
      `Frame payload of ${length} bytes exceeds maxFrameSize of ${maxFrameSize} bytes`,
      offset,
      options,
    );
    this.name = "FrameTooLargeError";
    this.length = length;
    this.maxFrameSize = maxFrameSize;
  }
}

/**
 * Something was sent or awaited on a client or connection that is closed, or
 * that closed while the caller waited.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { ClosedError } from "@qtk/tcp-framework";
 * const error = new ClosedError("Client is closed");
 * assert.equal(error.name, "ClosedError");
 * ```
 */
export class ClosedError extends Error {
  /**
   * Creates the instance.
   *
   * @param message What was closed.
   * @param options Standard error options (`cause`).
   */
  constructor(message = "Connection is closed", options?: ErrorOptions) {
    super(message, options);
    this.name = "ClosedError";
  }
}

/**
 * The connection that carried a request was lost before its reply came (the
 * server died, or the network failed): a {@linkcode ClosedError} that says
 * whether the request may have run. `written` is false when none of its
 * bytes had left this process (they were still in its write buffer): the
 * server cannot have seen it, and retrying it is safe. `written` true means
 * it was handed to the operating system and may have run. (Requests made
 * with `idempotent: true` are sent again instead, and requests that were
 * never written go to another connection: those never reject with it.)
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { ClosedError, ConnectionLostError } from "@qtk/tcp-framework";
 * const error = new ConnectionLostError("Connection to 10.0.0.1:8212 lost", true, "10.0.0.1:8212");
 * assert.ok(error instanceof ClosedError);
 * assert.ok(error.written);
 * ```
 */
export class ConnectionLostError extends ClosedError {
  /** Whether the request was handed to the operating system (it may have run). */
  readonly written: boolean;
  /** The server it was sent to, as `"host:port"`. */
  readonly server: string;

  /**
   * Creates the instance.
   *
   * @param message What was lost.
   * @param written Whether the request had left this process.
   * @param server The server, as `"host:port"`.
   * @param options Standard error options (`cause`).
   */
  constructor(
    message: string,
    written: boolean,
    server: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ConnectionLostError";
    this.written = written;
    this.server = server;
  }
}

/**
 * A request got no reply in time, or a connection was silent for longer than
 * its `timeout`.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { TimeoutError } from "@qtk/tcp-framework";
 * const error = new TimeoutError("No reply within 1000 ms", 1000);
 * assert.equal(error.timeout, 1000);
 * ```
 */
export class TimeoutError extends Error {
  /** The time limit that passed, in milliseconds. */
  readonly timeout: number;

  /**
   * Creates the instance.
   *
   * @param message What timed out.
   * @param timeout The limit in milliseconds.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, timeout: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "TimeoutError";
    this.timeout = timeout;
  }
}

/**
 * A send was refused because what already waits to be written reached its
 * limit: the bytes of `maxBufferedBytes` (`unit` "bytes"), or, on a
 * disconnected client, the messages of `maxQueuedMessages` (`unit`
 * "messages"). Nothing was queued and nothing was written; wait for
 * `drained()` (or the connection) and try again.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { BufferFullError } from "@qtk/tcp-framework";
 * const error = new BufferFullError(65536, 65536, 100, "messages");
 * assert.equal(error.option, "maxQueuedMessages");
 * assert.equal(error.limit, 65536);
 * ```
 */
export class BufferFullError extends Error {
  /** What was already waiting when the send was refused, in `unit`s. */
  readonly buffered: number;
  /** The limit that would have been passed, in `unit`s. */
  readonly limit: number;
  /** What `buffered` and `limit` count. */
  readonly unit: "bytes" | "messages";
  /** The option whose limit was reached. */
  readonly option: "maxBufferedBytes" | "maxQueuedMessages";
  /** Size in bytes of the refused frame. */
  readonly frameSize: number;

  /**
   * Creates the instance.
   *
   * @param buffered What was already waiting, in `unit`s.
   * @param limit The limit, in `unit`s.
   * @param frameSize Size of the refused frame in bytes.
   * @param unit What `buffered` and `limit` count: bytes
   *   (`maxBufferedBytes`) or messages (`maxQueuedMessages`).
   */
  constructor(
    buffered: number,
    limit: number,
    frameSize: number,
    unit: "bytes" | "messages" = "bytes",
  ) {
    const option = unit === "messages"
      ? "maxQueuedMessages"
      : "maxBufferedBytes";
    super(
      `Send of a ${frameSize}-byte frame refused: ${buffered} ${unit} already waiting, ${option} is ${limit}`,
    );
    this.name = "BufferFullError";
    this.buffered = buffered;
    this.limit = limit;
    this.unit = unit;
    this.option = option;
    this.frameSize = frameSize;
  }
}

/**
 * A server refused a connection because it already served `maxConnections`:
 * the connection was closed as soon as it opened, and this is the server's
 * `exception` for it. A `RangeError`, as it was before it had a type of its
 * own.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { ConnectionLimitError } from "@qtk/tcp-framework";
 * const error = new ConnectionLimitError(100);
 * assert.ok(error instanceof RangeError);
 * assert.equal(error.maxConnections, 100);
 * ```
 */
export class ConnectionLimitError extends RangeError {
  /** The server's `maxConnections`. */
  readonly maxConnections: number;

  /**
   * Creates the instance.
   *
   * @param maxConnections The server's limit.
   */
  constructor(maxConnections: number) {
    super(
      `Connection refused: maxConnections of ${maxConnections} reached`,
    );
    this.name = "ConnectionLimitError";
    this.maxConnections = maxConnections;
  }
}

/**
 * Why a PROXY protocol header was refused: `signature` (not a PROXY header),
 * `version`, `command`, `family`, `syntax` (a v1 line that is not
 * well-formed), `address`, `port`, `length` (a v2 length that does not fit),
 * `tooLong`, `truncated` (the connection ended inside it), `timeout` (it did
 * not arrive whole in time) or `untrusted` (the peer may not send one).
 *
 * @example
 * ```ts
 * import type { ProxyProtocolErrorReason } from "@qtk/tcp-framework";
 * const reason: ProxyProtocolErrorReason = "untrusted";
 * ```
 */
export type ProxyProtocolErrorReason =
  | "signature"
  | "version"
  | "command"
  | "family"
  | "syntax"
  | "address"
  | "port"
  | "length"
  | "tooLong"
  | "truncated"
  | "timeout"
  | "untrusted";

/**
 * A connection to a server with `proxyProtocol` on did not start with a valid
 * PROXY protocol header in time, or came from a peer not trusted to send one.
 * That connection is closed; others are not affected. `offset` is the
 * offending byte's position in the header.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProtocolError, ProxyProtocolError } from "@qtk/tcp-framework";
 * const error = new ProxyProtocolError("Invalid PROXY header", "signature", 0);
 * assert.ok(error instanceof ProtocolError);
 * assert.equal(error.reason, "signature");
 * ```
 */
export class ProxyProtocolError extends ProtocolError {
  /** What was wrong. */
  readonly reason: ProxyProtocolErrorReason;

  /**
   * Creates the instance.
   *
   * @param message What was wrong, with the offending value quoted.
   * @param reason What was wrong, as a keyword.
   * @param offset Position of the offending byte in the header.
   * @param options Standard error options (`cause`).
   */
  constructor(
    message: string,
    reason: ProxyProtocolErrorReason,
    offset = 0,
    options?: ErrorOptions,
  ) {
    super(message, offset, options);
    this.name = "ProxyProtocolError";
    this.reason = reason;
  }
}

/**
 * A DNS target of a client's `servers` (`"dns:///name:port"`) could not be
 * resolved: the name has no A or AAAA record, or its DNS server did not
 * answer. The client keeps the addresses of the last answer and tries again;
 * it reports a failure once, not at every retry, until an answer comes.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { ResolveError } from "@qtk/tcp-framework";
 * const error = new ResolveError("dns:///api.internal:8212", "ENOTFOUND", 2);
 * assert.equal(error.kept, 2);
 * assert.match(error.message, /dns:\/\/\/api\.internal:8212.*ENOTFOUND/);
 * ```
 */
export class ResolveError extends Error {
  /** The target, as given in `servers`. */
  readonly target: string;
  /** The resolver's error code, such as `"ENOTFOUND"` or `"ETIMEOUT"`. */
  readonly code: string;
  /** Addresses of the last answer that the client keeps using. */
  readonly kept: number;

  /**
   * Creates the instance.
   *
   * @param target The target, as given.
   * @param code The resolver's error code.
   * @param kept Addresses still used from the last answer.
   * @param options Standard error options: `cause` is the resolver's error.
   */
  constructor(
    target: string,
    code: string,
    kept: number,
    options?: ErrorOptions,
  ) {
    const why = options?.cause instanceof Error
      ? `: ${options.cause.message}`
      : "";
    const plural = kept === 1 ? "" : "es";
    super(
      `Cannot resolve ${target} (${code})${why}; ${
        kept === 0
          ? "no address to connect to yet"
          : `keeping the ${kept} address${plural} of the last answer`
      }`,
      options,
    );
    this.name = "ResolveError";
    this.target = target;
    this.code = code;
    this.kept = kept;
  }
}

/**
 * What a {@linkcode TlsError} says went wrong, the same on Deno, Bun and
 * Node.js:
 *
 * - `NOT_TLS`: the peer sent bytes that are not TLS (a plaintext client or
 *   server, an HTTP request).
 * - `UNTRUSTED`: a certificate does not chain to a trusted CA (self-signed,
 *   another CA's, a bad signature).
 * - `NAME_MISMATCH`: the server's certificate does not name the host (or
 *   `serverName`) the client asked for.
 * - `EXPIRED`, `NOT_YET_VALID`: a certificate outside its validity.
 * - `CERTIFICATE_REQUIRED`: the server asks for a client certificate and the
 *   client sent none.
 * - `HANDSHAKE_FAILED`: anything else that ended the handshake (the peer
 *   closed the connection in the middle of it, no common version or cipher).
 *
 * @example
 * ```ts
 * import type { TlsErrorCode } from "@qtk/tcp-framework";
 * const code: TlsErrorCode = "UNTRUSTED";
 * ```
 */
export type TlsErrorCode =
  | "NOT_TLS"
  | "UNTRUSTED"
  | "NAME_MISMATCH"
  | "EXPIRED"
  | "NOT_YET_VALID"
  | "CERTIFICATE_REQUIRED"
  | "HANDSHAKE_FAILED";

const TLS_REASONS: Record<TlsErrorCode, [local: string, fromPeer: string]> = {
  NOT_TLS: [
    "the peer does not speak TLS",
    "the peer says what this side sent is not TLS",
  ],
  UNTRUSTED: [
    "the peer's certificate is not trusted (it does not chain to a trusted CA)",
    "the peer does not trust this side's certificate",
  ],
  NAME_MISMATCH: [
    "the server's certificate is not for the name asked for",
    "the peer says this side's certificate is not for the name it asked for",
  ],
  EXPIRED: [
    "the peer's certificate has expired",
    "the peer says this side's certificate has expired",
  ],
  NOT_YET_VALID: [
    "the peer's certificate is not valid yet",
    "the peer says this side's certificate is not valid yet",
  ],
  CERTIFICATE_REQUIRED: [
    "the peer sent no certificate, and one is required",
    "the peer requires a certificate, and this side sent none",
  ],
  HANDSHAKE_FAILED: [
    "the TLS handshake failed",
    "the peer ended the TLS handshake",
  ],
};

/**
 * A TLS handshake failed, or a TLS connection failed on a TLS alert: `code`
 * says why in one vocabulary on every runtime (see {@linkcode TlsErrorCode}),
 * `fromPeer` whether the peer's TLS alert said so (it refused this side's
 * certificate) or this side found it. A client reports it as an `exception`
 * and tries again per `reconnect`; a server as an `exception` for the
 * connection, which is closed before any `connected`. `cause` is the
 * runtime's own error.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { TlsError } from "@qtk/tcp-framework";
 * const error = new TlsError("UNTRUSTED", { hostname: "10.0.0.5", port: 7443 });
 * assert.equal(error.code, "UNTRUSTED");
 * assert.match(error.message, /^TLS with 10\.0\.0\.5:7443 failed: the peer's certificate is not trusted/);
 * ```
 */
export class TlsError extends Error {
  /** What went wrong, as a stable keyword. */
  readonly code: TlsErrorCode;
  /** True when the peer's TLS alert reported it, false when this side found it. */
  readonly fromPeer: boolean;
  /** The peer's address. */
  readonly hostname: string;
  /** The peer's port. */
  readonly port: number;

  /**
   * Creates the instance.
   *
   * @param code What went wrong.
   * @param address The peer's address.
   * @param options Standard error options (`cause`: the runtime's error),
   *   `fromPeer` (default false), and `detail`, words added to the message
   *   (the runtime's own account, a name that did not match).
   */
  constructor(
    code: TlsErrorCode,
    address: { hostname: string; port: number },
    options?: ErrorOptions & { fromPeer?: boolean; detail?: string },
  ) {
    const fromPeer = options?.fromPeer === true;
    const where = address.hostname.includes(":")
      ? `[${address.hostname}]:${address.port}`
      : `${address.hostname}:${address.port}`;
    const detail = options?.detail ? `: ${options.detail}` : "";
    super(
      `TLS with ${where} failed: ${
        TLS_REASONS[code][fromPeer ? 1 : 0]
      } (${code})${detail}`,
      options,
    );
    this.name = "TlsError";
    this.code = code;
    this.fromPeer = fromPeer;
    this.hostname = address.hostname;
    this.port = address.port;
  }
}

/**
 * A server's `authorize` refused a connection: it was closed before its
 * `connected` event, and before any of its frames was read. `cause` is what
 * `authorize` threw, if it threw.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { PeerRefusedError } from "@qtk/tcp-framework";
 * const error = new PeerRefusedError({ hostname: "10.0.0.9", port: 51234 });
 * assert.equal(error.hostname, "10.0.0.9");
 * assert.match(error.message, /refused by authorize/);
 * ```
 */
export class PeerRefusedError extends Error {
  /** The peer's address (the client's, with `proxyProtocol`). */
  readonly hostname: string;
  /** The peer's port. */
  readonly port: number;

  /**
   * Creates the instance.
   *
   * @param address The peer's address.
   * @param options Standard error options: `cause` is what `authorize` threw.
   */
  constructor(
    address: { hostname: string; port: number },
    options?: ErrorOptions,
  ) {
    const where = address.hostname.includes(":")
      ? `[${address.hostname}]:${address.port}`
      : `${address.hostname}:${address.port}`;
    const why = options?.cause instanceof Error
      ? `: ${options.cause.message}`
      : "";
    super(`Connection from ${where} refused by authorize${why}`, options);
    this.name = "PeerRefusedError";
    this.hostname = address.hostname;
    this.port = address.port;
  }
}

/** What a {@linkcode NetworkError} was doing when it failed. */
export type NetworkOperation = "listen" | "connect" | "connection";

/**
 * A socket failed: listening (the address is in use, not local, not
 * allowed), connecting (refused, unreachable) or an open connection (reset by
 * the peer). The message names the address and the reason in the same words
 * on Deno, Bun and Node.js, such as
 * `Cannot listen on 127.0.0.1:7000: address in use (EADDRINUSE)`; `cause` is
 * the runtime's own error.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { Client, NetworkError } from "@qtk/tcp-framework";
 * await using client = new Client({ host: "127.0.0.1", port: 1, reconnect: false });
 * const error = await new Promise((resolve) => client.once("exception", resolve));
 * assert.ok(error instanceof NetworkError);
 * assert.equal(error.code, "ECONNREFUSED");
 * assert.match(error.message, /127\.0\.0\.1:1: connection refused/);
 * ```
 */
export class NetworkError extends Error {
  /** What failed: `listen`, `connect`, or an open `connection`. */
  readonly operation: NetworkOperation;
  /** The address listened on, connected to, or of the peer. */
  readonly hostname: string;
  /** The port listened on, connected to, or of the peer. */
  readonly port: number;
  /** The system error code, such as `"EADDRINUSE"` or `"ECONNREFUSED"`. */
  readonly code: string;
  /** The reason in words, such as `"address in use"`. */
  readonly reason: string;

  /**
   * Creates the instance.
   *
   * @param operation What failed.
   * @param address Where.
   * @param code The system error code.
   * @param options Standard error options: `cause` is the runtime's error.
   */
  constructor(
    operation: NetworkOperation,
    address: { hostname: string; port: number },
    code: string,
    options?: ErrorOptions,
  ) {
    const where = address.hostname.includes(":")
      ? `[${address.hostname}]:${address.port}`
      : `${address.hostname}:${address.port}`;
    const reason = NETWORK_REASONS[code] ?? code;
    super(
      operation === "listen"
        ? `Cannot listen on ${where}: ${reason} (${code})`
        : operation === "connect"
        ? `Cannot connect to ${where}: ${reason} (${code})`
        : `Connection with ${where} failed: ${reason} (${code})`,
      options,
    );
    this.name = "NetworkError";
    this.operation = operation;
    this.hostname = address.hostname;
    this.port = address.port;
    this.code = code;
    this.reason = reason;
  }
}

/** The system error codes the runtimes report, in the words used for them. */
const NETWORK_REASONS: Record<string, string> = {
  EADDRINUSE: "address in use",
  EADDRNOTAVAIL: "address not available",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by peer",
  ECONNABORTED: "connection aborted",
  EPIPE: "connection closed by peer",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENETDOWN: "network down",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EAI_NONAME: "host not found",
  EMFILE: "too many open files",
  ENFILE: "too many open files",
};
