// A Node.js peer built on the real @qtk/tcp-framework 2.0.10 package (installed
// in tools/node_modules as qtk-tcp-framework-2), driven over stdin/stdout by
// tests/interop_v2.test.ts. One line per event, so the test can wait for lines:
//
//   node v2_peer.cjs server [--tick-ms N]        its Server on 127.0.0.1:0
//   node v2_peer.cjs client <port> [--tick-ms N] its Client to 127.0.0.1:<port>
//
// Prints (stdout):  LISTENING <port> | CONNECTED | CLOSED | EXCEPTION <message>
//                   DATA <uuid> <base64>          a data event (server: echoed back)
//                   PING-SENT <uuid>              a PING frame this process wrote
//                   PING-RECEIVED <uuid>          a PING frame this process read
// Reads (stdin):    SEND <uuid> <base64>          client: client.send({uuid, data})
//                   EXIT                          close and exit (as does end of stdin)
//
// Quirks of 2.0.10 worked around here:
// - Server.stop() calls process.exit(0), and Client.close() leaves its 1 s
//   setInterval running forever, so this script ends with process.exit itself.
// - The Server listens on 0.0.0.0 unless told otherwise: host is always given.
// - Server.start() does not wait for the listener; the port is read from the
//   net.Server's "listening" event (through the private _server field).
// - Heartbeat (20 s) and timeout (30 s) count ticks of a hard-coded 1 s
//   setInterval. --tick-ms N makes those 1000 ms intervals run every N ms,
//   so a test sees the real heartbeat code run in about a second.
// - Neither class surfaces PINGs, so every socket the package creates is
//   tapped (net.createConnection / the server's connection event) and the
//   wire bytes are parsed with the package's own Message class.

"use strict";

const path = require("node:path");
const net = require("node:net");
const readline = require("node:readline");

const packageDir = path.join(
  __dirname,
  "..",
  "..",
  "tools",
  "node_modules",
  "qtk-tcp-framework-2",
);
const HOST = "127.0.0.1";

const args = process.argv.slice(2);
const mode = args[0];
const tickAt = args.indexOf("--tick-ms");
const tickMs = tickAt >= 0 ? Number(args[tickAt + 1]) : 1000;

if (tickMs !== 1000) {
  const realSetInterval = globalThis.setInterval;
  globalThis.setInterval = (fn, ms, ...rest) =>
    realSetInterval(fn, ms === 1000 ? tickMs : ms, ...rest);
}

const Message = require(path.join(packageDir, "message"));
const { Server, Client } = require(packageDir);

function print(...parts) {
  process.stdout.write(parts.join(" ") + "\n");
}

/** Records PINGs in both directions of a socket, from the raw bytes. */
function tap(socket) {
  let incoming = Buffer.alloc(0);
  socket.on("data", (chunk) => {
    incoming = Buffer.concat([incoming, chunk]);
    incoming = report(incoming, "PING-RECEIVED");
  });
  const write = socket.write;
  let outgoing = Buffer.alloc(0);
  socket.write = function (chunk, ...rest) {
    outgoing = Buffer.concat([outgoing, Buffer.from(chunk)]);
    outgoing = report(outgoing, "PING-SENT");
    return write.call(this, chunk, ...rest);
  };
}

function report(buffer, label) {
  try {
    while (true) {
      const { consumed, message } = Message.parse(buffer);
      if (consumed === 0) return buffer;
      buffer = buffer.slice(consumed);
      if (message.sign === Message.SIGN_PING) print(label, message.uuid);
    }
  } catch (error) {
    print("EXCEPTION", `tap: ${error.message}`);
    return Buffer.alloc(0);
  }
}

function oneLine(error) {
  return String((error && error.message) || error).replace(/\s+/g, " ");
}

let finish = () => process.exit(0);
let send = () => print("EXCEPTION", "SEND is for client mode");

if (mode === "server") {
  const server = new Server({ host: HOST, port: 0 });
  server.on("connected", () => print("CONNECTED"));
  server.on("closed", () => print("CLOSED"));
  server.on(
    "exception",
    (_socket, error) => print("EXCEPTION", oneLine(error)),
  );
  server.on("data", (socket, { uuid, data }) => {
    print("DATA", uuid, data.toString("base64"));
    server.send(socket, { uuid, data });
  });
  server.start();
  server._server.on("connection", tap);
  server._server.on("listening", () => {
    print("LISTENING", server._server.address().port);
  });
  server._server.on("error", (error) => {
    print("EXCEPTION", oneLine(error));
    process.exit(1);
  });
  finish = () => server.stop(); // calls process.exit(0) itself
} else if (mode === "client") {
  const port = Number(args[1]);
  const createConnection = net.createConnection;
  net.createConnection = function (...rest) {
    const socket = createConnection.apply(this, rest);
    tap(socket);
    return socket;
  };
  const client = new Client({ host: HOST, port });
  client.on("connected", () => print("CONNECTED"));
  client.on("closed", () => print("CLOSED"));
  client.on("exception", (error) => print("EXCEPTION", oneLine(error)));
  client.on("data", ({ uuid, data }) => {
    print("DATA", uuid, data.toString("base64"));
  });
  send = (uuid, data) => client.send({ uuid, data });
  finish = () => {
    client.close();
    process.exit(0);
  };
} else {
  process.stderr.write(
    "usage: v2_peer.cjs server | client <port> [--tick-ms N]\n",
  );
  process.exit(1);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, uuid, base64 = ""] = line.trim().split(" ");
  if (command === "SEND") send(uuid, Buffer.from(base64, "base64"));
  else if (command === "EXIT") finish();
});
process.stdin.on("end", () => finish());
