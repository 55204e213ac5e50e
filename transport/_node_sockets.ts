// Sockets through node:net and node:tls: every connection on Node.js, and
// TLS on Deno and Bun too, whose own TLS APIs lack what the framework needs
// (Deno.listenTls cannot ask for a client certificate, neither Deno API tells
// the peer's certificate, and neither Deno's nor Bun's listener can take a
// new certificate while it listens). Each runtime's node:tls runs on its own
// TLS stack (OpenSSL, rustls, BoringSSL), so this is still each runtime's TLS,
// behind one API and one vocabulary of failures (TlsError).
//
// A TLS listener is a plain node:net listener whose sockets are handed, one
// by one, to a node:tls Server that never listens itself (its documented
// "connection" event takes them): the framework sees each connection as soon
// as it is accepted (counted, bounded by the silence timeout), and the TLS
// Server runs the handshake and verifies the client's certificate exactly as
// a listening one would. A new certificate is a new TLS Server for the
// handshakes to come; those under way finish on the one they began with.

import * as nodeNet from "node:net";
import * as nodeTls from "node:tls";
import { TlsError, type TlsErrorCode } from "../errors.ts";
import type {
  Accept,
  ConnectionHandler,
  ConnectOptions,
  ListenOptions,
  NetAddress,
  PeerCertificate,
  ServerTlsOptions,
  TransportConnection,
  TransportListener,
} from "./transport.ts";
import { caList, throwIfAborted, untilAborted } from "./_shared.ts";
import { networkError } from "../_network_error.ts";

/** The few members of a runtime's error these functions read. */
interface RuntimeError {
  code?: unknown;
  message?: unknown;
  reason?: unknown;
}

/** Certificate verification codes (OpenSSL's names, which every runtime uses). */
const VERIFY_CODES: Record<string, TlsErrorCode> = {
  CERT_HAS_EXPIRED: "EXPIRED",
  CERT_NOT_YET_VALID: "NOT_YET_VALID",
  ERR_TLS_CERT_ALTNAME_INVALID: "NAME_MISMATCH",
  HOSTNAME_MISMATCH: "NAME_MISMATCH",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "UNTRUSTED",
  UNABLE_TO_GET_ISSUER_CERT: "UNTRUSTED",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "UNTRUSTED",
  SELF_SIGNED_CERT_IN_CHAIN: "UNTRUSTED",
  DEPTH_ZERO_SELF_SIGNED_CERT: "UNTRUSTED",
  CERT_SIGNATURE_FAILURE: "UNTRUSTED",
  UNABLE_TO_DECRYPT_CERT_SIGNATURE: "UNTRUSTED",
  UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: "UNTRUSTED",
  CERT_UNTRUSTED: "UNTRUSTED",
  CERT_REJECTED: "UNTRUSTED",
  CERT_REVOKED: "UNTRUSTED",
  CERT_CHAIN_TOO_LONG: "UNTRUSTED",
  INVALID_CA: "UNTRUSTED",
  INVALID_PURPOSE: "UNTRUSTED",
  PATH_LENGTH_EXCEEDED: "UNTRUSTED",
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: "CERTIFICATE_REQUIRED",
  ERR_SSL_WRONG_VERSION_NUMBER: "NOT_TLS",
  ERR_SSL_HTTP_REQUEST: "NOT_TLS",
  ERR_SSL_HTTPS_PROXY_REQUEST: "NOT_TLS",
  ERR_SSL_PACKET_LENGTH_TOO_LONG: "NOT_TLS",
  ERR_SSL_UNKNOWN_PROTOCOL: "NOT_TLS",
};

/** TLS alerts the peer sends when it refuses this side's certificate. */
const ALERT_CODES: Record<string, TlsErrorCode> = {
  UNKNOWN_CA: "UNTRUSTED",
  BAD_CERTIFICATE: "UNTRUSTED",
  CERTIFICATE_UNKNOWN: "UNTRUSTED",
  UNSUPPORTED_CERTIFICATE: "UNTRUSTED",
  CERTIFICATE_REVOKED: "UNTRUSTED",
  ACCESS_DENIED: "UNTRUSTED",
  CERTIFICATE_EXPIRED: "EXPIRED",
  CERTIFICATE_REQUIRED: "CERTIFICATE_REQUIRED",
};

/** Node.js's, Deno's and Bun's alert codes: ERR_SSL_TLSV13_ALERT_UNKNOWN_CA… */
const ALERT = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z_]+)$/;

/**
 * What went wrong, if `error` is a TLS failure: its code in the vocabulary
 * of {@linkcode TlsError}, and whether the peer said so by an alert.
 * `verifyCode`, a server's verification of a client certificate as the
 * runtime noted it, wins over the error (Node.js and Deno report that
 * failure as the peer hanging up).
 */
function tlsCode(
  error: unknown,
  verifyCode?: unknown,
): { code: TlsErrorCode; fromPeer: boolean; runtimeCode: string } | undefined {
  if (typeof verifyCode === "string" && verifyCode !== "") {
    return {
      code: VERIFY_CODES[verifyCode] ?? "UNTRUSTED",
      fromPeer: false,
      runtimeCode: verifyCode,
    };
  }
  const runtimeCode = (error as RuntimeError | null)?.code;
  if (typeof runtimeCode !== "string") return undefined;
  const known = VERIFY_CODES[runtimeCode];
  if (known !== undefined) return { code: known, fromPeer: false, runtimeCode };
  const alert = ALERT.exec(runtimeCode);
  if (alert !== null) {
    return {
      code: ALERT_CODES[alert[1]] ?? "HANDSHAKE_FAILED",
      fromPeer: true,
      runtimeCode,
    };
  }
  // Bun reports some failures as EPROTO with OpenSSL's reason in words.
  const message = String((error as RuntimeError).message ?? "");
  if (/WRONG_VERSION_NUMBER|wrong version number/.test(message)) {
    return { code: "NOT_TLS", fromPeer: false, runtimeCode };
  }
  if (runtimeCode.startsWith("ERR_SSL_") || runtimeCode === "EPROTO") {
    return { code: "HANDSHAKE_FAILED", fromPeer: false, runtimeCode };
  }
  return undefined;
}

/** Words for the message of a TlsError built from a runtime's error. */
function detailOf(
  code: TlsErrorCode,
  runtimeCode: string,
  error: unknown,
): string | undefined {
  // Node.js's checkServerIdentity (which every runtime runs here) names both.
  const reason = (error as RuntimeError | null)?.reason;
  if (code === "NAME_MISMATCH" && typeof reason === "string") return reason;
  return runtimeCode;
}

/**
 * `error` as a TlsError if it is a TLS failure, else as the NetworkError (or
 * the error itself) that {@linkcode networkError} makes of it.
 */
function failureOf(
  error: unknown,
  address: NetAddress,
  operation: "connect" | "connection",
): unknown {
  const tls = tlsCode(error);
  if (tls === undefined) return networkError(operation, address, error);
  return new TlsError(tls.code, address, {
    cause: error,
    fromPeer: tls.fromPeer,
    detail: detailOf(tls.code, tls.runtimeCode, error),
  });
}

const MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec";

/** `Dec  4 16:55:37 2026 GMT`, the form of `valid_to`, as a Date. */
function certificateDate(text: unknown): Date {
  const match =
    /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)? (\d{4}) GMT$/
      .exec(String(text));
  if (match === null) return new Date(NaN);
  const [, month, day, hours, minutes, seconds, year] = match;
  return new Date(
    Date.UTC(
      Number(year),
      MONTHS.indexOf(month) / 3,
      Number(day),
      Number(hours),
      Number(minutes),
      Number(seconds),
    ),
  );
}

/**
 * `subjectaltname` as the runtimes give it (`DNS:a, IP Address:10.0.0.1`,
 * with a value JSON-quoted when it holds a comma or a quote) as a list of
 * `TYPE:value`, `IP Address` shortened to `IP`.
 */
export function parseSubjectAltNames(text: unknown): string[] {
  if (typeof text !== "string" || text === "") return [];
  const names: string[] = [];
  let at = 0;
  while (at < text.length) {
    const colon = text.indexOf(":", at);
    if (colon < 0) break;
    let type = text.slice(at, colon).trim();
    if (type === "IP Address") type = "IP";
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      // A JSON string: find its closing quote, past escaped ones.
      end = colon + 2;
      while (end < text.length && text[end] !== '"') {
        end += text[end] === "\\" ? 2 : 1;
      }
      end++;
      try {
        value = JSON.parse(text.slice(colon + 1, end));
      } catch {
        value = text.slice(colon + 2, end - 1);
      }
    } else {
      end = text.indexOf(", ", colon + 1);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    names.push(`${type}:${value}`);
    at = text.indexOf(", ", end);
    if (at < 0) break;
    at += 2;
  }
  return names;
}

function attributes(
  value: unknown,
): Readonly<Record<string, string | string[]>> {
  const copy: Record<string, string | string[]> = {};
  if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      copy[key] = Array.isArray(item) ? item.map(String) : String(item);
    }
  }
  return Object.freeze(copy);
}

/** The peer's certificate of a TLS socket whose handshake is done. */
function peerCertificateOf(
  socket: nodeTls.TLSSocket,
): PeerCertificate | undefined {
  const certificate = socket.getPeerCertificate() as
    | Partial<nodeTls.PeerCertificate>
    | null
    | undefined;
  if (!certificate || certificate.raw === undefined) return undefined;
  return Object.freeze({
    subject: attributes(certificate.subject),
    issuer: attributes(certificate.issuer),
    subjectAltNames: Object.freeze(
      parseSubjectAltNames(certificate.subjectaltname),
    ),
    serialNumber: String(certificate.serialNumber ?? "").toUpperCase(),
    fingerprint256: String(certificate.fingerprint256 ?? "").toUpperCase(),
    validFrom: certificateDate(certificate.valid_from),
    validTo: certificateDate(certificate.valid_to),
    raw: new Uint8Array(certificate.raw),
  });
}

/**
 * One connection: a node:net socket, or a TLS socket over one. A server's
 * TLS connection starts without its TLS socket: it is accepted while its
 * handshake runs, and a write made meanwhile waits for it.
 */
export class NodeConnection implements TransportConnection {
  readonly remoteAddr: NetAddress;
  peerCertificate: PeerCertificate | undefined;
  /** The TCP socket: closing it closes everything above it. */
  readonly tcp: nodeNet.Socket;
  /** What reads and writes go through; undefined during a server's handshake. */
  #socket: nodeNet.Socket | undefined;
  #handler: ConnectionHandler | undefined;
  #failure: unknown;
  #closing = false;
  #ended = false;
  /** A write made during the handshake, written once it is done. */
  #waiting:
    | { bytes: Uint8Array; settle(error?: Error | null): void }
    | undefined;
  #lateTimer: ReturnType<typeof setTimeout> | undefined;
  /** Called once it has ended (a listener forgets it then). */
  onEnded: (() => void) | undefined;

  /** `tcp` is the TCP socket under `socket` (itself, without TLS). */
  constructor(socket: nodeNet.Socket | undefined, tcp: nodeNet.Socket) {
    this.#socket = socket;
    this.tcp = tcp;
    this.remoteAddr = {
      hostname: tcp.remoteAddress ?? "",
      port: tcp.remotePort ?? 0,
    };
    tcp.setNoDelay(true);
  }

  get closing(): boolean {
    return this.#closing;
  }

  attach(handler: ConnectionHandler): void {
    this.#handler = handler;
    if (this.#socket !== undefined) this.#listen(this.#socket);
    else this.tcp.once("close", () => this.#closedInHandshake());
  }

  #listen(socket: nodeNet.Socket): void {
    const handler = this.#handler!;
    // Node's chunks are Buffers already, as the payloads made from them are.
    socket.on("data", (chunk: Uint8Array) => handler.received(chunk));
    socket.on("error", (error) => {
      if (!this.#closing) {
        this.#failure ??= failureOf(error, this.remoteAddr, "connection");
      }
    });
    socket.once("close", () => {
      this.#closing = true;
      this.#end(this.#failure);
    });
  }

  /** A server's handshake succeeded on `socket`: the connection is ready. */
  secured(socket: nodeTls.TLSSocket): void {
    if (this.#closing || this.#ended) {
      socket.destroy();
      return;
    }
    this.#socket = socket;
    this.peerCertificate = peerCertificateOf(socket);
    this.#listen(socket);
    this.#handler!.secured?.();
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (waiting !== undefined && !this.#closing) {
      socket.write(waiting.bytes, (error) => waiting.settle(error));
    }
  }

  /**
   * A server's handshake failed: `error` says why (undefined for a peer
   * that went away without a byte, such as a port check).
   */
  failed(error: unknown): void {
    if (this.#ended) return;
    // Not a failure when this side closed it (past maxConnections, stop()).
    if (!this.#closing) this.#failure ??= error;
    this.#closing = true;
    this.tcp.destroy();
    this.#end(this.#failure);
  }

  /**
   * The TCP socket closed during a server's handshake. Node.js and Deno tell
   * the TLS Server why just after it closes (Bun just before): the end waits
   * one turn of the event loop for that reason.
   */
  #closedInHandshake(): void {
    if (this.#socket !== undefined || this.#ended) return;
    this.#lateTimer ??= setTimeout(() => this.#end(this.#failure), 0);
  }

  #end(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#closing = true;
    clearTimeout(this.#lateTimer);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.settle(new Error("Socket is closed"));
    this.onEnded?.();
    this.#handler?.ended(error);
  }

  write(bytes: Uint8Array): Promise<void> | undefined {
    const socket = this.#socket;
    if (this.#closing || socket?.destroyed) {
      return Promise.reject(new Error("Socket is closed"));
    }
    let settle: ((error?: Error | null) => void) | undefined;
    const written = new Promise<void>((resolve, reject) => {
      settle = (error) => error ? reject(error) : resolve();
    });
    if (socket === undefined) {
      this.#waiting = { bytes, settle: settle! };
      return written;
    }
    socket.write(bytes, (error) => settle!(error));
    // Taken by the kernel at once: nothing for the caller to wait for.
    if (socket.writableLength === 0) {
      written.catch(() => {});
      return undefined;
    }
    return written;
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#socket !== undefined) this.#socket.destroy();
    else this.tcp.destroy(); // its close ends the connection
  }
}

/** `host` unless it is an IP address, which SNI does not allow. */
function sniName(host: string): string | undefined {
  return nodeNet.isIP(host) === 0 ? host : undefined;
}

/** A TLS Server that runs the handshakes of sockets handed to it. */
function tlsServer(tls: ServerTlsOptions): nodeTls.Server {
  // `tls` comes checked (Server reads the PEM the same way on every
  // runtime, since Deno's node:tls reads it only at the first handshake).
  try {
    return nodeTls.createServer({
      cert: tls.cert,
      key: tls.key,
      ...(tls.requestCert
        ? { ca: caList(tls.ca), requestCert: true, rejectUnauthorized: true }
        : {}),
    });
  } catch (error) {
    throw new TypeError(
      `Invalid tls: the runtime cannot use this certificate and key (${
        (error as Error)?.message ?? error
      })`,
      { cause: error },
    );
  }
}

/**
 * Listens with node:net, and with `options.tls` runs TLS on each accepted
 * socket. `reusePortProblem` says why the runtime cannot honour `reusePort`
 * here, if it cannot.
 */
export async function listenNode(
  address: NetAddress,
  accept: Accept,
  options: ListenOptions | undefined,
  reusePortProblem: () => string | undefined,
): Promise<TransportListener> {
  const reusePort = options?.reusePort === true;
  const problem = reusePort ? reusePortProblem() : undefined;
  if (problem) throw new Error(problem);
  /** Connections in their TLS handshake, by TCP socket. */
  const handshaking = new Map<nodeNet.Socket, NodeConnection>();
  const find = (socket: nodeNet.Socket): NodeConnection | undefined => {
    // Every runtime's TLS socket names the socket it runs on `_parent`
    // (Deno's `tlsClientError` may give that socket itself); should one
    // not, a live socket is found by its address pair.
    const parent = (socket as { _parent?: nodeNet.Socket })._parent;
    const byParent = handshaking.get(parent ?? socket) ??
      handshaking.get(socket);
    if (byParent !== undefined || socket.remotePort === undefined) {
      return byParent;
    }
    for (const [tcp, connection] of handshaking) {
      if (
        tcp.remotePort === socket.remotePort &&
        tcp.remoteAddress === socket.remoteAddress &&
        tcp.localPort === socket.localPort &&
        tcp.localAddress === socket.localAddress
      ) return connection;
    }
    return undefined;
  };
  const handshakes = (tls: ServerTlsOptions): nodeTls.Server => {
    const server = tlsServer(tls);
    server.on("secureConnection", (socket: nodeTls.TLSSocket) => {
      const connection = find(socket);
      if (connection === undefined) {
        socket.destroy(); // not one of ours any more: never served
        return;
      }
      handshaking.delete(connection.tcp);
      connection.secured(socket);
    });
    server.on("tlsClientError", (error: unknown, socket: nodeNet.Socket) => {
      const connection = find(socket);
      if (connection === undefined) return;
      handshaking.delete(connection.tcp);
      const verifyCode = (socket as { authorizationError?: unknown })
        .authorizationError;
      const tls = tlsCode(error, verifyCode);
      const quiet = tls === undefined && connection.tcp.bytesRead === 0;
      connection.failed(
        quiet
          ? undefined // connected and left without a byte: a port check
          : tls === undefined
          ? new TlsError("HANDSHAKE_FAILED", connection.remoteAddr, {
            cause: error,
            detail:
              "the client closed the connection during the handshake (one that does not trust this server's certificate does so)",
          })
          : new TlsError(tls.code, connection.remoteAddr, {
            cause: error,
            fromPeer: tls.fromPeer,
            detail: detailOf(tls.code, tls.runtimeCode, error),
          }),
      );
    });
    return server;
  };
  let tls = options?.tls ? handshakes(options.tls) : undefined;
  const server = nodeNet.createServer((tcp) => {
    const connection = new NodeConnection(tls ? undefined : tcp, tcp);
    if (tls) {
      // Until its handshake is decided: the reason for a failure may come
      // just after the TCP socket closed.
      handshaking.set(tcp, connection);
      connection.onEnded = () => handshaking.delete(tcp);
    }
    connection.attach(accept(connection));
    // One closed at once (past maxConnections) gets no handshake.
    if (tls && !connection.closing) tls.emit("connection", tcp);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // `reusePort` is not in the Node.js 20 types this builds against.
    const listen: nodeNet.ListenOptions & { reusePort?: boolean } = {
      host: address.hostname,
      port: address.port,
      ...(reusePort ? { reusePort } : {}),
    };
    server.listen(listen, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", () => {/* the accept loop goes on */});
  const bound = server.address() as nodeNet.AddressInfo;
  return {
    addr: { hostname: bound.address, port: bound.port },
    close() {
      // The listening socket closes now; `server.close`'s callback would
      // also wait for every accepted connection.
      server.close();
      return Promise.resolve();
    },
    ...(tls
      ? {
        setTls(next: ServerTlsOptions) {
          // Handshakes under way finish on the TLS Server they began on.
          tls = handshakes(next);
        },
      }
      : {}),
  };
}

/** Connects with node:net, or node:tls with `options.tls`. */
export async function connectNode(
  address: NetAddress,
  accept: Accept,
  options: ConnectOptions | undefined,
): Promise<TransportConnection> {
  const signal = options?.signal;
  throwIfAborted(signal);
  const tls = options?.tls;
  let socket: nodeNet.Socket;
  if (tls) {
    const name = tls.serverName ?? address.hostname;
    socket = nodeTls.connect({
      host: address.hostname,
      port: address.port,
      ca: caList(tls.ca),
      ...(tls.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}),
      servername: sniName(name),
      rejectUnauthorized: true,
      checkServerIdentity: (_host, certificate) =>
        nodeTls.checkServerIdentity(name, certificate),
    });
  } else {
    socket = nodeNet.connect({ host: address.hostname, port: address.port });
  }
  const ready = tls ? "secureConnect" : "connect";
  let connected = false;
  const onConnect = () => connected = true;
  let onReady!: () => void;
  let onError!: (error: unknown) => void;
  let onClose!: () => void;
  const established = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onError = (error) => {
      const failure = failureOf(error, address, "connect");
      // A server that closes or resets the connection in the middle of the
      // handshake: the words differ by runtime (ECONNRESET "socket
      // disconnected", Deno's "UnexpectedEof"), the cause does not.
      reject(
        tls && connected && !(failure instanceof TlsError)
          ? new TlsError("HANDSHAKE_FAILED", address, {
            cause: error,
            detail:
              "the server closed the connection during the handshake (one that does not speak TLS, or refuses the connection, does so)",
          })
          : failure,
      );
    };
    onClose = () =>
      reject(
        tls && connected
          ? new TlsError("HANDSHAKE_FAILED", address, {
            detail: "the server closed the connection during the handshake",
          })
          : new Error("Connection closed before it was established"),
      );
  });
  socket.once("connect", onConnect);
  socket.once(ready, onReady).once("error", onError).once("close", onClose);
  try {
    await untilAborted(established, signal, () => socket.destroy());
  } catch (error) {
    socket.destroy();
    throw error;
  } finally {
    socket.off("connect", onConnect);
    socket.off(ready, onReady).off("error", onError).off("close", onClose);
  }
  const connection = new NodeConnection(socket, socket);
  if (tls) {
    connection.peerCertificate = peerCertificateOf(
      socket as nodeTls.TLSSocket,
    );
  }
  connection.attach(accept(connection));
  return connection;
}
