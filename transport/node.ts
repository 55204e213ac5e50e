// The Node.js socket adapter: node:net, and node:tls for TLS (both in
// _node_sockets.ts, which Deno and Bun use for TLS too).

import type { Transport } from "./transport.ts";
import { nodeReusePortProblem, reusePortOsProblem } from "../_reuse_port.ts";
import { connectNode, listenNode } from "./_node_sockets.ts";

/**
 * Why Node.js cannot listen with `reusePort` here, if it cannot: the option
 * came in Node.js 22.12 and 23.1; older versions ignore it without a word.
 */
function reusePortProblem(): string | undefined {
  return nodeReusePortProblem(process.versions.node) ??
    reusePortOsProblem("Node.js", process.platform);
}

export const nodeTransport: Transport = {
  listen: (address, accept, options) =>
    listenNode(address, accept, options, reusePortProblem),
  connect: connectNode,
};
