/**
 * One server per core: {@linkcode serveWorkers} starts several processes of a
 * server module, each listening on the same port with `reusePort` so the
 * kernel spreads connections over them; it restarts a worker that dies (with
 * backoff), and on SIGTERM or SIGINT drains them all (each worker's
 * `server.stop()`) and exits. In the worker module,
 * {@linkcode stopOnSignal} does the worker's half.
 *
 * Linux only, as `reusePort` is; under Deno the workers need `--unstable-net`
 * (the default `runtimeArgs` pass it) and the launcher `--allow-run`; under
 * Node.js, 22.12 or later. Where the workers could not share the port, or
 * could not be started, `serveWorkers` throws a
 * {@linkcode WorkersUnavailableError} saying why, before it starts anything;
 * a worker that keeps dying is given up after {@linkcode DEFAULT_MAX_FAILURES}
 * deaths in a row.
 *
 * @example
 * ```ts ignore
 * // launcher.ts
 * import { serveWorkers } from "@qtk/tcp-framework/workers";
 * serveWorkers(new URL("./server.ts", import.meta.url), { workers: 4 });
 *
 * // server.ts
 * import { Server } from "@qtk/tcp-framework";
 * import { stopOnSignal } from "@qtk/tcp-framework/workers";
 * const server = new Server({ host: "0.0.0.0", port: 8212, reusePort: true });
 * server.on("data", (socket, message) => socket.send(message));
 * stopOnSignal(server); // before start(), so no signal finds it unprepared
 * await server.start();
 * ```
 *
 * @module
 */

import process from "node:process";
import { fileURLToPath } from "node:url";
import { checkCount, checkCountOrInfinity, checkSeconds } from "./_checks.ts";
import { quote } from "./_quote.ts";
import { nodeReusePortProblem, reusePortOsProblem } from "./_reuse_port.ts";

/**
 * The environment variable that tells a worker its number (0 to workers - 1).
 *
 * @example
 * ```ts
 * import { WORKER_ENV } from "@qtk/tcp-framework/workers";
 * console.log(WORKER_ENV); // "TCP_FRAMEWORK_WORKER"
 * ```
 */
export const WORKER_ENV = "TCP_FRAMEWORK_WORKER";

/**
 * Default seconds that {@linkcode Workers.stop} gives the workers to drain
 * before it kills them.
 *
 * @example
 * ```ts
 * import { DEFAULT_STOP_TIMEOUT } from "@qtk/tcp-framework/workers";
 * console.log(DEFAULT_STOP_TIMEOUT); // 30
 * ```
 */
export const DEFAULT_STOP_TIMEOUT = 30;

/**
 * A worker that ran at least this many seconds before it died is restarted
 * as if for the first time (its backoff starts over).
 *
 * @example
 * ```ts
 * import { HEALTHY_AFTER } from "@qtk/tcp-framework/workers";
 * console.log(HEALTHY_AFTER); // 10
 * ```
 */
export const HEALTHY_AFTER = 10;

/**
 * Default of {@linkcode WorkersOptions.maxFailures}: a worker that died this
 * many times in a row, each time within {@linkcode HEALTHY_AFTER} seconds of
 * its start, is not started again. With the default
 * {@linkcode restartDelay} that is about 1.5 s of waits between the five
 * starts: a worker that cannot start (its port taken by a program that does
 * not share it, a bad argument, a missing permission) is reported within
 * seconds rather than restarted forever, and once no worker is left the
 * launcher ends, so that its own supervisor (systemd, a container platform)
 * sees the failure.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_FAILURES } from "@qtk/tcp-framework/workers";
 * console.log(DEFAULT_MAX_FAILURES); // 5
 * ```
 */
export const DEFAULT_MAX_FAILURES = 5;

/**
 * What {@linkcode serveWorkers} found missing, as
 * {@linkcode WorkersUnavailableError.kind} names it: `"os"`, not Linux;
 * `"runtime"`, a Node.js older than 22.12 (23.1 on the 23 line), which would
 * ignore `reusePort`; `"flag"`, Deno workers whose `runtimeArgs` lack
 * `--unstable-net`; `"permission"`, a Deno launcher without `--allow-run`.
 *
 * @example
 * ```ts
 * import type { WorkersProblem } from "@qtk/tcp-framework/workers";
 * const fixable: WorkersProblem[] = ["flag", "permission"];
 * ```
 */
export type WorkersProblem = "os" | "runtime" | "flag" | "permission";

/**
 * Thrown by {@linkcode serveWorkers}, before it starts anything, where its
 * workers could not share the port (`reusePort` works on Linux only, on
 * Node.js from 22.12, and on Deno with `--unstable-net`) or could not be
 * started at all (a Deno launcher without `--allow-run`). The message says
 * what is missing and how to get it; `kind` says it for code.
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { serveWorkers, WorkersUnavailableError } from "@qtk/tcp-framework/workers";
 * function launch(module: string) {
 *   try {
 *     return serveWorkers(module, { workers: 4 });
 *   } catch (error) {
 *     if (!(error instanceof WorkersUnavailableError)) throw error;
 *     console.error(`cannot run workers (${error.kind}): ${error.message}`);
 *     process.exit(2);
 *   }
 * }
 * ```
 */
export class WorkersUnavailableError extends Error {
  /** What is missing; see {@linkcode WorkersProblem}. */
  readonly kind: WorkersProblem;

  /**
   * Creates the error.
   *
   * @param kind What is missing.
   * @param message What is missing and how to get it.
   */
  constructor(kind: WorkersProblem, message: string) {
    super(message);
    this.name = "WorkersUnavailableError";
    this.kind = kind;
  }
}

/**
 * Default wait before restarting a worker that died, by how many times in a
 * row it died young (1 for the first): 100 ms doubling to 10 s, give or take
 * 20% so workers that died together do not come back together.
 *
 * @param attempt The restart about to happen, from 1.
 * @returns Milliseconds to wait.
 *
 * @example
 * ```ts
 * import { restartDelay } from "@qtk/tcp-framework/workers";
 * console.log(restartDelay(1) < 200); // true
 * ```
 */
export function restartDelay(attempt: number): number {
  const base = Math.min(10_000, 100 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * Options of {@linkcode serveWorkers}.
 *
 * @example
 * ```ts
 * import type { WorkersOptions } from "@qtk/tcp-framework/workers";
 * const options: WorkersOptions = { workers: 2, args: ["--port", "8212"] };
 * ```
 */
export interface WorkersOptions {
  /**
   * How many processes to run.
   * @default {navigator.hardwareConcurrency}
   */
  workers?: number;
  /** Arguments for the module (after it on the command line). */
  args?: string[];
  /**
   * The runtime's own arguments, before the module. Deno needs permissions
   * and `--unstable-net` for `reusePort`; Bun and Node.js need none.
   * @default {Deno: ["run", "--allow-net", "--allow-read", "--allow-env", "--unstable-net"]; others: []}
   */
  runtimeArgs?: string[];
  /**
   * The runtime executable.
   * @default {the running one (Deno.execPath(), process.execPath)}
   */
  execPath?: string;
  /** Extra environment variables; the launcher's are inherited. */
  env?: Record<string, string>;
  /**
   * Milliseconds to wait before restarting a worker that died, by attempt.
   * @default {restartDelay}
   */
  restartDelay?: (attempt: number) => number;
  /**
   * A worker that dies this many times in a row, each time within
   * {@linkcode HEALTHY_AFTER} seconds of its start, is given up: not started
   * again, and `onGiveUp` told. `Infinity` restarts it forever.
   * @default {5 (DEFAULT_MAX_FAILURES)}
   */
  maxFailures?: number;
  /**
   * Told of a worker given up, with how many times in a row it died. Unset, a
   * line on stderr says it. Once every worker is given up, the workers are
   * stopped (`stop()` resolves false), and with `handleSignals` the process
   * exits with code 1.
   */
  onGiveUp?: (worker: number, failures: number) => void;
  /**
   * Seconds `stop()` gives the workers to drain before it kills them.
   * @default {30}
   */
  stopTimeout?: number;
  /**
   * On SIGTERM or SIGINT, stop the workers and exit the process (a second
   * signal kills them at once), and exit with code 1 once every worker has
   * been given up (see `maxFailures`). Off, call `stop()` yourself.
   * @default {true}
   */
  handleSignals?: boolean;
  /**
   * Where the workers' stdout and stderr go: the launcher's, or nowhere.
   * @default {"inherit"}
   */
  output?: "inherit" | "ignore";
  /** Told of every worker exit (before any restart). */
  onExit?: (worker: number, code: number | null, signal: string | null) => void;
}

/**
 * The running workers, as {@linkcode serveWorkers} returns them.
 *
 * @example
 * ```ts
 * import type { Workers } from "@qtk/tcp-framework/workers";
 * const report = (workers: Workers) => `${workers.pids.length} up, ${workers.restarts} restarts`;
 * ```
 */
export interface Workers {
  /** Process ids of the workers running now. */
  readonly pids: number[];
  /** Workers restarted so far. */
  readonly restarts: number;
  /** Workers given up so far (see `maxFailures`): never started again. */
  readonly givenUp: number;
  /**
   * Drains and stops every worker (SIGTERM; SIGKILL after `stopTimeout`) and
   * stops restarting them. Resolves once all have exited, with true if every
   * one exited on its own with code 0 (a worker still loading its modules,
   * before its `stopOnSignal`, dies of the SIGTERM: it had nothing to drain,
   * but it counts as unclean). Calling it again returns the same.
   */
  stop(): Promise<boolean>;
  /** `stop()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A running worker process, whatever started it. */
interface Running {
  readonly pid: number;
  kill(signal: "SIGTERM" | "SIGKILL"): void;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
}

type Start = (
  execPath: string,
  argv: string[],
  env: Record<string, string>,
  output: "inherit" | "ignore",
) => Running;

// Deno's node:child_process reports a child that handled SIGTERM and exited
// with 0 as killed by SIGTERM; Deno.Command reports what happened.
function startDeno(
  execPath: string,
  argv: string[],
  env: Record<string, string>,
  output: "inherit" | "ignore",
): Running {
  const child = new Deno.Command(execPath, {
    args: argv,
    env,
    stdin: "null",
    stdout: output === "inherit" ? "inherit" : "null",
    stderr: output === "inherit" ? "inherit" : "null",
  }).spawn();
  return {
    pid: child.pid,
    kill(signal) {
      try {
        child.kill(signal);
      } catch { /* already exited */ }
    },
    exited: child.status.then((
      { code, signal }: { code: number; signal: string | null },
    ) => signal ? { code: null, signal } : { code, signal: null }),
  };
}

async function nodeStarter(): Promise<Start> {
  // A variable specifier keeps Deno's module graph free of it.
  const specifier = "node:child_process";
  const { spawn } = await import(
    specifier
  ) as typeof import("node:child_process");
  return (execPath, argv, env, output) => {
    const child = spawn(execPath, argv, {
      stdio: ["ignore", output, output],
      env: { ...process.env, ...env },
    });
    return {
      pid: child.pid ?? -1,
      kill(signal) {
        child.kill(signal);
      },
      exited: new Promise((resolve) => {
        child.once("exit", (code, signal) => resolve({ code, signal }));
        // A spawn failure (no such executable) comes as "error" only.
        child.once("error", () => resolve({ code: null, signal: null }));
      }),
    };
  };
}

interface Slot {
  child: Running | undefined;
  startedAt: number;
  /** Deaths in a row, each within HEALTHY_AFTER of the start before it. */
  attempts: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  exited: Promise<void>;
  cleanExit: boolean;
  givenUp: boolean;
}

function defaultRuntimeArgs(): string[] {
  return "Deno" in globalThis
    ? ["run", "--allow-net", "--allow-read", "--allow-env", "--unstable-net"]
    : [];
}

/** The few members of Deno's API that the checks below use. */
interface DenoPermissions {
  permissions: {
    querySync(descriptor: { name: "run"; command: string }): {
      state: "granted" | "denied" | "prompt";
    };
    requestSync(descriptor: { name: "run"; command: string }): {
      state: "granted" | "denied" | "prompt";
    };
  };
}

/**
 * Why the workers could not share a port, or could not be started, if that
 * is known before starting one; undefined if it is not. Where the workers
 * run another executable than this process, its version and flags are its
 * own: a worker that cannot listen dies, and is given up (`maxFailures`).
 */
function workersProblem(
  execPath: string,
  runtimeArgs: string[],
): WorkersUnavailableError | undefined {
  const deno = (globalThis as { Deno?: DenoPermissions }).Deno;
  const name = deno ? "Deno" : "Bun" in globalThis ? "Bun" : "Node.js";
  const os = reusePortOsProblem(name, process.platform);
  if (os) return new WorkersUnavailableError("os", `serveWorkers: ${os}`);
  const sameRuntime = execPath === process.execPath;
  if (!deno) {
    const old = sameRuntime && name === "Node.js"
      ? nodeReusePortProblem(process.versions.node)
      : undefined;
    return old === undefined ? undefined : new WorkersUnavailableError(
      "runtime",
      `serveWorkers: the workers cannot share a port: ${old}. Run one process per port instead`,
    );
  }
  // Deno: the launcher starts the workers only with --allow-run (a prompt on
  // a terminal may grant it, as it would for the start itself).
  const run = { name: "run", command: execPath } as const;
  let state = deno.permissions.querySync(run).state;
  if (state === "prompt") state = deno.permissions.requestSync(run).state;
  if (state !== "granted") {
    return new WorkersUnavailableError(
      "permission",
      `serveWorkers: cannot start the workers: run access to ${execPath} is not granted; run the launcher with --allow-run`,
    );
  }
  const unstable = runtimeArgs.some((arg) =>
    arg === "--unstable-net" || arg === "--unstable"
  );
  if (sameRuntime && !unstable) {
    return new WorkersUnavailableError(
      "flag",
      `serveWorkers: Deno workers need --unstable-net for reusePort, and runtimeArgs (${
        runtimeArgs.join(" ")
      }) lack it; add it (the default runtimeArgs have it)`,
    );
  }
  return undefined;
}

/**
 * Starts `workers` processes of the server module `module`, restarts any that
 * dies (with backoff; one that keeps dying is given up after `maxFailures`
 * deaths in a row), and (unless `handleSignals` is false) on SIGTERM or
 * SIGINT drains them and exits. The module should create its `Server` with
 * `reusePort: true`, call {@linkcode stopOnSignal} (before `start()`, so a
 * signal that comes right after the port opens is handled), and may read its number
 * from the {@linkcode WORKER_ENV} environment variable.
 *
 * Before it starts anything it checks that the workers can share a port and
 * that it may start them, and throws rather than start workers that could
 * only fail: on a system other than Linux, on Node.js before 22.12 (23.1 on
 * the 23 line), for Deno workers without `--unstable-net` in `runtimeArgs`,
 * and in a Deno launcher without `--allow-run`.
 *
 * @param module The server module: a path or a `file:` URL.
 * @param options How many workers, their arguments, restarts and stopping.
 * @returns The running workers.
 * @throws {TypeError | RangeError} If an option is invalid; the message names it.
 * @throws {WorkersUnavailableError} If the workers could not share a port or
 *   could not be started here; nothing was started.
 *
 * @example
 * ```ts ignore
 * import { serveWorkers } from "@qtk/tcp-framework/workers";
 * const workers = serveWorkers("./server.ts", { workers: 2, handleSignals: false });
 * // ...
 * await workers.stop();
 * ```
 */
export function serveWorkers(
  module: string | URL,
  options: WorkersOptions = {},
): Workers {
  const count = checkCount(
    "workers",
    options.workers ?? (globalThis.navigator?.hardwareConcurrency || 1),
  );
  const stopMs = checkSeconds(
    "stopTimeout",
    options.stopTimeout ?? DEFAULT_STOP_TIMEOUT,
  ) * 1000;
  const maxFailures = checkCountOrInfinity(
    "maxFailures",
    options.maxFailures ?? DEFAULT_MAX_FAILURES,
  );
  const delay = options.restartDelay ?? restartDelay;
  if (typeof delay !== "function") {
    throw new TypeError(
      `Invalid restartDelay ${quote(delay)}: expected a function`,
    );
  }
  const onGiveUp = options.onGiveUp ?? ((worker, failures) => {
    console.error(
      `serveWorkers: worker ${worker} died ${failures} times in a row, each within ${HEALTHY_AFTER} s of its start; not restarting it`,
    );
  });
  if (typeof onGiveUp !== "function") {
    throw new TypeError(
      `Invalid onGiveUp ${quote(onGiveUp)}: expected a function`,
    );
  }
  let path: string;
  if (module instanceof URL || /^file:/.test(String(module))) {
    path = fileURLToPath(module);
  } else if (typeof module === "string" && module.length > 0) {
    path = module;
  } else {
    throw new TypeError(
      `Invalid module ${quote(module)}: expected a path or a file: URL`,
    );
  }
  const execPath = options.execPath ?? process.execPath;
  const runtimeArgs = options.runtimeArgs ?? defaultRuntimeArgs();
  const problem = workersProblem(execPath, runtimeArgs);
  if (problem) throw problem;
  const argv = [...runtimeArgs, path, ...(options.args ?? [])];
  const output = options.output ?? "inherit";

  let stopping: Promise<boolean> | undefined;
  let restarts = 0;
  let givenUp = 0;
  const slots: Slot[] = [];

  // Deno starts workers at once; elsewhere node:child_process loads first.
  let starter: Start | undefined = "Deno" in globalThis ? startDeno : undefined;
  const loaded = starter
    ? Promise.resolve()
    : nodeStarter().then((start) => void (starter = start));
  const launch = (index: number) => {
    const slot = slots[index];
    slot.timer = undefined;
    let done!: () => void;
    slot.exited = new Promise((resolve) => done = resolve);
    const exited = (code: number | null, signal: string | null) => {
      slot.child = undefined;
      slot.cleanExit = code === 0;
      try {
        options.onExit?.(index, code, signal);
      } catch { /* a listener's failure must not stop the restarts */ }
      done();
      if (stopping) return;
      const lived = performance.now() - slot.startedAt;
      slot.attempts = lived >= HEALTHY_AFTER * 1000 ? 1 : slot.attempts + 1;
      if (slot.attempts >= maxFailures) return giveUp(index);
      restarts++;
      slot.timer = setTimeout(() => launch(index), delay(slot.attempts));
    };
    const run = (start: Start) => {
      if (stopping) return done();
      slot.startedAt = performance.now();
      let child: Running;
      try {
        child = start(execPath, argv, {
          ...options.env,
          [WORKER_ENV]: String(index),
        }, output);
      } catch {
        // Cannot start at all (no such executable): a worker that died at
        // once, restarted with backoff like any other, then given up.
        return exited(null, null);
      }
      slot.child = child;
      child.exited.then(({ code, signal }) => exited(code, signal));
    };
    if (starter) run(starter);
    else loaded.then(() => run(starter!));
  };

  const giveUp = (index: number) => {
    const slot = slots[index];
    slot.givenUp = true;
    givenUp++;
    try {
      onGiveUp(index, slot.attempts);
    } catch { /* a listener's failure must not stop the others */ }
    if (slots.every((other) => other.givenUp)) {
      // Nothing left to run: stop, so nothing keeps the launcher waiting.
      stop().then(() => {
        if (options.handleSignals ?? true) process.exit(1);
      });
    }
  };

  for (let i = 0; i < count; i++) {
    slots.push({
      child: undefined,
      startedAt: 0,
      attempts: 0,
      timer: undefined,
      exited: Promise.resolve(),
      cleanExit: false,
      givenUp: false,
    });
  }
  const signals = ["SIGTERM", "SIGINT"];
  let onSignal: (() => void) | undefined;
  const stop = (): Promise<boolean> => {
    stopping ??= (async () => {
      for (const slot of slots) {
        if (slot.timer !== undefined) {
          // Waiting to be restarted: nothing to wait for.
          clearTimeout(slot.timer);
          slot.timer = undefined;
          slot.exited = Promise.resolve();
        }
        slot.child?.kill("SIGTERM");
      }
      await loaded;
      let killTimer: ReturnType<typeof setTimeout> | undefined;
      const all = Promise.all(slots.map((slot) => slot.exited));
      const late = new Promise<void>((resolve) => {
        killTimer = setTimeout(resolve, stopMs);
      });
      const clean = await Promise.race([
        all.then(() => true),
        late.then(() => false),
      ]);
      clearTimeout(killTimer);
      if (!clean) {
        for (const slot of slots) slot.child?.kill("SIGKILL");
        await all;
      }
      if (onSignal) {
        for (const signal of signals) process.off(signal, onSignal);
      }
      return clean && slots.every((slot) => slot.cleanExit && !slot.givenUp);
    })();
    return stopping;
  };

  if (options.handleSignals ?? true) {
    onSignal = () => {
      if (stopping) {
        // A second signal: no more waiting.
        for (const slot of slots) slot.child?.kill("SIGKILL");
        return;
      }
      stop().then((clean) => process.exit(clean ? 0 : 1));
    };
    for (const signal of signals) process.on(signal, onSignal);
  }

  // Only now: a worker that cannot start at all is given up at once with
  // maxFailures 1, and giving up the last one calls stop().
  for (let i = 0; i < count; i++) launch(i);

  return {
    get pids() {
      return slots.flatMap((slot) => slot.child?.pid ?? []);
    },
    get restarts() {
      return restarts;
    },
    get givenUp() {
      return givenUp;
    },
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}

/**
 * The worker's half of {@linkcode serveWorkers}: on the first SIGTERM or
 * SIGINT, stops `server` (which drains it) and then exits the process with
 * code 0 (1 if stopping failed). Later signals are ignored while it drains:
 * the launcher kills a worker that takes longer than its `stopTimeout`.
 *
 * @param server The server (anything with `stop()`), started or not: call it
 *   before `start()`, so a signal that comes as soon as the port is open
 *   finds the listener in place.
 * @returns A function that removes the signal listeners again.
 *
 * @example
 * ```ts ignore
 * import { Server } from "@qtk/tcp-framework";
 * import { stopOnSignal } from "@qtk/tcp-framework/workers";
 * const server = new Server({ port: 8212, reusePort: true });
 * stopOnSignal(server);
 * await server.start();
 * ```
 */
export function stopOnSignal(server: { stop(): Promise<void> }): () => void {
  const signals = ["SIGTERM", "SIGINT"] as const;
  let stopping = false;
  const listener = () => {
    if (stopping) return;
    stopping = true;
    server.stop().then(() => exit(0), () => exit(1));
  };
  const exit = (code: number): void => {
    remove();
    process.exit(code);
  };
  const remove = () => {
    for (const signal of signals) process.off(signal, listener);
  };
  for (const signal of signals) process.on(signal, listener);
  return remove;
}
