// The baseline: a minimal echo server for the same frames, written straight on
// the runtime's sockets with no framework around it. It does what a careful
// hand-written server would: reads into one large buffer per connection,
// checks each frame's header as the framework does (sign, ASCII uuid, a whole
// non-negative float64 length within the maximum), and writes back every
// complete frame of a read in one write, straight out of the read buffer (no
// per-frame objects, strings or copies). Frames are echoed whole, PINGs
// included, in order.
//
// Protocol with the runner: prints {"port": n} once listening; on a stdin
// line "rss" collects garbage and prints {"rss": bytes, "connections": n};
// exits when stdin ends.

import {
  bun,
  type BunSocket,
  collectGarbage,
  exit,
  heapBytes,
  println,
  rssBytes,
  runtimeName,
  stdinLines,
} from "./_runtime.ts";

const HEADER = 45;
const MAX_FRAME = 64 * 1024 * 1024;
const READ_BUFFER = 256 * 1024;

const lengthView = new DataView(new ArrayBuffer(8));
const lengthBytes = new Uint8Array(lengthView.buffer);

/**
 * Scans `bytes[0, end)` for complete frames. Returns the end of the last
 * complete one and, if a frame is incomplete, the total size it needs
 * (or 0 if its header is not in yet). Throws on a malformed header.
 */
function scan(
  bytes: Uint8Array,
  end: number,
): { complete: number; need: number } {
  let at = 0;
  while (end - at >= HEADER) {
    const sign = bytes[at];
    if (sign !== 0x01 && sign !== 0x11) throw new Error("bad sign");
    let high = 0;
    for (let i = at + 1; i < at + 37; i++) high |= bytes[i];
    if (high & 0x80) throw new Error("non-ASCII uuid");
    for (let i = 0; i < 8; i++) lengthBytes[i] = bytes[at + 37 + i];
    const length = lengthView.getFloat64(0);
    if (!(length >= 0) || !Number.isInteger(length) || length > MAX_FRAME) {
      throw new Error("bad length");
    }
    const size = HEADER + length;
    if (end - at < size) return { complete: at, need: size };
    at += size;
  }
  return { complete: at, need: 0 };
}

let connections = 0;

// ---------------------------------------------------------------- Deno ----

async function serveDeno(conn: Deno.TcpConn): Promise<void> {
  connections++;
  conn.setNoDelay(true);
  let buffer = new Uint8Array(READ_BUFFER);
  let filled = 0;
  try {
    while (true) {
      const count = await conn.read(buffer.subarray(filled));
      if (count === null) break;
      filled += count;
      const { complete, need } = scan(buffer, filled);
      if (complete > 0) {
        let at = 0;
        while (at < complete) {
          at += await conn.write(buffer.subarray(at, complete));
        }
        buffer.copyWithin(0, complete, filled);
        filled -= complete;
      }
      if (need > buffer.length) {
        const bigger = new Uint8Array(need);
        bigger.set(buffer.subarray(0, filled));
        buffer = bigger;
      }
    }
  } catch { /* reset by the peer, or a malformed frame: drop it */ }
  try {
    conn.close();
  } catch { /* already closed */ }
  connections--;
}

function listenDeno(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) serveDeno(conn);
  })();
  return listener.addr.port;
}

// ----------------------------------------------------------------- Bun ----

interface BunState {
  /** Bytes of an incomplete frame carried over to the next read. */
  input: Uint8Array;
  inputLength: number;
  /** Bytes the kernel did not take yet, written on `drain`. */
  output: Uint8Array | undefined;
}

function append(
  target: Uint8Array,
  length: number,
  bytes: Uint8Array,
  need: number,
): Uint8Array {
  const size = length + bytes.length;
  if (size > target.length) {
    const bigger = new Uint8Array(
      Math.max(size, need, target.length * 2, 4096),
    );
    bigger.set(target.subarray(0, length));
    target = bigger;
  }
  target.set(bytes, length);
  return target;
}

function writeBun(socket: BunSocket<BunState>, bytes: Uint8Array): void {
  const state = socket.data;
  if (state.output) {
    // Still draining: keep the order.
    const joined = new Uint8Array(state.output.length + bytes.length);
    joined.set(state.output);
    joined.set(bytes, state.output.length);
    state.output = joined;
    return;
  }
  const written = socket.write(bytes);
  if (written < 0) return;
  if (written < bytes.length) state.output = bytes.slice(written);
}

function listenBun(): number {
  const listener = bun().listen<BunState>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      binaryType: "uint8array",
      open(socket) {
        connections++;
        socket.setNoDelay?.(true);
        socket.data = {
          input: new Uint8Array(0),
          inputLength: 0,
          output: undefined,
        };
      },
      data(socket, chunk) {
        const state = socket.data;
        try {
          if (state.inputLength === 0) {
            // The common case: frames start at the chunk's first byte.
            const { complete } = scan(chunk, chunk.length);
            if (complete > 0) writeBun(socket, chunk.subarray(0, complete));
            if (complete < chunk.length) {
              const rest = chunk.subarray(complete);
              state.input = append(state.input, 0, rest, 0);
              state.inputLength = rest.length;
            }
            return;
          }
          const head = scan(state.input, state.inputLength);
          state.input = append(
            state.input,
            state.inputLength,
            chunk,
            head.need,
          );
          state.inputLength += chunk.length;
          const { complete } = scan(state.input, state.inputLength);
          if (complete > 0) {
            // writeBun copies what the kernel does not take, so the input
            // buffer can be reused at once.
            writeBun(socket, state.input.subarray(0, complete));
            state.input.copyWithin(0, complete, state.inputLength);
            state.inputLength -= complete;
          }
        } catch {
          socket.end();
        }
      },
      drain(socket) {
        const state = socket.data;
        const output = state.output;
        if (!output) return;
        const written = socket.write(output);
        if (written < 0) return;
        state.output = written < output.length
          ? output.subarray(written)
          : undefined;
      },
      close() {
        connections--;
      },
      error() {},
    },
  });
  return listener.port;
}

// ---------------------------------------------------------------- main ----

const port = runtimeName === "deno" ? listenDeno() : listenBun();
println(JSON.stringify({ port }));
for await (const line of stdinLines()) {
  if (line.trim() === "rss") {
    for (let i = 0; i < 3; i++) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    println(JSON.stringify({ rss: rssBytes(), ...heapBytes(), connections }));
  }
}
// stdin ended: the runner is done (or gone).
exit(0);
