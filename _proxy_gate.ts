// A server connection's first stage when `proxyProtocol` is on: its bytes go
// to a PROXY header decoder until the header is whole, then (with whatever
// followed the header in the same chunk) to the framed connection, which never
// sees a header byte. The header must be whole within a deadline.

import { type ProxyHeader, ProxyHeaderDecoder } from "./proxy_protocol.ts";
import { ProxyProtocolError } from "./errors.ts";
import { checkFiniteSeconds } from "./_checks.ts";
import { type Network, parseNetwork } from "./_ip.ts";
import { quote } from "./_quote.ts";
import { type OptionTable, parseOptions } from "./_option_table.ts";
import type { ConnectionHandler } from "./transport/transport.ts";

/**
 * The `proxyProtocol` option in full.
 *
 * @example
 * ```ts
 * import type { ProxyProtocolOptions } from "@qtk/tcp-framework";
 * const options: ProxyProtocolOptions = { trusted: ["10.0.0.0/8", "::1"], timeout: 3 };
 * ```
 */
export interface ProxyProtocolOptions {
  /**
   * Addresses ("10.1.2.3", "::1") and networks ("10.0.0.0/8", "fd00::/8") of
   * the proxies allowed to connect; a connection from anywhere else is closed
   * with an `exception` before a byte of it is read. IPv4 entries also match
   * IPv4-mapped IPv6 peers ("::ffff:10.1.2.3").
   * @default {any peer}
   */
  trusted?: string[];
  /**
   * Seconds a connection has to deliver its whole PROXY header (the
   * specification asks for at least 3, to cover a TCP retransmit).
   * @default {5}
   */
  timeout?: number;
}

/**
 * Seconds a connection has to deliver its whole PROXY header. The
 * specification asks for at least 3, to cover a TCP retransmit.
 */
export const DEFAULT_PROXY_HEADER_TIMEOUT = 5;

/** `proxyProtocol`, checked: who may send a header and how long it may take. */
export interface ProxyPolicy {
  /** undefined: any peer. */
  trusted: Network[] | undefined;
  timeoutMs: number;
}

/** An array of addresses and networks ("10.0.0.0/8"), parsed. */
function checkNetworks(name: string, value: unknown): Network[] {
  if (!Array.isArray(value)) {
    throw new TypeError(
      `Invalid ${name} ${quote(value)}: expected an array of addresses`,
    );
  }
  return value.map((entry) => {
    const network = typeof entry === "string" ? parseNetwork(entry) : undefined;
    if (network === undefined) {
      throw new TypeError(
        `Invalid ${name} entry ${
          quote(entry)
        }: expected an IP address or a network such as "10.0.0.0/8"`,
      );
    }
    return network;
  });
}

/** The table of the `proxyProtocol` option's object form. */
export const PROXY_PROTOCOL_TABLE = {
  trusted: {
    check: checkNetworks,
    doc: "addresses or networks allowed to send the header",
  },
  timeout: {
    check: checkFiniteSeconds,
    default: DEFAULT_PROXY_HEADER_TIMEOUT,
    unit: "s",
    doc: "time a connection has to deliver its whole PROXY header",
  },
} as const satisfies OptionTable<ProxyProtocolOptions>;

/** Checks the `proxyProtocol` option; undefined when it is off. */
export function parseProxyOption(value: unknown): ProxyPolicy | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) {
    return {
      trusted: undefined,
      timeoutMs: DEFAULT_PROXY_HEADER_TIMEOUT * 1000,
    };
  }
  if (value === null || typeof value !== "object") {
    throw new TypeError(
      `Invalid proxyProtocol ${
        quote(value)
      }: expected a boolean or { trusted, timeout }`,
    );
  }
  const { trusted, timeout } = parseOptions(
    PROXY_PROTOCOL_TABLE,
    value,
    "proxyProtocol option",
    "proxyProtocol.",
  );
  return { trusted, timeoutMs: timeout * 1000 };
}

/** What the gate tells its server. */
export interface ProxyGateEvents {
  /** The header is whole; the connection's frames follow. */
  header(header: ProxyHeader): void;
  /** The header is bad, late or cut short; the gate has not closed anything. */
  failed(error: ProxyProtocolError): void;
}

export class ProxyGate implements ConnectionHandler {
  readonly #next: ConnectionHandler;
  readonly #events: ProxyGateEvents;
  #decoder: ProxyHeaderDecoder | undefined = new ProxyHeaderDecoder();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #failed = false;

  constructor(
    next: ConnectionHandler,
    timeoutMs: number,
    events: ProxyGateEvents,
  ) {
    this.#next = next;
    this.#events = events;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const held = this.#decoder?.pendingBytes ?? 0;
      this.#fail(
        new ProxyProtocolError(
          `PROXY header not received whole within ${timeoutMs} ms (${held} bytes of it arrived)`,
          "timeout",
          held,
        ),
      );
    }, timeoutMs);
  }

  received(chunk: Uint8Array): void {
    const decoder = this.#decoder;
    if (decoder === undefined) {
      if (!this.#failed) this.#next.received(chunk);
      return;
    }
    let result;
    try {
      result = decoder.push(chunk);
    } catch (error) {
      this.#fail(error as ProxyProtocolError);
      return;
    }
    if (result === undefined) return;
    this.#decoder = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#events.header(result.header);
    if (result.rest.length > 0) this.#next.received(result.rest);
  }

  readTarget(): Uint8Array | undefined {
    return this.#decoder === undefined && !this.#failed
      ? this.#next.readTarget?.()
      : undefined;
  }

  progressed(): void {
    this.#next.progressed?.();
  }

  ended(error?: unknown): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const decoder = this.#decoder;
    if (decoder !== undefined && !this.#failed && error === undefined) {
      try {
        decoder.end();
      } catch (truncated) {
        this.#fail(truncated as ProxyProtocolError);
      }
    }
    this.#decoder = undefined;
    this.#next.ended(error);
  }

  #fail(error: ProxyProtocolError): void {
    if (this.#failed) return;
    this.#failed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#decoder = undefined;
    this.#events.failed(error);
  }
}
