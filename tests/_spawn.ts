// A tiny runtime-neutral child process helper for the tests: Deno.Command
// under Deno, Bun.spawn under Bun, node:child_process otherwise. Output is
// collected as it arrives; `waitFor` resolves on a matching stdout line.
// Always end with `await child.kill()` (or `await child.exited`) in a
// `finally`, so no process or pipe outlives its test.

/** What a spawned child offers the tests. */
export interface Child {
  /** Complete stdout lines so far. */
  readonly lines: string[];
  /** Everything the child wrote to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout line (past or future) that matches. */
  waitFor(
    match: RegExp | ((line: string) => boolean),
    ms?: number,
  ): Promise<string>;
  /** Writes to the child's stdin. */
  write(data: string | Uint8Array): Promise<void>;
  /** Closes the child's stdin. Idempotent. */
  closeStdin(): Promise<void>;
  /** Resolves with the exit code once the child exited and its pipes are drained. */
  readonly exited: Promise<number>;
  /** Kills the child (if it still runs) and waits as `exited` does. */
  kill(): Promise<number>;
  /** Sends SIGTERM, SIGINT or SIGHUP, if the child still runs. */
  signal(signal: "SIGTERM" | "SIGINT" | "SIGHUP"): void;
}

/** The child's exit code, or undefined if it still runs after `ms`. */
export async function exitWithin(
  child: Child,
  ms: number,
): Promise<number | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([child.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@linkcode spawn}. */
export interface SpawnOptions {
  cwd?: string;
  /** Extra environment variables (the parent's are inherited). */
  env?: Record<string, string>;
}

interface RawChild {
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  write(bytes: Uint8Array): Promise<void>;
  closeStdin(): Promise<void>;
  kill(signal?: "SIGTERM" | "SIGINT" | "SIGHUP" | "SIGKILL"): void;
  status: Promise<number>;
}

// A variable specifier keeps `deno check` from resolving runtime-only modules.
const childProcessModule = "node:child_process";
const streamModule = "node:stream";

/** Starts `command` with `args`, stdin, stdout and stderr piped. */
export async function spawn(
  command: string,
  args: string[],
  options: SpawnOptions = {},
): Promise<Child> {
  const raw = await start(command, args, options);
  let out = "";
  let err = "";
  let partial = "";
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let ended = false;

  const pump = async (
    stream: ReadableStream<Uint8Array>,
    onText: (text: string) => void,
  ) => {
    const streamDecoder = new TextDecoder();
    for await (const chunk of stream) {
      onText(streamDecoder.decode(chunk, { stream: true }));
    }
    onText(streamDecoder.decode());
  };
  const stdoutDone = pump(raw.stdout, (text) => {
    out += text;
    partial += text;
    const parts = partial.split("\n");
    partial = parts.pop()!;
    if (parts.length > 0) {
      lines.push(...parts.map((line) => line.replace(/\r$/, "")));
      for (const wake of waiters) wake();
    }
  });
  const stderrDone = pump(raw.stderr, (text) => err += text);

  const exited = Promise.all([raw.status, stdoutDone, stderrDone]).then(
    ([code]) => {
      ended = true;
      for (const wake of waiters) wake();
      return code;
    },
  );
  let stdinClosed = false;

  const child: Child = {
    lines,
    stdout: () => out,
    stderr: () => err,
    waitFor(match, ms = 5000) {
      const test = typeof match === "function"
        ? match
        : (line: string) => match.test(line);
      return new Promise<string>((resolve, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < lines.length; seen++) {
            if (test(lines[seen])) {
              finish();
              resolve(lines[seen]);
              return;
            }
          }
          if (ended) {
            finish();
            reject(
              new Error(
                `Child exited before printing a line matching ${match}; stdout:\n${out}\nstderr:\n${err}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(
            new Error(
              `No line matching ${match} within ${ms} ms; stdout:\n${out}\nstderr:\n${err}`,
            ),
          );
        }, ms);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    write(data) {
      return raw.write(
        typeof data === "string" ? new TextEncoder().encode(data) : data,
      );
    },
    async closeStdin() {
      if (stdinClosed) return;
      stdinClosed = true;
      await raw.closeStdin().catch(() => {});
    },
    exited,
    async kill() {
      await child.closeStdin();
      if (!ended) {
        try {
          raw.kill();
        } catch { /* already exited */ }
      }
      return await exited;
    },
    signal(signal) {
      if (ended) return;
      try {
        raw.kill(signal);
      } catch { /* already exited */ }
    },
  };
  return child;
}

async function start(
  command: string,
  args: string[],
  options: SpawnOptions,
): Promise<RawChild> {
  if ("Deno" in globalThis) {
    const process = new Deno.Command(command, {
      args,
      cwd: options.cwd,
      env: options.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = process.stdin.getWriter();
    return {
      stdout: process.stdout,
      stderr: process.stderr,
      write: (bytes) => writer.write(bytes),
      closeStdin: () => writer.close(),
      kill: (signal = "SIGKILL") => process.kill(signal),
      status: process.status.then((status) => status.code),
    };
  }
  if ("Bun" in globalThis) {
    const bun = (globalThis as unknown as { Bun: BunSpawn }).Bun;
    const process = bun.spawn([command, ...args], {
      cwd: options.cwd,
      env: options.env
        ? {
          ...(globalThis as unknown as NodeGlobal).process.env,
          ...options.env,
        }
        : undefined,
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    return {
      stdout: process.stdout,
      stderr: process.stderr,
      write: async (bytes) => {
        process.stdin.write(bytes);
        await process.stdin.flush();
      },
      closeStdin: async () => {
        await process.stdin.end();
      },
      kill: (signal = "SIGKILL") => process.kill(SIGNAL_NUMBERS[signal]),
      status: process.exited,
    };
  }
  const { spawn } = await import(childProcessModule);
  const { Readable } = await import(streamModule);
  const node = (globalThis as unknown as NodeGlobal).process;
  const process = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ? { ...node.env, ...options.env } : undefined,
    stdio: ["pipe", "pipe", "pipe"],
  });
  // A command that cannot start is an "error" event, not a throw as on Deno
  // and Bun: wait for one or the other, so callers see the same on all three.
  await new Promise<void>((resolve, reject) => {
    process.once("spawn", resolve);
    process.once("error", reject);
  });
  // A write or end after the child exited fails with EPIPE: not our concern.
  process.stdin.on("error", () => {});
  const status = new Promise<number>((resolve) =>
    process.on("close", (code: number | null) => resolve(code ?? 137))
  );
  return {
    stdout: Readable.toWeb(process.stdout),
    stderr: Readable.toWeb(process.stderr),
    write: (bytes) =>
      new Promise<void>((resolve, reject) =>
        process.stdin.write(
          bytes,
          (error: unknown) => error ? reject(error) : resolve(),
        )
      ),
    // end() does not call back once the child has gone: do not wait for it.
    closeStdin: () => {
      process.stdin.end();
      return Promise.resolve();
    },
    kill: (signal = "SIGKILL") => process.kill(signal),
    status,
  };
}

/** Bun's subprocess.kill() takes a number. */
const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

interface NodeGlobal {
  process: { env: Record<string, string>; execPath: string };
}

interface BunSpawn {
  spawn(command: string[], options: {
    cwd?: string;
    env?: Record<string, string>;
    stdin: "pipe";
    stdout: "pipe";
    stderr: "pipe";
  }): {
    stdin: {
      write(bytes: Uint8Array): number;
      flush(): unknown;
      end(): unknown;
    };
    stdout: ReadableStream<Uint8Array>;
    stderr: ReadableStream<Uint8Array>;
    exited: Promise<number>;
    kill(signal?: number): void;
  };
}

/** The executable of the runtime running the tests (deno, bun or node). */
export function runtimeExecutable(): string {
  if ("Deno" in globalThis) return Deno.execPath();
  return (globalThis as unknown as NodeGlobal).process.execPath;
}
