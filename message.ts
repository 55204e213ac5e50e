// The {uuid, data} message of the public API (exported from the package root,
// `mod.ts`), and the checks that turn a caller's message into a frame (used by
// Server and Client only, not re-exported).

import {
  assertUuid,
  type Frame,
  type ProtocolVersion,
  SIGN_DATA,
  uuidLength,
} from "./codec.ts";
import { quote } from "./_quote.ts";
import { checkBoolean } from "./_checks.ts";
import { type OptionTable, refuseUnknownKeys } from "./_option_table.ts";

/**
 * A request or response: a uuid and an opaque payload.
 *
 * @example
 * ```ts
 * import type { Message } from "@qtk/tcp-framework";
 * const message: Message = { uuid: crypto.randomUUID(), data: new TextEncoder().encode("echo") };
 * ```
 */
export interface Message {
  /** 36 ASCII characters (32 under protocol 2), canonically a UUID with dashes. */
  uuid: string;
  /**
   * The payload. Any `Uint8Array` may be sent (a Node.js `Buffer` is one).
   * Received payloads are `Buffer`s on Node.js (so 3.x code's
   * `data.toString("utf8")` works) and plain `Uint8Array`s on Deno and Bun
   * (decode them with `TextDecoder`). Either may be a view of a larger read
   * buffer: copy with `new Uint8Array(data)` to keep one apart from it
   * (`Buffer`'s `slice()` does not copy).
   */
  data: Uint8Array;
}

/** Checks a caller's message and makes it a DATA frame, or throws TypeError. */
export function toDataFrame(
  message: Message,
  protocol: ProtocolVersion,
): Frame {
  if (message === null || typeof message !== "object") {
    throw new TypeError(
      `Invalid message ${quote(message)}: expected { uuid, data }`,
    );
  }
  const { uuid, data } = message;
  assertUuid(uuid, protocol);
  if (!(data instanceof Uint8Array)) {
    throw new TypeError(`Invalid data ${quote(data)}: expected a Uint8Array`);
  }
  return { sign: SIGN_DATA, uuid, payload: data };
}

/**
 * Whether `message` has the shape `send` needs: an object whose uuid is a
 * string of the protocol's uuid length and whose data is a `Uint8Array`.
 * Whether the uuid is ASCII is checked as it is encoded (see
 * `FramedConnection.sendData`); anything else goes through
 * {@linkcode toDataFrame} for its error.
 */
export function hasMessageShape(
  message: Message,
  protocol: ProtocolVersion,
): boolean {
  if (message === null || typeof message !== "object") return false;
  const uuid = message.uuid;
  return typeof uuid === "string" &&
    uuid.length === uuidLength(protocol) &&
    message.data instanceof Uint8Array;
}

/**
 * Options of `send` (Client, Server, ServerSocket).
 *
 * @example
 * ```ts
 * import type { SendOptions } from "@qtk/tcp-framework";
 * const options: SendOptions = { transfer: true };
 * ```
 */
export interface SendOptions {
  /**
   * Hand the payload's memory to the framework instead of having it copied:
   * the `ArrayBuffer` behind `data` is detached with
   * `ArrayBuffer.prototype.transfer()`, as `postMessage` does with a transfer
   * list, so every view of it (the caller's `data` included) reads as empty
   * from then on, never as changed bytes. A large payload is then written
   * straight from that memory. Only a `data` that spans its whole buffer is
   * taken: a view of part of a larger one (a received payload, which shares
   * its read buffer; a pooled Node.js `Buffer`) is copied, as is any payload
   * where the runtime has no `transfer()` (Node.js 20) or the buffer cannot be
   * detached (a `SharedArrayBuffer`); the caller's buffer is then left as it
   * is. On Bun, whose JavaScriptCore `transfer()` itself copies a large
   * buffer, nothing is taken either: the framework copies, as without it.
   * @default {false}
   */
  transfer?: boolean;
}

/** The table of {@linkcode SendOptions}, read on every send. */
export const SEND_TABLE = {
  transfer: {
    check: checkBoolean,
    default: false,
    doc: "hand the payload's memory over instead of having it copied",
  },
} as const satisfies OptionTable<SendOptions>;

/** Whether `options` asks for transfer; a TypeError if it is malformed. */
export function wantsTransfer(options: SendOptions | undefined): boolean {
  if (options === undefined) return false;
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `Invalid options ${quote(options)}: expected { transfer?: boolean }`,
    );
  }
  refuseUnknownKeys(SEND_TABLE, options, "send option");
  const transfer = options.transfer;
  return transfer !== undefined &&
    SEND_TABLE.transfer.check("transfer", transfer);
}

/**
 * A new random uuid in the protocol's form: a UUID with dashes (36
 * characters) for protocol 3, without them (32) for protocol 2.
 */
export function randomUuid(protocol: ProtocolVersion): string {
  const uuid = crypto.randomUUID();
  return protocol === 3 ? uuid : uuid.replaceAll("-", "");
}
