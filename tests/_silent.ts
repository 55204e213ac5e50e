// Peers that stop reading, for backpressure tests. The framework's own
// transports always read, so these use each runtime's sockets directly: under
// Deno a connection that nobody reads, under Bun and Node.js a socket that is
// paused. The kernel's buffers then fill and the sender's writes stop
// completing.

const HOST = "127.0.0.1";

/** One end of a connection that does not read until `resume()`. */
export interface SilentPeer {
  /** Bytes read since `resume()`. */
  readonly received: number;
  /** Starts reading (and discarding) everything. */
  resume(): void;
  /** Closes the socket and waits until it is closed. */
  close(): Promise<void>;
}

// deno-lint-ignore no-explicit-any
type Any = any;

function bun(): Any {
  return (globalThis as Any).Bun;
}

class DenoSilent implements SilentPeer {
  received = 0;
  #reading: Promise<void> | undefined;
  constructor(readonly conn: Deno.Conn) {}

  resume(): void {
    this.#reading ??= (async () => {
      const buffer = new Uint8Array(256 * 1024);
      try {
        while (true) {
          const count = await this.conn.read(buffer);
          if (count === null) break;
          this.received += count;
        }
      } catch { /* closed */ }
    })();
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* already closed */ }
    await this.#reading;
  }
}

class BunSilent implements SilentPeer {
  received = 0;
  socket: Any;
  closed: Promise<void>;
  markClosed!: () => void;
  constructor() {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
  }

  resume(): void {
    this.socket.resume();
  }

  async close(): Promise<void> {
    this.socket.end();
    await this.closed;
  }
}

class NodeSilent implements SilentPeer {
  received = 0;
  readonly closed: Promise<void>;
  constructor(readonly socket: Any) {
    socket.pause(); // before the data listener, which would start the flow
    socket.on("data", (chunk: Uint8Array) => this.received += chunk.length);
    socket.on("error", () => {});
    this.closed = new Promise((resolve) => socket.once("close", resolve));
  }

  resume(): void {
    this.socket.resume();
  }

  async close(): Promise<void> {
    this.socket.destroy();
    await this.closed;
  }
}

// A variable specifier: only the Node.js path loads it.
const nodeNetModule = "node:net";

function bunHandlers(opened: (peer: BunSilent) => void) {
  return {
    binaryType: "uint8array",
    open(socket: Any) {
      const peer = new BunSilent();
      peer.socket = socket;
      socket.data = peer;
      socket.pause();
      opened(peer);
    },
    data(socket: Any, data: Uint8Array) {
      socket.data.received += data.length;
    },
    close(socket: Any) {
      socket.data?.markClosed();
    },
    error() {},
  };
}

/** Connects to `port` and does not read. */
export async function silentClient(port: number): Promise<SilentPeer> {
  if ("Deno" in globalThis) {
    return new DenoSilent(await Deno.connect({ hostname: HOST, port }));
  }
  if (!("Bun" in globalThis)) {
    const net: Any = await import(nodeNetModule);
    const socket = net.connect({ host: HOST, port });
    const peer = new NodeSilent(socket);
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return peer;
  }
  let peer: BunSilent | undefined;
  await bun().connect({
    hostname: HOST,
    port,
    socket: bunHandlers((opened) => (peer = opened)),
  });
  return peer!;
}

/** A listener whose connections are not read. */
export interface SilentServer {
  readonly port: number;
  /** Every accepted connection, in order. */
  readonly peers: SilentPeer[];
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1, port 0; accepts connections and reads none of them.
 * With `greeting`, writes it on each first (a server that answered the
 * client's hello, then stopped reading).
 */
export async function silentServer(
  greeting?: Uint8Array,
): Promise<SilentServer> {
  const peers: SilentPeer[] = [];
  if ("Deno" in globalThis) {
    const listener = Deno.listen({ hostname: HOST, port: 0 });
    const accepting = (async () => {
      try {
        for await (const conn of listener) {
          if (greeting) await conn.write(greeting).catch(() => {});
          peers.push(new DenoSilent(conn));
        }
      } catch { /* closed */ }
    })();
    return {
      port: (listener.addr as Deno.NetAddr).port,
      peers,
      async close() {
        listener.close();
        await accepting;
        await Promise.all(peers.map((peer) => peer.close()));
      },
    };
  }
  if (!("Bun" in globalThis)) {
    const net: Any = await import(nodeNetModule);
    const server = net.createServer((socket: Any) => {
      if (greeting) socket.write(greeting);
      peers.push(new NodeSilent(socket));
    });
    await new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: HOST, port: 0 }, resolve);
    });
    return {
      port: server.address().port,
      peers,
      async close() {
        server.close();
        await Promise.all(peers.map((peer) => peer.close()));
      },
    };
  }
  const listener = bun().listen({
    hostname: HOST,
    port: 0,
    socket: bunHandlers((peer) => {
      if (greeting) peer.socket.write(greeting);
      peers.push(peer);
    }),
  });
  return {
    port: listener.port,
    peers,
    async close() {
      listener.stop(true);
      await Promise.all(peers.map((peer) => peer.close()));
    },
  };
}

/** Bytes of memory in use: the JS heap plus buffers outside it, and RSS. */
export function memory(): { used: number; rss: number } {
  const usage = "Deno" in globalThis
    ? Deno.memoryUsage()
    : (globalThis as Any).process.memoryUsage();
  return { used: usage.heapUsed + usage.external, rss: usage.rss };
}
