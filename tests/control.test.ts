// Control messages on reserved PING uuids: the golden vectors of PROTOCOL.md,
// and what our Server answers to each.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { HOST, RawSocket, until } from "./_helpers.ts";
import { fromHex, toHex } from "./_hex.ts";
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameDecoder,
  type ProtocolVersion,
  Server,
  SIGN_PING,
} from "../mod.ts";
import { controlFrame, type ControlKind, controlKind } from "../_control.ts";

// Copied from PROTOCOL.md, not computed: a change of the wire shows here.
const VECTORS: Record<ProtocolVersion, Record<ControlKind, string>> = {
  3: {
    "hello":
      "017e71746b2d63746c7e68656c6c6f2d76317e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e0000000000000000",
    "hello-ack":
      "017e71746b2d63746c7e68656c6c6f2d61636b2d76317e7e7e7e7e7e7e7e7e7e7e7e7e7e7e0000000000000000",
    "going-away":
      "017e71746b2d63746c7e676f696e672d617761797e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e0000000000000000",
    "done-writing":
      "017e71746b2d63746c7e646f6e652d77726974696e677e7e7e7e7e7e7e7e7e7e7e7e7e7e7e0000000000000000",
  },
  2: {
    "hello":
      "017e71746b2d63746c7e68656c6c6f2d76317e7e7e7e7e7e7e7e7e7e7e7e7e7e7e00000000",
    "hello-ack":
      "017e71746b2d63746c7e68656c6c6f2d61636b2d76317e7e7e7e7e7e7e7e7e7e7e00000000",
    "going-away":
      "017e71746b2d63746c7e676f696e672d617761797e7e7e7e7e7e7e7e7e7e7e7e7e00000000",
    "done-writing":
      "017e71746b2d63746c7e646f6e652d77726974696e677e7e7e7e7e7e7e7e7e7e7e00000000",
  },
};

const KINDS = Object.keys(VECTORS[3]) as ControlKind[];

test("control messages: golden vectors for protocols 3 and 2, both ways", () => {
  for (const protocol of [3, 2] as const) {
    for (const kind of KINDS) {
      const hex = VECTORS[protocol][kind];
      assert.equal(
        toHex(encodeFrame(controlFrame(kind, protocol), protocol)),
        hex,
      );
      const frame = decodeFrame(fromHex(hex), { protocol });
      assert.equal(frame.sign, SIGN_PING);
      assert.equal(frame.payload.length, 0);
      assert.equal(controlKind(frame.uuid, protocol), kind);
      // Never one of the other protocol's, never a UUID generator's.
      assert.equal(controlKind(frame.uuid, protocol === 3 ? 2 : 3), undefined);
      assert.doesNotMatch(frame.uuid, /^[0-9a-fA-F-]*$/);
    }
  }
  for (let i = 0; i < 1000; i++) {
    const uuid = crypto.randomUUID();
    assert.equal(controlKind(uuid, 3), undefined);
    assert.equal(controlKind(uuid.replaceAll("-", ""), 2), undefined);
  }
});

async function pings(
  protocol: ProtocolVersion,
  sent: Frame[],
): Promise<Frame[]> {
  await using server = new Server({ host: HOST, port: 0, protocol });
  await server.start();
  const peer = await RawSocket.connect(server.port);
  try {
    for (const frame of sent) await peer.write(encodeFrame(frame, protocol));
    const uuidLength = protocol === 3 ? 36 : 32;
    const marker = {
      sign: SIGN_PING,
      uuid: "f".repeat(uuidLength),
      payload: new Uint8Array(0),
    } as Frame;
    await peer.write(encodeFrame(marker, protocol));
    const received: Frame[] = [];
    await until(
      () => {
        received.length = 0;
        const decoder = new FrameDecoder({ protocol });
        for (const chunk of peer.received) {
          decoder.push(chunk, (f) => received.push({ ...f }));
        }
        return received.some((f) => f.uuid === marker.uuid);
      },
      3000,
      "the marker's echo",
    );
    return received.slice(0, -1);
  } finally {
    await peer.close();
  }
}

test("server: answers hello with hello-ack, echoes unknown reserved uuids, stays silent on the rest", async () => {
  for (const protocol of [3, 2] as const) {
    const length = protocol === 3 ? 36 : 32;
    const unknown = "~qtk-ctl~hello-v9".padEnd(length, "~");
    const answers = await pings(protocol, [
      controlFrame("hello", protocol),
      controlFrame("done-writing", protocol),
      controlFrame("going-away", protocol),
      controlFrame("hello-ack", protocol),
      { sign: SIGN_PING, uuid: unknown, payload: new Uint8Array([1, 2]) },
    ]);
    assert.deepEqual(answers.map((f) => f.uuid), [
      controlFrame("hello-ack", protocol).uuid,
      unknown,
    ]);
    assert.deepEqual(Array.from(answers[1].payload), [1, 2]);
  }
});
