// Shared test helpers: waiting for events with a bound, and a raw socket that
// speaks bytes, not frames, for playing a misbehaving peer.

import assert from "node:assert/strict";
import { Server } from "../mod.ts";
import {
  runtimeTransport,
  type TransportConnection,
} from "../transport/mod.ts";

export const HOST = "127.0.0.1";
export const encoder = new TextEncoder();
export const decoder = new TextDecoder();

interface OnceTarget {
  // deno-lint-ignore no-explicit-any
  once(type: any, listener: (...args: any[]) => unknown): unknown;
  // deno-lint-ignore no-explicit-any
  off(type: any, listener: (...args: any[]) => unknown): unknown;
}

/** Resolves with the arguments of the next `type` event, or rejects after `ms`. */
export function next<T extends unknown[] = unknown[]>(
  target: OnceTarget,
  type: string,
  ms = 5000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const listener = (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as T);
    };
    const timer = setTimeout(() => {
      target.off(type, listener);
      reject(new Error(`No "${type}" event within ${ms} ms`));
    }, ms);
    target.once(type, listener);
  });
}

/**
 * A payload whose every byte depends on its position (and on `seed`), so a
 * byte copied to the wrong place, or from the wrong payload, shows.
 */
export function patterned(size: number, seed = 0): Uint8Array {
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i++) payload[i] = (i * 7 + (i >> 8) + seed) & 0xff;
  return payload;
}

/**
 * Asserts two byte arrays are equal, naming the first difference (a deep
 * equality diff of megabytes would take longer than the test).
 */
export function assertSameBytes(
  actual: Uint8Array,
  expected: Uint8Array,
  label = "bytes",
): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(
        `${label}: byte ${i} is ${actual[i]}, expected ${expected[i]}`,
      );
    }
  }
}

/**
 * A port nothing listens on: bound a moment ago on 127.0.0.1, then released
 * (connects to it are refused).
 */
export async function freePort(): Promise<number> {
  const listener = await runtimeTransport().listen(
    { hostname: HOST, port: 0 },
    () => ({ received() {}, ended() {} }),
  );
  const port = listener.addr.port;
  await listener.close();
  return port;
}

/** The bytes of `parts`, one after another, in a buffer of their own. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 5 ms until true, or rejects after `ms`. */
export async function until(
  condition: () => boolean,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    }
    await sleep(5);
  }
}

/** A plain TCP connection that records what it receives. */
export class RawSocket {
  received: Uint8Array[] = [];
  ended: Promise<unknown>;
  #connection!: TransportConnection;
  #end!: (error: unknown) => void;
  isEnded = false;

  private constructor() {
    this.ended = new Promise((resolve) => this.#end = resolve);
  }

  static async connect(port: number): Promise<RawSocket> {
    const socket = new RawSocket();
    socket.#connection = await runtimeTransport().connect(
      { hostname: HOST, port },
      () => ({
        received: (chunk) => socket.received.push(chunk),
        ended: (error) => {
          socket.isEnded = true;
          socket.#end(error);
        },
      }),
    );
    return socket;
  }

  get receivedBytes(): number {
    return this.received.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  async write(bytes: Uint8Array): Promise<void> {
    await this.#connection.write(bytes);
  }

  async close(): Promise<void> {
    this.#connection.close();
    await this.ended;
  }
}

/**
 * Why servers cannot share a port (reusePort) here, or undefined where they
 * can: what a server's start() says. For tests' skips, before registration.
 */
export async function reusePortProblem(): Promise<string | undefined> {
  const probe = new Server({ host: HOST, port: 0, reusePort: true });
  try {
    await probe.start();
    return undefined;
  } catch (error) {
    return `reusePort is not available here: ${(error as Error).message}`;
  } finally {
    await probe.stop();
  }
}
