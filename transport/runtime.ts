/**
 * The transport of the runtime this code runs on, and the only module that
 * chooses one: Deno's or Bun's own sockets, or `node:net` / `node:tls`
 * elsewhere (Node.js). Only that runtime's adapter is ever loaded, by a
 * dynamic import on the first `listen` or `connect`: a Deno or Bun program
 * never loads the Node.js modules, a Node.js one never loads the others, and
 * a program that brings its own {@linkcode Transport} (or never opens a
 * socket) loads none.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { runtimeTransport } from "@qtk/tcp-framework/transport";
 * assert.equal(typeof runtimeTransport().connect, "function");
 * ```
 *
 * @module
 */

import type {
  Accept,
  ConnectOptions,
  ListenOptions,
  NetAddress,
  Transport,
  TransportConnection,
  TransportListener,
} from "./transport.ts";
import { networkError } from "../_network_error.ts";

// Not a literal, so that Deno's module graph does not follow it: Deno loads
// (and `deno info` lists) every module a literal `import()` names, and this
// adapter brings node:net and node:tls. The npm build compiles it to `.js`.
const NODE_ADAPTER = import.meta.url.endsWith(".ts")
  ? "./node.ts"
  : "./node.js";

async function loadAdapter(): Promise<Transport> {
  if ("Deno" in globalThis) return (await import("./deno.ts")).denoTransport;
  if ("Bun" in globalThis) return (await import("./bun.ts")).bunTransport;
  const node: { nodeTransport: Transport } = await import(NODE_ADAPTER);
  return node.nodeTransport;
}

// Loaded on the first listen or connect, not as this module is: every
// Server and Client imports this module for its default transport, so loading
// here would load the adapter (and, on Node.js, node:net and node:tls) for a
// caller who brings its own transport too. The first listen or connect waits
// for it instead: about 4 ms on Node.js 20 (node:net and node:tls), which
// the old eager load hid only when the program did something else first. A
// failure is kept, and reported by every call that awaits it.
let loading: Promise<Transport> | undefined;

/**
 * Forwards to the adapter once it is loaded: both calls of the contract are
 * asynchronous anyway, so callers see no difference.
 */
class RuntimeTransport implements Transport {
  #adapter: Transport | undefined;

  async #load(): Promise<Transport> {
    return this.#adapter = await (loading ??= loadAdapter());
  }

  async listen(
    address: NetAddress,
    accept: Accept,
    options?: ListenOptions,
  ): Promise<TransportListener> {
    const adapter = this.#adapter ?? await this.#load();
    try {
      return await adapter.listen(address, accept, options);
    } catch (error) {
      throw networkError("listen", address, error);
    }
  }

  async connect(
    address: NetAddress,
    accept: Accept,
    options?: ConnectOptions,
  ): Promise<TransportConnection> {
    const adapter = this.#adapter ?? await this.#load();
    try {
      return await adapter.connect(address, accept, options);
    } catch (error) {
      throw networkError("connect", address, error);
    }
  }
}

let transport: Transport | undefined;

/**
 * The transport of the runtime this code runs on: Deno's or Bun's own
 * sockets, or `node:net` / `node:tls` elsewhere (Node.js). Its adapter is
 * loaded by the first `listen` or `connect`, which waits for it.
 *
 * @returns The transport (always the same object).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { runtimeTransport } from "@qtk/tcp-framework/transport";
 * assert.equal(runtimeTransport(), runtimeTransport());
 * const listener = await runtimeTransport().listen({ hostname: "127.0.0.1", port: 0 }, (connection) => ({
 *   received: (chunk) => connection.write(chunk),
 *   ended: () => {},
 * }));
 * assert.ok(listener.addr.port > 0);
 * await listener.close();
 * ```
 */
export function runtimeTransport(): Transport {
  return transport ??= new RuntimeTransport();
}
