/**
 * The command-line tool's view of its process — arguments, stdin, stdout,
 * stderr, files, signals, exit — on Deno (through `Deno.*`) and on Bun or
 * Node.js (through `process` and `node:fs/promises`). Private: nothing here is
 * part of the library's API.
 *
 * @module
 */

import * as fs from "node:fs/promises";

/**
 * The process services the command-line tool uses.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { processIo } from "./_io.ts";
 * const io = await processIo();
 * assert.ok(Array.isArray(io.args));
 * ```
 */
export interface CliIo {
  /** Arguments after the script name. */
  readonly args: readonly string[];
  /** Reads stdin to its end. */
  readStdin(): Promise<Uint8Array>;
  /** Reads a whole file. */
  readFile(path: string): Promise<Uint8Array>;
  /** Writes (creates or truncates) a file. */
  writeFile(path: string, bytes: Uint8Array): Promise<void>;
  /** Writes to stdout; resolves once written. */
  stdout(data: string | Uint8Array): Promise<void>;
  /** Writes to stderr; resolves once written. */
  stderr(data: string | Uint8Array): Promise<void>;
  /** Whether stdout / stderr is a terminal. */
  isTerminal(stream: "stdout" | "stderr"): boolean;
  /** Calls `listener` on SIGINT or SIGTERM; returns a function that stops it. */
  onInterrupt(listener: () => void): () => void;
  /** Ends the process. */
  exit(code: number): never;
}

const encoder = new TextEncoder();

function bytesOf(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? encoder.encode(data) : data;
}

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

function denoIo(): CliIo {
  const writeAll = async (
    stream: { write(bytes: Uint8Array): Promise<number> },
    data: string | Uint8Array,
  ) => {
    const bytes = bytesOf(data);
    for (let at = 0; at < bytes.length;) {
      at += await stream.write(bytes.subarray(at));
    }
  };
  return {
    args: Deno.args,
    async readStdin() {
      return new Uint8Array(
        await new Response(Deno.stdin.readable).arrayBuffer(),
      );
    },
    readFile: (path) => Deno.readFile(path),
    writeFile: (path, bytes) => Deno.writeFile(path, bytes),
    stdout: (data) => writeAll(Deno.stdout, data),
    stderr: (data) => writeAll(Deno.stderr, data),
    isTerminal: (stream) =>
      stream === "stdout" ? Deno.stdout.isTerminal() : Deno.stderr.isTerminal(),
    onInterrupt(listener) {
      for (const signal of SIGNALS) Deno.addSignalListener(signal, listener);
      return () => {
        for (const signal of SIGNALS) {
          Deno.removeSignalListener(signal, listener);
        }
      };
    },
    exit: (code) => Deno.exit(code),
  };
}

// The few members of Node.js' `process` (also Bun's) used here, declared so
// this module type-checks without Node.js types.
interface NodeStream {
  isTTY?: boolean;
  write(bytes: Uint8Array, callback: (error?: unknown) => void): boolean;
}

interface NodeProcess {
  argv: string[];
  stdin: AsyncIterable<Uint8Array>;
  stdout: NodeStream;
  stderr: NodeStream;
  on(signal: string, listener: () => void): unknown;
  off(signal: string, listener: () => void): unknown;
  exit(code: number): never;
}

function processIo_(): CliIo {
  const process = (globalThis as unknown as { process: NodeProcess }).process;
  const write = (stream: NodeStream, data: string | Uint8Array) =>
    new Promise<void>((resolve, reject) =>
      stream.write(
        bytesOf(data),
        (error) => error ? reject(error) : resolve(),
      )
    );
  return {
    args: process.argv.slice(2),
    async readStdin() {
      const chunks: Uint8Array[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk);
      const bytes = new Uint8Array(
        chunks.reduce((sum, chunk) => sum + chunk.length, 0),
      );
      let at = 0;
      for (const chunk of chunks) {
        bytes.set(chunk, at);
        at += chunk.length;
      }
      return bytes;
    },
    async readFile(path) {
      const bytes = await fs.readFile(path);
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    writeFile: (path, bytes) => fs.writeFile(path, bytes),
    stdout: (data) => write(process.stdout, data),
    stderr: (data) => write(process.stderr, data),
    isTerminal: (stream) => process[stream].isTTY === true,
    onInterrupt(listener) {
      for (const signal of SIGNALS) process.on(signal, listener);
      return () => {
        for (const signal of SIGNALS) process.off(signal, listener);
      };
    },
    exit: (code) => process.exit(code),
  };
}

/**
 * The running process' services: Deno's, or those of `process` on Bun and
 * Node.js.
 *
 * @returns The services.
 *
 * @example
 * ```ts
 * import { processIo } from "./_io.ts";
 * const io = await processIo();
 * await io.stderr("hello\n");
 * ```
 */
export function processIo(): Promise<CliIo> {
  return Promise.resolve("Deno" in globalThis ? denoIo() : processIo_());
}
