/**
 * The PROXY protocol, receiving side: the header a load balancer (HAProxy,
 * nginx `stream`, Envoy, a cloud NLB) puts before a connection's first byte
 * to say whom it relays. Versions 1 (one text line) and 2 (binary), as
 * HAProxy's specification `proxy-protocol.txt` defines them, decoded strictly
 * and incrementally: a byte that cannot start or continue a valid header is
 * refused as soon as it arrives, and a header never holds more than
 * {@linkcode PROXY_V1_MAX_LENGTH} (v1) or {@linkcode PROXY_V2_MAX_LENGTH} (v2)
 * bytes.
 *
 * A server decodes it for you with `new Server({ proxyProtocol: true })`; this
 * module is for tests and other servers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeProxyHeader } from "@qtk/tcp-framework/proxy-protocol";
 * const line = new TextEncoder().encode("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nrest");
 * const { header, rest } = decodeProxyHeader(line);
 * assert.deepEqual(header.source, { hostname: "192.168.0.1", port: 56324 });
 * assert.equal(new TextDecoder().decode(rest), "rest");
 * ```
 *
 * @module
 */

import { ProxyProtocolError, type ProxyProtocolErrorReason } from "./errors.ts";
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "./_ip.ts";

/**
 * Longest v1 header, CRLF included: "PROXY UNKNOWN" with two full IPv6
 * addresses and ports is 107 bytes, and the specification has receivers give
 * up on a line without CRLF in that many.
 *
 * @example
 * ```ts
 * import { PROXY_V1_MAX_LENGTH } from "@qtk/tcp-framework/proxy-protocol";
 * console.log(PROXY_V1_MAX_LENGTH); // 107
 * ```
 */
export const PROXY_V1_MAX_LENGTH = 107;

/**
 * Longest v2 header accepted, in bytes (16 fixed, then addresses and TLVs).
 * The format allows 16 + 65,535; this keeps what one slow connection may hold
 * small while staying far above any real header (addresses take at most 216
 * bytes, HAProxy's TLVs a few hundred).
 *
 * @example
 * ```ts
 * import { PROXY_V2_MAX_LENGTH } from "@qtk/tcp-framework/proxy-protocol";
 * console.log(PROXY_V2_MAX_LENGTH); // 4096
 * ```
 */
export const PROXY_V2_MAX_LENGTH = 4096;

/**
 * The 12 bytes every v2 header starts with.
 *
 * @example
 * ```ts
 * import { PROXY_V2_SIGNATURE } from "@qtk/tcp-framework/proxy-protocol";
 * console.log(PROXY_V2_SIGNATURE.length); // 12
 * ```
 */
export const PROXY_V2_SIGNATURE: Uint8Array = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);

/**
 * An address in a PROXY header. For the `UNIX` family, `hostname` is the
 * socket's path (empty for an unnamed socket) and `port` is 0.
 *
 * @example
 * ```ts
 * import type { ProxyAddress } from "@qtk/tcp-framework/proxy-protocol";
 * const client: ProxyAddress = { hostname: "203.0.113.7", port: 51000 };
 * ```
 */
export interface ProxyAddress {
  /** IP address (IPv6 in RFC 5952 form), or a UNIX socket's path. */
  hostname: string;
  /** TCP port; 0 for UNIX sockets. */
  port: number;
}

/**
 * A decoded PROXY header.
 *
 * `source` and `destination` are set only when the header says whom it
 * relays: command `PROXY` with family `TCP4`, `TCP6` or `UNIX`. With command
 * `LOCAL` (the proxy's own connection, a health check) or family `UNKNOWN`
 * (v1 `UNKNOWN`, v2 `UNSPEC`, or a v2 datagram family, which a TCP stream can
 * never come from), the connection's own addresses are the ones to use.
 *
 * @example
 * ```ts
 * import type { ProxyHeader } from "@qtk/tcp-framework/proxy-protocol";
 * function client(header: ProxyHeader, peer: { hostname: string; port: number }) {
 *   return header.source ?? peer;
 * }
 * ```
 */
export interface ProxyHeader {
  /** 1 (text line) or 2 (binary). */
  version: 1 | 2;
  /** `PROXY`: relayed for `source`; `LOCAL`: the proxy's own connection. */
  command: "PROXY" | "LOCAL";
  /** The relayed connection's family. */
  family: "TCP4" | "TCP6" | "UNIX" | "UNKNOWN";
  /** The original client's address. */
  source?: ProxyAddress;
  /** The address the original client connected to (on the proxy). */
  destination?: ProxyAddress;
  /** Bytes the header took on the wire. */
  length: number;
}

/**
 * What {@linkcode ProxyHeaderDecoder.push} returns once a header is whole.
 *
 * @example
 * ```ts
 * import type { ProxyHeaderResult } from "@qtk/tcp-framework/proxy-protocol";
 * const bytesAfter = (result: ProxyHeaderResult) => result.rest.length;
 * ```
 */
export interface ProxyHeaderResult {
  /** The header. */
  header: ProxyHeader;
  /** The bytes of the pushed chunk after the header: the stream proper. */
  rest: Uint8Array;
}

const V1_PREFIX = new TextEncoder().encode("PROXY ");
const CR = 0x0d;
const LF = 0x0a;
const V2_FIXED = 16;

/**
 * Decodes one PROXY header, v1 or v2, from bytes pushed as they arrive.
 * Strict: the first byte that cannot belong to a valid header throws a
 * {@linkcode ProxyProtocolError} (and so does every later push), a v1 line
 * must end in CRLF within 107 bytes, a v2 header's lengths must fit its family
 * and TLVs. It holds at most the header's bytes; whatever follows is returned
 * untouched.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProxyHeaderDecoder } from "@qtk/tcp-framework/proxy-protocol";
 * const decoder = new ProxyHeaderDecoder();
 * const bytes = new TextEncoder().encode("PROXY TCP6 2001:db8::1 ::1 4000 443\r\n");
 * assert.equal(decoder.push(bytes.subarray(0, 10)), undefined);
 * const result = decoder.push(bytes.subarray(10));
 * assert.equal(result?.header.source?.hostname, "2001:db8::1");
 * ```
 */
export class ProxyHeaderDecoder {
  /** The header's bytes so far (v1: up to 107; v2: 16, then all of it). */
  #bytes = new Uint8Array(PROXY_V1_MAX_LENGTH);
  #length = 0;
  /** Total length of a v2 header once its fixed part is in; 0 before. */
  #v2Total = 0;
  #result: ProxyHeaderResult | undefined;
  #error: ProxyProtocolError | undefined;

  /** Bytes of an incomplete header held so far. */
  get pendingBytes(): number {
    return this.#result === undefined ? this.#length : 0;
  }

  /** True once a header has been decoded. */
  get done(): boolean {
    return this.#result !== undefined;
  }

  /**
   * Adds received bytes.
   *
   * @param chunk The next bytes of the connection.
   * @returns The header and the bytes after it, once the header is whole;
   *   `undefined` while more bytes are needed.
   * @throws {ProxyProtocolError} If the bytes are not a valid header.
   * @throws {Error} If a header was already decoded.
   */
  push(chunk: Uint8Array): ProxyHeaderResult | undefined {
    if (this.#error) throw this.#error;
    if (this.#result) throw new Error("The PROXY header is already decoded");
    try {
      return this.#push(chunk);
    } catch (error) {
      if (error instanceof ProxyProtocolError) this.#error = error;
      throw error;
    }
  }

  /**
   * Declares the end of the stream.
   *
   * @throws {ProxyProtocolError} With reason `truncated` if part of a header
   *   arrived; nothing is thrown if no byte did, or a header was decoded.
   */
  end(): void {
    if (this.#error) throw this.#error;
    if (this.#result || this.#length === 0) return;
    throw this.#fail(
      "truncated",
      `PROXY header truncated: the connection ended after ${this.#length} bytes of it`,
      this.#length,
    );
  }

  #fail(
    reason: ProxyProtocolErrorReason,
    message: string,
    offset: number,
  ): ProxyProtocolError {
    return this.#error = new ProxyProtocolError(message, reason, offset);
  }

  #push(chunk: Uint8Array): ProxyHeaderResult | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.#v2Total > 0) {
        // The rest of a v2 header, copied in one go.
        const take = Math.min(this.#v2Total - this.#length, chunk.length - i);
        this.#bytes.set(chunk.subarray(i, i + take), this.#length);
        this.#length += take;
        i += take;
        if (this.#length === this.#v2Total) {
          return this.#finish(decodeV2(this.#bytes, this.#v2Total), chunk, i);
        }
        continue;
      }
      const byte = chunk[i++];
      const at = this.#length;
      this.#bytes[this.#length++] = byte;
      const first = this.#bytes[0];
      if (first === V1_PREFIX[0]) {
        const header = this.#v1Byte(byte, at);
        if (header) return this.#finish(header, chunk, i);
      } else if (first === PROXY_V2_SIGNATURE[0]) {
        this.#v2Byte(byte, at);
        if (this.#v2Total === V2_FIXED) {
          return this.#finish(decodeV2(this.#bytes, V2_FIXED), chunk, i);
        }
      } else {
        throw this.#fail(
          "signature",
          `Invalid PROXY header: expected "PROXY " (v1) or the v2 signature, got byte 0x${
            hex(byte)
          } first`,
          0,
        );
      }
    }
    return undefined;
  }

  #finish(
    header: ProxyHeader,
    chunk: Uint8Array,
    at: number,
  ): ProxyHeaderResult {
    this.#bytes = new Uint8Array(0); // nothing is held once decoded
    return this.#result = { header, rest: chunk.subarray(at) };
  }

  /** One more byte of a v1 line, at offset `at`; the header once whole. */
  #v1Byte(byte: number, at: number): ProxyHeader | undefined {
    if (at < V1_PREFIX.length) {
      if (byte !== V1_PREFIX[at]) {
        throw this.#fail(
          "signature",
          `Invalid PROXY v1 header: byte ${at} is 0x${
            hex(byte)
          }, expected "PROXY "`,
          at,
        );
      }
      return undefined;
    }
    const previous = this.#bytes[at - 1];
    if (byte === LF) {
      if (previous !== CR) {
        throw this.#fail(
          "syntax",
          "Invalid PROXY v1 header: a line feed without a carriage return before it",
          at,
        );
      }
      const line = String.fromCharCode(...this.#bytes.subarray(0, at - 1));
      return decodeV1(line, at + 1, (reason, message) => {
        throw this.#fail(reason, `Invalid PROXY v1 header: ${message}`, 0);
      });
    }
    if (previous === CR) {
      throw this.#fail(
        "syntax",
        "Invalid PROXY v1 header: a carriage return not followed by a line feed",
        at,
      );
    }
    if (byte !== CR && (byte < 0x20 || byte > 0x7e)) {
      throw this.#fail(
        "syntax",
        `Invalid PROXY v1 header: byte 0x${
          hex(byte)
        } at ${at} is not printable US-ASCII`,
        at,
      );
    }
    // The CRLF must end by byte 107: past byte 106 only its LF may come.
    if (at >= PROXY_V1_MAX_LENGTH - 1) {
      throw this.#fail(
        "tooLong",
        `Invalid PROXY v1 header: no CRLF within ${PROXY_V1_MAX_LENGTH} bytes`,
        at,
      );
    }
    return undefined;
  }

  /** One more byte of a v2 header's fixed 16, at offset `at`. */
  #v2Byte(byte: number, at: number): void {
    if (at < PROXY_V2_SIGNATURE.length) {
      if (byte !== PROXY_V2_SIGNATURE[at]) {
        throw this.#fail(
          "signature",
          `Invalid PROXY v2 header: signature byte ${at} is 0x${
            hex(byte)
          }, expected 0x${hex(PROXY_V2_SIGNATURE[at])}`,
          at,
        );
      }
    } else if (at === 12) {
      if (byte >> 4 !== 2) {
        throw this.#fail(
          "version",
          `Invalid PROXY v2 header: version ${byte >> 4}, expected 2`,
          at,
        );
      }
      if ((byte & 0xf) > 1) {
        throw this.#fail(
          "command",
          `Invalid PROXY v2 header: command 0x${
            (byte & 0xf).toString(16)
          }, expected 0 (LOCAL) or 1 (PROXY)`,
          at,
        );
      }
    } else if (at === 13) {
      // LOCAL ignores the family; PROXY must name one of the spec's pairs.
      if ((this.#bytes[12] & 0xf) === 1 && !(byte in V2_ADDRESS_LENGTH)) {
        throw this.#fail(
          "family",
          `Invalid PROXY v2 header: family and protocol byte 0x${
            hex(byte)
          } is none of 0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32`,
          at,
        );
      }
    } else if (at === 15) {
      const length = (this.#bytes[14] << 8) | byte;
      const total = V2_FIXED + length;
      if (total > PROXY_V2_MAX_LENGTH) {
        throw this.#fail(
          "tooLong",
          `Invalid PROXY v2 header: ${total} bytes long, over the limit of ${PROXY_V2_MAX_LENGTH}`,
          14,
        );
      }
      const needed = (this.#bytes[12] & 0xf) === 1
        ? V2_ADDRESS_LENGTH[this.#bytes[13]]
        : 0;
      if (length < needed) {
        throw this.#fail(
          "length",
          `Invalid PROXY v2 header: address length ${length}, family 0x${
            hex(this.#bytes[13])
          } needs at least ${needed}`,
          14,
        );
      }
      if (total > this.#bytes.length) {
        const bytes = new Uint8Array(total);
        bytes.set(this.#bytes.subarray(0, V2_FIXED));
        this.#bytes = bytes;
      }
      this.#v2Total = total;
    }
  }
}

/**
 * Decodes a PROXY header at the start of `bytes`, all of which have arrived.
 *
 * @param bytes The connection's first bytes: a whole header, maybe more.
 * @returns The header and the bytes after it.
 * @throws {ProxyProtocolError} If the bytes do not start with a whole, valid
 *   header (reason `truncated` if they are its valid beginning).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeProxyHeader, ProxyProtocolError } from "@qtk/tcp-framework/proxy-protocol";
 * assert.throws(
 *   () => decodeProxyHeader(new TextEncoder().encode("GET / HTTP/1.1\r\n")),
 *   ProxyProtocolError,
 * );
 * ```
 */
export function decodeProxyHeader(bytes: Uint8Array): ProxyHeaderResult {
  const decoder = new ProxyHeaderDecoder();
  const result = decoder.push(bytes);
  if (result) return result;
  decoder.end();
  throw new ProxyProtocolError(
    "PROXY header truncated: no bytes",
    "truncated",
    0,
  );
}

export { ProxyProtocolError, type ProxyProtocolErrorReason };

/** v2 family-and-protocol bytes a PROXY command may carry: address bytes. */
const V2_ADDRESS_LENGTH: Record<number, number> = {
  0x00: 0,
  0x11: 12,
  0x12: 12,
  0x21: 36,
  0x22: 36,
  0x31: 216,
  0x32: 216,
};

const UNIX_PATH = 108;

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/** A v1 port: decimal 0-65535 without leading zeros. */
function v1Port(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** Decodes a whole v1 line (without its CRLF) of `length` bytes on the wire. */
function decodeV1(
  line: string,
  length: number,
  fail: (reason: ProxyProtocolErrorReason, message: string) => never,
): ProxyHeader {
  const fields = line.split(" ");
  const family = fields[1];
  if (family === "UNKNOWN") {
    // The sender may add anything up to the CRLF; the receiver ignores it.
    return { version: 1, command: "PROXY", family: "UNKNOWN", length };
  }
  if (family !== "TCP4" && family !== "TCP6") {
    fail(
      "family",
      `protocol ${JSON.stringify(family)}, expected TCP4, TCP6 or UNKNOWN`,
    );
  }
  if (fields.length !== 6 || fields.includes("")) {
    fail(
      "syntax",
      `expected "PROXY ${family} <source> <destination> <source port> <destination port>", got ${fields.length} fields separated by single spaces`,
    );
  }
  const parse = family === "TCP4" ? parseIPv4 : parseIPv6;
  const format = family === "TCP4" ? formatIPv4 : formatIPv6;
  const addresses = [fields[2], fields[3]].map((text) => {
    const bytes = parse(text);
    if (bytes === undefined) {
      fail(
        "address",
        `${JSON.stringify(text)} is not an ${
          family === "TCP4" ? "IPv4" : "IPv6"
        } address`,
      );
    }
    return format(bytes);
  });
  const ports = [fields[4], fields[5]].map((text) => {
    const port = v1Port(text);
    if (port === undefined) {
      fail(
        "port",
        `port ${
          JSON.stringify(text)
        } is not a decimal 0-65535 without leading zeros`,
      );
    }
    return port;
  });
  return {
    version: 1,
    command: "PROXY",
    family,
    source: { hostname: addresses[0], port: ports[0] },
    destination: { hostname: addresses[1], port: ports[1] },
    length,
  };
}

/** Decodes a whole v2 header of `total` bytes, its fixed part checked. */
function decodeV2(bytes: Uint8Array, total: number): ProxyHeader {
  const command = (bytes[12] & 0xf) === 1 ? "PROXY" : "LOCAL";
  if (command === "LOCAL") {
    // The whole block is skipped, family included, as the spec requires.
    return { version: 2, command, family: "UNKNOWN", length: total };
  }
  const familyByte = bytes[13];
  const addressLength = V2_ADDRESS_LENGTH[familyByte];
  checkTlvs(bytes, V2_FIXED + addressLength, total);
  const view = new DataView(bytes.buffer, bytes.byteOffset, total);
  const at = V2_FIXED;
  switch (familyByte) {
    case 0x11:
      return {
        version: 2,
        command,
        family: "TCP4",
        source: {
          hostname: formatIPv4(bytes.subarray(at, at + 4)),
          port: view.getUint16(at + 8),
        },
        destination: {
          hostname: formatIPv4(bytes.subarray(at + 4, at + 8)),
          port: view.getUint16(at + 10),
        },
        length: total,
      };
    case 0x21:
      return {
        version: 2,
        command,
        family: "TCP6",
        source: {
          hostname: formatIPv6(bytes.subarray(at, at + 16)),
          port: view.getUint16(at + 32),
        },
        destination: {
          hostname: formatIPv6(bytes.subarray(at + 16, at + 32)),
          port: view.getUint16(at + 34),
        },
        length: total,
      };
    case 0x31:
      return {
        version: 2,
        command,
        family: "UNIX",
        source: { hostname: unixPath(bytes, at), port: 0 },
        destination: { hostname: unixPath(bytes, at + UNIX_PATH), port: 0 },
        length: total,
      };
    default:
      // UNSPEC, or a datagram family a TCP stream cannot come from: the
      // specification has receivers fall back to the connection's addresses.
      return { version: 2, command, family: "UNKNOWN", length: total };
  }
}

/** TLVs from `from` must exactly fill the header up to `total`. */
function checkTlvs(bytes: Uint8Array, from: number, total: number): void {
  let at = from;
  while (at < total) {
    if (total - at < 3) {
      throw new ProxyProtocolError(
        `Invalid PROXY v2 header: ${
          total - at
        } stray bytes after the last TLV at ${at}`,
        "length",
        at,
      );
    }
    const length = (bytes[at + 1] << 8) | bytes[at + 2];
    if (at + 3 + length > total) {
      throw new ProxyProtocolError(
        `Invalid PROXY v2 header: TLV of type 0x${
          hex(bytes[at])
        } at ${at} claims ${length} bytes, past the header's end`,
        "length",
        at,
      );
    }
    at += 3 + length;
  }
}

/** A NUL-terminated path in a 108-byte field (UTF-8 on the wire). */
function unixPath(bytes: Uint8Array, at: number): string {
  const field = bytes.subarray(at, at + UNIX_PATH);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}
