// In-process A/B of the encode, send, decode and echo paths between two checkouts of this
// repository (for example `git worktree add /tmp/before main`):
//
//   deno run -A bench/ab_inprocess.ts /tmp/before .     (or: bun bench/ab_inprocess.ts …)
//
// Both versions' FramedConnection and encodeFrameInto run in one process, in
// short batches that alternate, so load from other processes hits both alike;
// separate `deno bench` runs on a shared machine differ by more than the
// changes measured. Prints the median time per frame of each side and their
// ratio. Run it with the sides swapped as well: whichever runs second in a
// pair has a slight edge.

import { runtimeName, scriptArgs } from "./_runtime.ts";
import type { Frame } from "../codec.ts";

interface Side {
  codec: typeof import("../codec.ts");
  connection: typeof import("../_connection.ts");
}

const [dirA, dirB] = scriptArgs();
if (dirA === undefined || dirB === undefined) {
  throw new TypeError("Usage: ab_inprocess.ts <checkout A> <checkout B>");
}
const cwd = (globalThis as { process?: { cwd(): string } }).process?.cwd() ??
  Deno.cwd();
const absolute = (dir: string) =>
  new URL(dir.replace(/\/?$/, "/"), `file://${cwd}/`).href;
const sides: Side[] = await Promise.all([dirA, dirB].map(async (dir) => ({
  codec: await import(new URL("codec.ts", absolute(dir)).href),
  connection: await import(new URL("_connection.ts", absolute(dir)).href),
})));

const uuid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
const BATCH = 64;
let sink = 0;
const transport = {
  remoteAddr: { hostname: "127.0.0.1", port: 1 },
  write(bytes: Uint8Array): undefined {
    sink += bytes.length;
  },
  close() {},
};

interface Work {
  name: string;
  frames: number;
  run(): Promise<void> | void;
}

function workloads(side: Side): Work[] {
  const works: Work[] = [];
  for (const size of [64, 16 * 1024]) {
    const payload = new Uint8Array(size).map((_, i) => i);
    const frame = { sign: 0x11, uuid, payload } as const;
    const target = new Uint8Array(45 + size);
    works.push({
      name: `encodeFrameInto ${size} B`,
      frames: 1,
      run() {
        sink += side.codec.encodeFrameInto(frame, target, 0, 3);
      },
    });
    const connection: InstanceType<Side["connection"]["FramedConnection"]> =
      new side.connection.FramedConnection(transport, {
        protocol: 3,
        maxFrameSize: 1 << 26,
        maxBufferedBytes: 1 << 26,
      }, {
        frame: (received) => sendFrame(received),
        protocolError: (error) => {
          throw error;
        },
        closed() {},
      });
    // Checkouts before the write path had one way in had two: send(frame)
    // and sendData(uuid, payload).
    const legacy = connection as unknown as {
      send(frame: Frame): void;
      sendData(uuid: string, payload: Uint8Array): void;
    };
    const oneWayIn = !("sendData" in connection);
    const sendFrame = (f: Frame) =>
      oneWayIn ? connection.send(f.sign, f.uuid, f.payload) : legacy.send(f);
    const sendData = (data: Uint8Array) =>
      oneWayIn
        ? connection.send(0x11, uuid, data)
        : legacy.sendData(uuid, data);
    const chunk = new Uint8Array(BATCH * (45 + size));
    for (let i = 0; i < BATCH; i++) {
      chunk.set(side.codec.encodeFrame(frame), i * (45 + size));
    }
    works.push({
      name: `send ${BATCH} x ${size} B`,
      frames: BATCH,
      async run() {
        for (let i = 0; i < BATCH; i++) sendData(payload);
        await connection.drained();
      },
    });
    const decoder = new side.codec.FrameDecoder();
    works.push({
      name: `decode ${BATCH} x ${size} B`,
      frames: BATCH,
      run() {
        decoder.push(chunk, (frame) => {
          sink += frame.payload.length;
        });
      },
    });
    works.push({
      name: `echo ${BATCH} x ${size} B`,
      frames: BATCH,
      async run() {
        connection.received(chunk);
        await connection.drained();
      },
    });
  }
  return works;
}

const works = sides.map(workloads);
const ROUNDS = 41;
const WARMUP = 2;
const times: number[][][] = works.map((side) => side.map(() => []));
for (let round = 0; round < WARMUP + ROUNDS; round++) {
  for (let w = 0; w < works[0].length; w++) {
    for (const s of round % 2 === 0 ? [0, 1] : [1, 0]) {
      const work = works[s][w];
      const iterations = work.frames === 1 ? 20_000 : 300;
      const started = performance.now();
      for (let i = 0; i < iterations; i++) await work.run();
      const ns = (performance.now() - started) * 1e6 /
        (iterations * work.frames);
      if (round >= WARMUP) times[s][w].push(ns);
    }
  }
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[values.length >> 1];
console.log(
  `${runtimeName}, median of ${ROUNDS} alternating rounds, ns per frame`,
);
console.log(
  `${"workload".padEnd(24)} ${"A".padStart(9)} ${"B".padStart(9)}  B/A`,
);
for (let w = 0; w < works[0].length; w++) {
  const a = median(times[0][w]);
  const b = median(times[1][w]);
  console.log(
    `${works[0][w].name.padEnd(24)} ${a.toFixed(1).padStart(9)} ${
      b.toFixed(1).padStart(9)
    }  ${(b / a).toFixed(3)}`,
  );
}
if (sink === -1) console.log(sink);
