// The echo servers of the gRPC comparison, both run by Node.js (started by
// bench/run.ts with `node`): `framework` is the framework's npm build
// (npm/, from `node tools/build-npm.mjs`), `grpc` is @grpc/grpc-js (from
// tools/node_modules) serving one unary method with byte serializers, as a
// plain service definition object (bench/_node_grpc.mjs).
//
// Usage: node bench/node_rpc_echo_server.mjs framework|grpc
//
// Protocol with the runner, as the other echo servers: prints {"port": n}
// once listening; exits when stdin ends.

import { ECHO_SERVICE, loadGrpc } from "./_node_grpc.mjs";

async function grpcServer() {
  const grpc = loadGrpc();
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    echo(call, callback) {
      callback(null, call.request);
    },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, port) => error ? reject(error) : resolve(port),
    );
  });
  return { port, stop: () => server.forceShutdown() };
}

async function frameworkServer() {
  const { Server } = await import("../npm/mod.js");
  const server = new Server({ host: "127.0.0.1", port: 0 });
  server.on("data", (socket, message) => server.send(socket, message));
  await server.start();
  return { port: server.port, stop: () => server.stop() };
}

const side = process.argv[2];
if (side !== "framework" && side !== "grpc") {
  throw new TypeError(`Expected "framework" or "grpc", got "${side}"`);
}
const server = side === "grpc" ? await grpcServer() : await frameworkServer();
process.stdout.write(JSON.stringify({ port: server.port }) + "\n");
process.stdin.resume();
process.stdin.on("end", async () => {
  await Promise.race([
    server.stop(),
    new Promise((resolve) => setTimeout(resolve, 2000)),
  ]);
  process.exit(0);
});
