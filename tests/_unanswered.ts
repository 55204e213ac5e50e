// A loopback address where a TCP connect never completes, as against a host
// that drops SYNs: a listening socket that never accepts, its accept queue
// filled. Linux then drops further SYNs (tcp_abort_on_overflow 0, the
// default), so a connect to it hangs until the caller gives up.
//
// Under Deno the socket is this process's own (Deno.listen accepts only when
// asked). Node.js and Bun accept on their own as soon as they listen, so there
// the socket is a child process's whose event loop is kept blocked.

import { type Child, runtimeExecutable, spawn } from "./_spawn.ts";
import { HOST } from "./_helpers.ts";

/**
 * Why connects to a full accept queue would not hang here, or undefined where
 * they do (Linux with tcp_abort_on_overflow 0): for a test's skip, decided
 * before registration and without opening a socket. Read by `cat`, since
 * Deno reads /proc/sys only with --allow-all.
 */
export async function unansweredProblem(): Promise<string | undefined> {
  const cat = await spawn("cat", ["/proc/sys/net/ipv4/tcp_abort_on_overflow"]);
  await cat.closeStdin();
  const code = await cat.exited;
  const setting = cat.stdout().trim();
  if (code !== 0) {
    return "no /proc/sys/net/ipv4/tcp_abort_on_overflow: only Linux is " +
      "known to drop SYNs to a full accept queue";
  }
  return setting === "0" ? undefined : `tcp_abort_on_overflow is ${setting}: ` +
    "a full accept queue refuses connects, not drops them";
}

/** A port whose connects hang; `close()` frees everything. */
export interface Unanswered {
  readonly port: number;
  /** Connections it took to fill the accept queue. */
  readonly filled: number;
  close(): Promise<void>;
}

const CHILD_SCRIPT = `
const net = require("node:net");
const server = net.createServer();
server.listen({ host: "${HOST}", port: 0, backlog: 0 }, () => {
  process.stdout.write("port " + server.address().port + "\\n");
  // Blocked, so nothing is ever accepted; bounded so it cannot outlive a run.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  process.exit(0);
});
`;

/** Largest number of connections tried while filling the accept queue. */
const MAX_FILL = 4096;
/** A connect that has not completed in this long is taken as hanging. */
const HANG_MS = 300;

/**
 * Opens the unanswered port, or returns undefined (saying why) where this
 * system does not drop SYNs to a full accept queue.
 */
export async function unanswered(): Promise<Unanswered | undefined> {
  let port: number;
  let listener: { close(): void } | undefined;
  let child: Child | undefined;
  if ("Deno" in globalThis) {
    const denoListener = Deno.listen({ hostname: HOST, port: 0 });
    listener = denoListener;
    port = (denoListener.addr as Deno.NetAddr).port;
  } else {
    child = await spawn(runtimeExecutable(), ["-e", CHILD_SCRIPT]);
    port = Number((await child.waitFor(/^port \d+$/, 10_000)).slice(5));
  }
  const fillers: Array<{ close(): void }> = [];
  const close = async () => {
    for (const filler of fillers) filler.close();
    listener?.close();
    await child?.kill();
  };
  try {
    for (let i = 0; i < MAX_FILL; i++) {
      let filler = await connectWithin(port, HANG_MS);
      // A loaded machine can be slow to complete a connect: a second, longer
      // try tells a full queue from a slow one.
      filler ??= await connectWithin(port, 4 * HANG_MS);
      if (filler === undefined) return { port, filled: i, close };
      fillers.push(filler);
    }
  } catch (error) {
    await close();
    throw error;
  }
  await close();
  console.log(
    `accept queue not full after ${MAX_FILL} connections: connects do not hang here`,
  );
  return undefined;
}

/** A connection to `port`, or undefined if it does not complete in `ms`. */
async function connectWithin(
  port: number,
  ms: number,
): Promise<{ close(): void } | undefined> {
  if ("Deno" in globalThis) {
    try {
      return await Deno.connect({
        hostname: HOST,
        port,
        signal: AbortSignal.timeout(ms),
      });
    } catch (error) {
      if ((error as Error).name === "TimeoutError") return undefined;
      throw error;
    }
  }
  const net = await import(netModule);
  return await new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, ms);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve({ close: () => socket.destroy() });
    });
    socket.once("error", (error: unknown) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

// A variable specifier keeps `deno check` from resolving it.
const netModule = "node:net";
