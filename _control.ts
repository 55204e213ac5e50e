// Control messages: PING frames whose uuid is one of a few reserved strings.
//
// A 3.x (and 2.x) server echoes every PING unchanged and a 3.x client ignores
// every PING, so these pass through old peers without effect, where a new sign
// byte would be a protocol error. The reserved uuids start with "~", which no
// UUID generator produces (they write hex digits and dashes), so no heartbeat
// or request can collide with them. PROTOCOL.md specifies each one, with its
// bytes.

import {
  type Frame,
  type ProtocolVersion,
  SIGN_PING,
  uuidLength,
} from "./codec.ts";

/** The control messages, by name. */
export type ControlKind =
  /** Client → server: "do you speak control messages (version 1)?" */
  | "hello"
  /** Server → client: the answer of a server that does (a 3.x one echoes `hello`). */
  | "hello-ack"
  /** Server → client: this connection is draining; write nothing more on it. */
  | "going-away"
  /** Client → server: nothing more will be written on this connection. */
  | "done-writing";

const NAMES: Record<ControlKind, string> = {
  "hello": "hello-v1",
  "hello-ack": "hello-ack-v1",
  "going-away": "going-away",
  "done-writing": "done-writing",
};

/** Every reserved uuid begins with this. */
export const CONTROL_PREFIX = "~qtk-ctl~";

function reserved(name: string, length: number): string {
  return (CONTROL_PREFIX + name).padEnd(length, "~");
}

const BY_UUID: Array<Map<string, ControlKind>> = [];
const UUIDS: Array<Record<ControlKind, string>> = [];
for (const protocol of [2, 3] as const) {
  const length = uuidLength(protocol);
  const byUuid = new Map<string, ControlKind>();
  const uuids = {} as Record<ControlKind, string>;
  for (const [kind, name] of Object.entries(NAMES)) {
    const uuid = reserved(name, length);
    byUuid.set(uuid, kind as ControlKind);
    uuids[kind as ControlKind] = uuid;
  }
  BY_UUID[protocol] = byUuid;
  UUIDS[protocol] = uuids;
}

/** The reserved uuid of a control message in a protocol. */
export function controlUuid(
  kind: ControlKind,
  protocol: ProtocolVersion,
): string {
  return UUIDS[protocol][kind];
}

/**
 * Which control message a PING's uuid is, if any. Unknown reserved uuids
 * (a later version's) are not control messages here: a server echoes them,
 * as a 3.x server would, which tells their sender they were not understood.
 */
export function controlKind(
  uuid: string,
  protocol: ProtocolVersion,
): ControlKind | undefined {
  // One character compared for the PINGs of every heartbeat.
  if (uuid.charCodeAt(0) !== 0x7e) return undefined;
  return BY_UUID[protocol].get(uuid);
}

const EMPTY = new Uint8Array(0);

/** The PING frame of a control message (its payload is empty). */
export function controlFrame(
  kind: ControlKind,
  protocol: ProtocolVersion,
): Frame {
  return { sign: SIGN_PING, uuid: UUIDS[protocol][kind], payload: EMPTY };
}
