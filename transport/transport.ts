/**
 * The contract between the framework and a runtime's sockets: a byte-level
 * connection with a callback for reads and a write that reports when the
 * runtime has taken the bytes, plain TCP or TLS through the runtime's own TLS
 * stack. Types only: no adapter is imported here, so code that speaks of a
 * transport loads none (see `runtime.ts` for the one that is loaded).
 *
 * @example
 * ```ts
 * import type { NetAddress, Transport } from "@qtk/tcp-framework/transport";
 * const address: NetAddress = { hostname: "127.0.0.1", port: 0 };
 * const open = (transport: Transport) => transport.listen(address, () => ({ received() {}, ended() {} }));
 * ```
 *
 * @module
 */

/**
 * A socket address.
 *
 * @example
 * ```ts
 * import type { NetAddress } from "@qtk/tcp-framework/transport";
 * const address: NetAddress = { hostname: "127.0.0.1", port: 8080 };
 * ```
 */
export interface NetAddress {
  /** IP address or host name. */
  hostname: string;
  /** TCP port. */
  port: number;
}

/**
 * TLS settings of a listening side: its certificate chain and private key,
 * and, for mutual TLS, the CAs its clients' certificates must chain to.
 *
 * @example
 * ```ts
 * import type { ServerTlsOptions } from "@qtk/tcp-framework/transport";
 * const tls: ServerTlsOptions = {
 *   cert: "-----BEGIN CERTIFICATE-----\n…",
 *   key: "-----BEGIN PRIVATE KEY-----\n…",
 *   ca: "-----BEGIN CERTIFICATE-----\n…",
 *   requestCert: true,
 * };
 * ```
 */
export interface ServerTlsOptions {
  /** The certificate chain, PEM: the server's certificate first. */
  cert: string;
  /** The certificate's private key, PEM. */
  key: string;
  /**
   * With `requestCert`: the CA certificate(s), PEM, that a client's
   * certificate must chain to (they alone are trusted for it).
   */
  ca?: string | string[];
  /**
   * Mutual TLS: ask every client for a certificate, and fail the handshake
   * of one that sends none, or one that does not chain to `ca`, has expired
   * or is not valid yet.
   * @default {false}
   */
  requestCert?: boolean;
}

/**
 * TLS settings of a connecting side. The server's certificate is always
 * verified, against `ca` when given and the runtime's default trust store
 * otherwise, and must name `serverName` (by default the host connected to).
 * With `cert` and `key`, the client presents that certificate to a server
 * that asks for one (mutual TLS).
 *
 * @example
 * ```ts
 * import type { ClientTlsOptions } from "@qtk/tcp-framework/transport";
 * const tls: ClientTlsOptions = { ca: "-----BEGIN CERTIFICATE-----\n…", serverName: "localhost" };
 * ```
 */
export interface ClientTlsOptions {
  /** Trusted CA certificate(s), PEM: they replace the default trust store. */
  ca?: string | string[];
  /**
   * The name the server's certificate must carry (and the SNI sent), when it
   * differs from the host connected to.
   */
  serverName?: string;
  /** This client's certificate chain, PEM, its own first (with `key`). */
  cert?: string;
  /** The private key of `cert`, PEM. */
  key?: string;
}

/**
 * The certificate a peer presented in its TLS handshake, as verified: the
 * client's on a server socket (`socket.peerCertificate`, with mutual TLS),
 * the server's on a client (its `connected` event). The same fields, in the
 * same forms, on Deno, Bun and Node.js.
 *
 * @example
 * ```ts
 * import type { PeerCertificate } from "@qtk/tcp-framework";
 * const isOrders = (certificate: PeerCertificate) =>
 *   certificate.subjectAltNames.includes("URI:spiffe://example.org/orders");
 * ```
 */
export interface PeerCertificate {
  /**
   * The subject's attributes (`CN`, `O`, `OU`…), as Node.js's
   * `getPeerCertificate()` has them: an attribute given several times is an
   * array of its values.
   */
  readonly subject: Readonly<Record<string, string | string[]>>;
  /** The issuer's attributes, in the same form as `subject`. */
  readonly issuer: Readonly<Record<string, string | string[]>>;
  /**
   * The subject alternative names, each as `TYPE:value`: `DNS:orders.internal`,
   * `IP:10.0.0.5`, `URI:spiffe://example.org/orders`, `email:ops@example.org`.
   */
  readonly subjectAltNames: readonly string[];
  /** The serial number, in upper-case hexadecimal digits. */
  readonly serialNumber: string;
  /** SHA-256 of the certificate (DER), as upper-case hex pairs joined by `:`. */
  readonly fingerprint256: string;
  /** Start of its validity. */
  readonly validFrom: Date;
  /** End of its validity. */
  readonly validTo: Date;
  /** The certificate itself, DER. */
  readonly raw: Uint8Array;
}

/**
 * Options of {@linkcode Transport.listen}.
 *
 * @example
 * ```ts
 * import type { ListenOptions } from "@qtk/tcp-framework/transport";
 * const plain: ListenOptions = {};
 * ```
 */
export interface ListenOptions {
  /**
   * Serve TLS instead of plain TCP. Each connection is handed to `accept` as
   * it opens, before its handshake; its handler's `secured` says when the
   * handshake has succeeded, and a failed one ends the connection with a
   * `TlsError`.
   */
  tls?: ServerTlsOptions;
  /**
   * On an accepted connection, read again only once the writes made while the
   * last read was handled have been taken by the runtime (default false: keep
   * reading regardless). Bytes that arrive meanwhile are read together, and a
   * peer that stops reading is not read from either; while reads wait, the
   * handler's `progressed` hears of every write the peer takes. Transports
   * whose reads are pushed to them may ignore it.
   *
   * Never set it on both ends of a connection: two peers that each wait for
   * their write before reading can wait for each other forever.
   */
  readAfterWrite?: boolean;
  /**
   * Share the port with other listeners that set it too (`SO_REUSEPORT`): the
   * kernel spreads new connections over them. A transport that cannot honour
   * it (the OS or runtime would ignore it) rejects instead of listening.
   */
  reusePort?: boolean;
}

/**
 * Options of {@linkcode Transport.connect}.
 *
 * @example
 * ```ts
 * import type { ConnectOptions } from "@qtk/tcp-framework/transport";
 * const options: ConnectOptions = { tls: {}, signal: AbortSignal.timeout(5000) };
 * ```
 */
export interface ConnectOptions {
  /** Speak TLS instead of plain TCP. */
  tls?: ClientTlsOptions;
  /**
   * Gives up on the attempt (rejecting with the signal's reason) if aborted
   * before the connection is established, TLS handshake included.
   */
  signal?: AbortSignal;
}

/**
 * What a transport calls as a connection's bytes arrive and when it ends.
 *
 * @example
 * ```ts
 * import type { ConnectionHandler } from "@qtk/tcp-framework/transport";
 * const handler: ConnectionHandler = { received: (chunk) => console.log(chunk.length), ended: () => {} };
 * ```
 */
export interface ConnectionHandler {
  /** Bytes received, in order. The chunk is the handler's to keep. */
  received(chunk: Uint8Array): void;
  /** Called once, after the connection is fully closed; `error` if it failed. */
  ended(error?: unknown): void;
  /**
   * On a TLS listener: the handshake has succeeded (the client's certificate
   * verified, with `requestCert`), and the connection's `peerCertificate` is
   * set. Called once, before any `received`.
   */
  secured?(): void;
  /**
   * The peer took written bytes while reads were held back for them (see
   * {@linkcode ListenOptions.readAfterWrite}): it is alive, though unheard.
   */
  progressed?(): void;
  /**
   * Where the next bytes belong, if the handler has memory waiting for them
   * (a large payload's own buffer). A transport that reads into memory it is
   * given may read into this view and pass `received` the part it filled, so
   * the bytes are never copied; one that is handed its bytes ignores it.
   */
  readTarget?(): Uint8Array | undefined;
}

/**
 * One open byte connection.
 *
 * @example
 * ```ts
 * import type { TransportConnection } from "@qtk/tcp-framework/transport";
 * function hello(connection: TransportConnection) {
 *   return connection.write(new TextEncoder().encode("hello"));
 * }
 * ```
 */
export interface TransportConnection {
  /** The peer's address. */
  readonly remoteAddr: NetAddress;
  /**
   * With TLS, once the handshake has succeeded: the certificate the peer
   * presented (undefined if it sent none, as a client does unless the server
   * asks). Undefined without TLS.
   */
  readonly peerCertificate?: PeerCertificate;
  /**
   * Hands `bytes` to the runtime. Returns `undefined` if it took them all at
   * once, or a promise that settles once it has (rejecting if the connection
   * fails first). Only one write may be outstanding; `bytes` must not change
   * until it settles.
   */
  write(bytes: Uint8Array): Promise<void> | undefined;
  /**
   * Hands the runtime as much of `bytes` as it takes at once, and returns how
   * many bytes that was (0 if the connection is closed). Keeps no reference to
   * `bytes`, so the caller may reuse them at once and must write the rest
   * itself. Only while no write is outstanding. Offered by transports whose
   * runtime writes synchronously (Bun): a large payload then goes out without
   * first being copied.
   */
  writeNow?(bytes: Uint8Array): number;
  /** Closes the connection; the handler's `ended` follows. Idempotent. */
  close(): void;
}

/**
 * A listening socket.
 *
 * @example
 * ```ts
 * import type { TransportListener } from "@qtk/tcp-framework/transport";
 * const stop = (listener: TransportListener) => listener.close();
 * ```
 */
export interface TransportListener {
  /** The bound address (the real port when 0 was asked for). */
  readonly addr: NetAddress;
  /**
   * Stops accepting; resolves once no more connections will be accepted.
   * Connections already accepted stay open.
   */
  close(): Promise<void>;
  /**
   * On a TLS listener: the settings for the handshakes that start from now
   * on (a renewed certificate, another CA); connections already open, or in
   * their handshake, keep theirs.
   * @throws {TypeError} If the runtime cannot use them; the old ones stay.
   */
  setTls?(tls: ServerTlsOptions): void;
}

/**
 * Creates the handler for a connection as soon as it opens. On a TLS listener
 * that is before the handshake, whose failure ends the connection with an
 * error.
 *
 * @example
 * ```ts
 * import type { Accept } from "@qtk/tcp-framework/transport";
 * const accept: Accept = (connection) => ({ received: () => connection.close(), ended: () => {} });
 * ```
 */
export type Accept = (connection: TransportConnection) => ConnectionHandler;

/**
 * A runtime's TCP (and TLS) sockets behind one contract.
 *
 * @example
 * ```ts
 * import { runtimeTransport } from "@qtk/tcp-framework/transport";
 * const listener = await runtimeTransport().listen({ hostname: "127.0.0.1", port: 0 }, (connection) => ({
 *   received: (chunk) => connection.write(chunk),
 *   ended: () => {},
 * }));
 * await listener.close();
 * ```
 */
export interface Transport {
  /**
   * Starts listening.
   * @throws If the address cannot be bound (for example, the port is taken):
   *   the promise rejects.
   */
  listen(
    address: NetAddress,
    accept: Accept,
    options?: ListenOptions,
  ): Promise<TransportListener>;
  /**
   * Opens a connection; rejects if it cannot be established. With TLS it
   * resolves once the handshake has succeeded, and `accept` is called then.
   */
  connect(
    address: NetAddress,
    accept: Accept,
    options?: ConnectOptions,
  ): Promise<TransportConnection>;
}
