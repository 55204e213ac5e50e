// What both ends of the gRPC echo share, for Node.js: @grpc/grpc-js, and the
// echo service as a plain definition object with byte serializers. No proto
// file and no proto-loader: the payload bytes are the message, as the
// framework's are, so neither side spends anything on a schema.

import { createRequire } from "node:module";

/** One unary method taking and returning bytes as they are. */
export const ECHO_SERVICE = {
  echo: {
    path: "/bench.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: (bytes) => bytes,
    requestDeserialize: (bytes) => bytes,
    responseSerialize: (bytes) => bytes,
    responseDeserialize: (bytes) => bytes,
  },
};

/** @grpc/grpc-js from tools/node_modules (`npm ci --prefix tools`). */
export function loadGrpc() {
  const require = createRequire(
    new URL("../tools/node_modules/", import.meta.url),
  );
  return require("@grpc/grpc-js");
}
