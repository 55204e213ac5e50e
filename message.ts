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
  /** The payload. A Node.js `Buffer` is a `Uint8Array`, so it works too. */
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
