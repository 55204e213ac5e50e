/**
 * The transport of the runtime this code runs on, and the only module that
 * chooses one: Deno's or Bun's own sockets, or `node:net` / `node:tls`
 * elsewhere (Node.js). Only that runtime's adapter is ever loaded, on the
 * first `listen` or `connect`, so a Deno or Bun program never loads the
 * Node.js modules and a Node.js one never loads the others.
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

/**
 * Forwards to the adapter, which it loads on first use: both calls of the
 * contract are asynchronous anyway, so callers see no difference.
 */
class RuntimeTransport implements Transport {
  #adapter: Transport | undefined;
  #loading: Promise<Transport> | undefined;

  async #load(): Promise<Transport> {
    this.#loading ??= loadAdapter();
    return this.#adapter = await this.#loading;
  }

  async listen(
    address: NetAddress,
    accept: Accept,
    options?: ListenOptions,
  ): Promise<TransportListener> {
    const adapter = this.#adapter ?? await this.#load();
    return await adapter.listen(address, accept, options);
  }

  async connect(
    address: NetAddress,
    accept: Accept,
    options?: ConnectOptions,
  ): Promise<TransportConnection> {
    const adapter = this.#adapter ?? await this.#load();
    return await adapter.connect(address, accept, options);
  }
}

let transport: Transport | undefined;

/**
 * The transport of the runtime this code runs on: Deno's or Bun's own
 * sockets, or `node:net` / `node:tls` elsewhere (Node.js). Its adapter is
 * loaded on the first `listen` or `connect`.
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
