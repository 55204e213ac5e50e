// The little the benchmarks need from the runtime, for Deno and Bun alike:
// spawning a script of this runtime as a child process with line-based
// stdin/stdout, reading /proc for CPU time and resident memory, and forcing a
// garbage collection where the runtime allows it. Nothing here is part of the
// package.

/** "deno" or "bun". */
export const runtimeName: "deno" | "bun" = "Deno" in globalThis
  ? "deno"
  : "bun";

// The members of Bun's API used by the benchmarks, declared so that the
// benchmarks type-check under `deno check` without Bun's type package.
export interface BunFileSink {
  write(chunk: string | Uint8Array): number;
  flush(): unknown;
  end(): unknown;
}
export interface BunSubprocess {
  readonly pid: number;
  readonly stdin: BunFileSink;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
  kill(signal?: number | string): void;
}
export interface BunSocket<T> {
  data: T;
  write(bytes: Uint8Array, offset?: number, length?: number): number;
  end(): void;
  setNoDelay?(noDelay: boolean): boolean;
}
export interface BunSocketHandlers<T> {
  binaryType?: "uint8array";
  open?(socket: BunSocket<T>): void;
  data(socket: BunSocket<T>, chunk: Uint8Array): void;
  drain?(socket: BunSocket<T>): void;
  close?(socket: BunSocket<T>, error?: Error): void;
  error?(socket: BunSocket<T>, error: Error): void;
  connectError?(socket: BunSocket<T>, error: Error): void;
}
export interface BunApi {
  version: string;
  spawn(
    command: string[],
    options: { stdin: "pipe"; stdout: "pipe"; stderr: "inherit" },
  ): BunSubprocess;
  listen<T>(options: {
    hostname: string;
    port: number;
    socket: BunSocketHandlers<T>;
  }): { port: number; stop(closeActive?: boolean): void };
  connect<T>(options: {
    hostname: string;
    port: number;
    socket: BunSocketHandlers<T>;
  }): Promise<BunSocket<T>>;
  gc(force: boolean): void;
  stdin: { stream(): ReadableStream<Uint8Array> };
  argv: string[];
}

/** Bun's global, on Bun. */
export function bun(): BunApi {
  return (globalThis as unknown as { Bun: BunApi }).Bun;
}

/** The runtime's version, e.g. "deno 2.9.6 (V8 …)". */
export function runtimeVersion(): string {
  if (runtimeName === "deno") {
    return `deno ${Deno.version.deno} (V8 ${Deno.version.v8})`;
  }
  return `bun ${bun().version}`;
}

/** Command-line arguments after the script. */
export function scriptArgs(): string[] {
  return runtimeName === "deno" ? Deno.args : bun().argv.slice(2);
}

/** Ends the process. */
export function exit(code: number): never {
  if (runtimeName === "deno") Deno.exit(code);
  (globalThis as unknown as { process: { exit(code: number): never } })
    .process.exit(code);
  throw new Error("unreachable");
}

/** Reads a text file synchronously. */
export function readText(path: string): string {
  if (runtimeName === "deno") return Deno.readTextFileSync(path);
  // Bun implements node:fs synchronously; a variable specifier keeps
  // `deno check` from resolving it.
  return nodeFs.readFileSync(path, "utf8");
}

const nodeFsSpecifier = "node:fs";
const nodeFs: {
  readFileSync(path: string, encoding: "utf8"): string;
  writeFileSync(path: string, text: string): void;
  mkdirSync(path: string, options: { recursive: boolean }): void;
} = runtimeName === "bun" ? await import(nodeFsSpecifier) : undefined as never;

/** Writes a text file, creating its directory. */
export function writeText(path: string, text: string): void {
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (runtimeName === "deno") {
    if (dir) Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(path, text);
    return;
  }
  if (dir) nodeFs.mkdirSync(dir, { recursive: true });
  nodeFs.writeFileSync(path, text);
}

/** CPU time (user + system, all threads) of a process, in ms; Linux only. */
export function cpuMs(pid: number | "self" = "self"): number {
  const stat = readText(`/proc/${pid}/stat`);
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the full line, in clock ticks
  // (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Resident memory of a process, in bytes; Linux only. */
export function rssBytes(pid: number | "self" = "self"): number {
  const status = readText(`/proc/${pid}/status`);
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : NaN;
}

/** The JavaScript heap in use and external (ArrayBuffer) memory, in bytes. */
export function heapBytes(): { heapUsed: number; external: number } {
  const usage = (globalThis as unknown as {
    process: { memoryUsage(): { heapUsed: number; external: number } };
  }).process.memoryUsage();
  return { heapUsed: usage.heapUsed, external: usage.external };
}

/**
 * Collects garbage if the runtime allows it (Bun always; Deno when started
 * with `--v8-flags=--expose-gc`). Returns whether it could.
 */
export function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc === "function") {
    gc();
    return true;
  }
  if (runtimeName === "bun") {
    bun().gc(true);
    return true;
  }
  return false;
}

/** This process's stdin as lines; ends at EOF. */
export async function* stdinLines(): AsyncGenerator<string> {
  const stream = runtimeName === "deno"
    ? Deno.stdin.readable
    : bun().stdin.stream();
  yield* lines(stream);
}

async function* lines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
  if (buffered) yield buffered;
}

/** Writes one line to stdout. */
export function println(text: string): void {
  console.log(text);
}

/** A child process running one of the benchmark scripts. */
export interface Child {
  readonly pid: number;
  /**
   * The next line the child prints, or undefined once its stdout ends.
   * @throws {Error} If no line comes within `ms`.
   */
  line(ms: number): Promise<string | undefined>;
  /** Sends one line to the child's stdin. */
  send(line: string): Promise<void>;
  /** Closes the child's stdin (the scripts exit on EOF). */
  closeStdin(): Promise<void>;
  /** Kills the child (SIGKILL); safe to call twice. */
  kill(): void;
  /** Settles with the exit code once the child has exited. */
  readonly exited: Promise<number>;
}

const children = new Set<Child>();

/** Kills every child still running; for `finally` blocks. */
export function killAll(): void {
  for (const child of children) child.kill();
}

/**
 * Runs `script` with this runtime, with piped stdin/stdout and inherited
 * stderr.
 *
 * @param script Path of the script.
 * @param args Its arguments.
 * @param denoFlags Flags for `deno run` (permissions, V8 flags).
 */
export function spawnScript(
  script: string,
  args: string[],
  denoFlags: string[] = [],
): Child {
  return runtimeName === "deno"
    ? spawnCommand([Deno.execPath(), "run", ...denoFlags, script, ...args])
    : spawnCommand([bun().argv[0], script, ...args]);
}

/**
 * Runs any command (for example Node.js with a script), with piped
 * stdin/stdout and inherited stderr, as {@linkcode spawnScript} does.
 */
export function spawnCommand(command: string[]): Child {
  let pid: number;
  let stdout: ReadableStream<Uint8Array>;
  let write: (line: string) => Promise<void>;
  let endStdin: () => Promise<void>;
  let kill: () => void;
  let exited: Promise<number>;
  if (runtimeName === "deno") {
    const process = new Deno.Command(command[0], {
      args: command.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    pid = process.pid;
    stdout = process.stdout;
    const writer = process.stdin.getWriter();
    const encoder = new TextEncoder();
    write = (line) => writer.write(encoder.encode(line + "\n"));
    endStdin = () => writer.close().catch(() => {});
    kill = () => process.kill("SIGKILL");
    exited = process.status.then((status) => status.code);
  } else {
    const process = bun().spawn(command, {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
    pid = process.pid;
    stdout = process.stdout;
    write = (line) => {
      process.stdin.write(line + "\n");
      return Promise.resolve(process.stdin.flush()).then(() => {});
    };
    endStdin = () => Promise.resolve(process.stdin.end()).then(() => {});
    kill = () => process.kill(9);
    exited = process.exited;
  }
  const lineIterator = lines(stdout);
  let pendingLine: Promise<IteratorResult<string>> | undefined;
  let done = false;
  const child: Child = {
    pid,
    async line(ms) {
      pendingLine ??= lineIterator.next();
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const result = await Promise.race([
          pendingLine,
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () =>
                reject(new Error(`child ${pid}: no output within ${ms} ms`)),
              ms,
            );
          }),
        ]);
        pendingLine = undefined;
        return result.done ? undefined : result.value;
      } finally {
        clearTimeout(timer);
      }
    },
    send: (line) => write(line),
    closeStdin: () => endStdin(),
    kill() {
      if (done) return;
      try {
        kill();
      } catch { /* already gone */ }
    },
    exited,
  };
  children.add(child);
  exited.finally(() => {
    done = true;
    children.delete(child);
  });
  return child;
}

/** Reads lines from `child` until one parses as JSON with `key`, within `ms`. */
export async function expectJson<T>(
  child: Child,
  key: string,
  ms: number,
): Promise<T> {
  const deadline = performance.now() + ms;
  for (let i = 0; i < 1000; i++) {
    const left = deadline - performance.now();
    if (left <= 0) break;
    const line = await child.line(left);
    if (line === undefined) {
      throw new Error(`child ${child.pid} exited before reporting "${key}"`);
    }
    if (!line.startsWith("{")) continue;
    const value = JSON.parse(line);
    if (key in value) return value as T;
  }
  throw new Error(`child ${child.pid}: no "${key}" within ${ms} ms`);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A loopback port nothing listens on (bound to port 0, read back, closed). */
export function freePort(): number {
  if (runtimeName === "deno") {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    return port;
  }
  const listener = bun().listen<null>({
    hostname: "127.0.0.1",
    port: 0,
    socket: { data() {} },
  });
  const port = listener.port;
  listener.stop(true);
  return port;
}
