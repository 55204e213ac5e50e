// A real HAProxy (mode tcp, balance leastconn, send-proxy-v2, a PING health
// check) in front of two server processes (tests/fixtures/echo_worker.mjs):
// requests spread over both, each server sees the client's own address (not
// HAProxy's, which connects from 127.0.0.2), and a server drained and
// restarted under load loses no request. Skipped, saying so, where haproxy
// is not installed (.ci/run installs it).

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { freePort, HOST, sleep, until } from "./_helpers.ts";
import { type Child, runtimeExecutable, spawn } from "./_spawn.ts";
import { Client, NetworkError, Server } from "../mod.ts";
import { readFileSync } from "node:fs";

const WORKER = decodeURIComponent(
  new URL("./fixtures/echo_worker.mjs", import.meta.url).pathname,
);
/** HAProxy connects to the servers from here, so its address differs. */
const PROXY_SOURCE = "127.0.0.2";
/** A PING frame, protocol 3: what the health check sends and expects back. */
const PING_HEX = "01" +
  Array.from(
    new TextEncoder().encode("00000000-0000-4000-8000-00000000beef"),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("") + "0000000000000000";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The haproxy command that runs (`haproxy -v` exits 0), or undefined. Debian
 * installs it in /usr/sbin, which a non-root user's PATH often lacks.
 */
async function findHaproxy(): Promise<string | undefined> {
  for (
    const command of ["haproxy", "/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
  ) {
    try {
      const child = await spawn(command, ["-v"]);
      await child.closeStdin();
      if (await child.exited === 0) return command;
    } catch { /* not there: try the next */ }
  }
  return undefined;
}

const haproxyCommand = await findHaproxy();
const skip = haproxyCommand === undefined
  ? "haproxy is not installed (apt-get install haproxy)"
  : undefined;

/** Starts an echo_worker with the PROXY protocol on `port` (0: any). */
async function startServer(
  port: number,
): Promise<{ child: Child; port: number; pid: number }> {
  const args = runtime === "deno"
    ? ["run", "--allow-net", "--allow-read", "--allow-env", WORKER]
    : [WORKER];
  const child = await spawn(runtimeExecutable(), [
    ...args,
    String(port),
    "--proxy",
  ]);
  await child.closeStdin();
  const line = await child.waitFor(/^listening /, 10_000);
  const [, bound, pid] = line.split(" ");
  return { child, port: Number(bound), pid: Number(pid) };
}

function config(listen: number, ports: number[]): string {
  return [
    "global",
    "  maxconn 1000",
    "defaults",
    "  mode tcp",
    "  timeout connect 1s",
    "  timeout client 30s",
    "  timeout server 30s",
    // A check's own time limit is otherwise `inter` (100 ms): under a loaded
    // machine a live server's echo can take longer, and fall 1 marked it down.
    // A stopped server still fails its check at once (connection refused).
    "  timeout check 2s",
    "  retries 3",
    "  option redispatch",
    "listen tcp_framework",
    `  bind ${HOST}:${listen}`,
    "  balance leastconn",
    "  option tcp-check",
    "  tcp-check connect default",
    `  tcp-check send-binary ${PING_HEX}`,
    `  tcp-check expect binary ${PING_HEX}`,
    `  default-server send-proxy-v2 check-send-proxy check inter 100ms fall 1 rise 1 source ${PROXY_SOURCE}`,
    ...ports.map((port, i) => `  server s${i} ${HOST}:${port}`),
    "",
  ].join("\n");
}

interface Reply {
  pid: number;
  remote: { hostname: string; port: number };
  proxy: { hostname: string; port: number } | null;
  data: string;
}

/**
 * Two servers behind HAProxy under load from 9 clients; with `drain`, server
 * 0 is drained (SIGTERM: server.stop()) and restarted on its port mid-run.
 */
async function underHaproxy(name: string, drain: boolean): Promise<void> {
  const command = haproxyCommand!;
  const servers = [await startServer(0), await startServer(0)];
  const listen = await freePort();
  // The configuration through a here-document, since the tests may not write
  // files (and Bun's stdin pipe is a socket, which /dev/stdin cannot open).
  const haproxy = await spawn("sh", [
    "-c",
    `exec ${command} -db -f /dev/stdin <<'END'\n${
      config(listen, servers.map((s) => s.port))
    }END\n`,
  ]);
  await haproxy.closeStdin();
  const clients: Client[] = [];
  const byPid = new Map<number, number>();
  let answered = 0;
  let rejected = 0;
  const errors: string[] = [];
  let running = true;
  const loops: Promise<void>[] = [];
  try {
    // Both servers up by the health check: a request through HAProxy works.
    // Until HAProxy listens, the probe's connects are refused: expected.
    const probe = new Client({ host: HOST, port: listen });
    const refused: unknown[] = [];
    probe.on("exception", (error) => refused.push(error));
    clients.push(probe);
    await until(() => probe.connected, 5000, "a connection through HAProxy")
      .catch((error) => {
        throw new Error(`${error.message}; haproxy said: ${haproxy.stderr()}`);
      });
    for (const error of refused) {
      assert.ok(
        error instanceof NetworkError && error.code === "ECONNREFUSED",
        String(error),
      );
    }
    await sleep(300); // three health check rounds
    // Every check (a LOCAL header, then a PING) was answered: none is down.
    assert.doesNotMatch(haproxy.stderr(), /is DOWN/, haproxy.stderr());

    // Load: 8 clients, each sending requests one after another.
    for (let i = 0; i < 8; i++) {
      clients.push(new Client({ host: HOST, port: listen }));
    }
    const loop = async (client: Client, c: number) => {
      // Bounded: a loop that only fails must not spin forever.
      for (let n = 0; running && n < 100_000; n++) {
        try {
          const reply: Reply = JSON.parse(decoder.decode(
            await client.request(encoder.encode(`${c}:${n}`), {
              timeout: 5000,
            }),
          ));
          assert.equal(reply.data, `${c}:${n}`);
          assert.equal(reply.remote.hostname, HOST, "the client's address");
          assert.equal(
            reply.proxy?.hostname,
            PROXY_SOURCE,
            "HAProxy's address",
          );
          byPid.set(reply.pid, (byPid.get(reply.pid) ?? 0) + 1);
          answered++;
        } catch (error) {
          rejected++;
          if (errors.length < 5) errors.push(String(error));
        }
      }
    };
    loops.push(...clients.map(loop));

    // Until both servers have answered: under load one may take a while to
    // answer its first requests while the other's clients run ahead.
    await until(
      () => (answered >= 200 && byPid.size === 2) || errors.length >= 5,
      10_000,
      "200 answers, from both servers",
    ).catch(() => {/* the assertions below say what is missing */});
    assert.deepEqual(errors, [], "before any server is touched");
    const pids = servers.map((s) => s.pid);
    assert.equal(
      byPid.size,
      2,
      `answers by pid: ${JSON.stringify([...byPid])}`,
    );

    const before = answered;
    if (!drain) {
      await until(() => answered >= 400, 10_000, "400 answers");
      running = false;
      await Promise.all(loops);
      console.log(
        `haproxy[${runtime}] ${name}: ${answered} answered, ${rejected} rejected; by server pid ${
          JSON.stringify(Object.fromEntries(byPid))
        }`,
      );
      assert.equal(rejected, 0, errors.join("; "));
      return;
    }

    // Drain server 0 (SIGTERM: server.stop()) and start it again on its port.
    servers[0].child.signal("SIGTERM");
    assert.equal(await servers[0].child.exited, 0, servers[0].child.stderr());
    servers[0] = await startServer(servers[0].port);
    await sleep(300); // the health check marks it up again
    // The old clients moved to server 1; new ones go to the emptier server 0.
    for (let i = 0; i < 4; i++) {
      const client = new Client({ host: HOST, port: listen });
      clients.push(client);
      loops.push(loop(client, clients.length - 1));
    }
    await until(
      () => (byPid.get(servers[0].pid) ?? 0) >= 50,
      10_000,
      "50 answers from the restarted server",
    );
    running = false;
    await Promise.all(loops);

    console.log(
      `haproxy[${runtime}] ${name}: ${answered} answered (${before} before the drain), ${rejected} rejected; by server pid ${
        JSON.stringify(Object.fromEntries(byPid))
      }; restarted pid ${servers[0].pid} (was ${pids[0]})`,
    );
    assert.equal(rejected, 0, errors.join("; "));
  } finally {
    running = false;
    await Promise.all(clients.map((client) => client.close()));
    await Promise.all(loops);
    await haproxy.kill();
    for (const server of servers) await server.child.kill();
  }
}

test(
  "HAProxy (mode tcp, send-proxy-v2, leastconn, PING health check) in front of two servers: requests spread over both, each sees the client's own address",
  async () => {
    await underHaproxy("spread", false);
  },
  { skip },
);

test(
  "HAProxy in front of two servers: one drained (SIGTERM: server.stop()) and restarted under load, 0 requests rejected",
  async () => {
    await underHaproxy("drain", true);
  },
  { skip },
);

/**
 * examples/haproxy.cfg itself, for two servers on this machine: the same
 * file with only its addresses replaced (the frontend's bind and the
 * servers'), and its check interval shortened from 1 s to 100 ms, so the
 * test sees many checks in little time.
 */
function exampleConfig(listen: number, ports: number[]): string {
  const file = new URL(
    import.meta.url.endsWith(".js")
      ? "../../examples/haproxy.cfg" // npm/tests → the checkout's examples
      : "../examples/haproxy.cfg",
    import.meta.url,
  );
  const text = readFileSync(file, "utf8");
  const replaced = text
    .replace(/^( *bind) :8212$/m, `$1 ${HOST}:${listen}`)
    .replace(/^( *server app1) \S+$/m, `$1 ${HOST}:${ports[0]}`)
    .replace(/^( *server app2) \S+$/m, `$1 ${HOST}:${ports[1]}`)
    .replace(/ inter 1s /, " inter 100ms ");
  for (const needed of [`${HOST}:${listen}`, ...ports.map(String), "100ms"]) {
    assert.ok(
      replaced.includes(needed),
      `examples/haproxy.cfg changed: ${needed}`,
    );
  }
  return replaced;
}

test(
  "examples/haproxy.cfg starts under a file limit of 1024 (ulimit -n), and its health checks are quiet: closed and counted, never an exception",
  async () => {
    const command = haproxyCommand!;
    const exceptions: string[] = [];
    const servers: Server[] = [];
    for (let i = 0; i < 2; i++) {
      const server = new Server({
        host: HOST,
        port: 0,
        proxyProtocol: { trusted: ["127.0.0.0/8"] },
      });
      server.on("data", (socket, message) => socket.send(message));
      server.on("exception", (_socket, error) => {
        exceptions.push(`server ${i}: ${(error as Error)?.message ?? error}`);
      });
      servers.push(server);
      await server.start();
    }
    const listen = await freePort();
    const haproxy = await spawn("sh", [
      "-c",
      `ulimit -n 1024 && exec ${command} -db -f /dev/stdin <<'END'\n${
        exampleConfig(listen, servers.map((server) => server.port))
      }END\n`,
    ]);
    let client: Client | undefined;
    try {
      await haproxy.closeStdin();
      // Three checks of each server: a connection with a LOCAL PROXY header
      // and a PING, the echo, then HAProxy's reset.
      await until(
        () => servers.every((server) => server.stats().quietResets >= 3),
        10_000,
        "three quiet health checks of each server",
      ).catch((error) => {
        throw new Error(
          `${error.message}: quietResets ${
            servers.map((server) => server.stats().quietResets)
          }, exceptions ${
            JSON.stringify(exceptions)
          }; haproxy said: ${haproxy.stderr()}`,
        );
      });
      // HAProxy listens (it checked): a request through it is answered.
      client = new Client({ host: HOST, port: listen });
      const reply = await client.request(encoder.encode("through"), {
        timeout: 5000,
      });
      assert.equal(decoder.decode(reply), "through");
      const checks = servers.map((server) => server.stats().quietResets);
      console.log(
        `haproxy[${runtime}] example: ${checks} quiet health checks, ${exceptions.length} exceptions`,
      );
      assert.deepEqual(exceptions, []);
    } finally {
      await client?.close();
      await haproxy.kill();
      for (const server of servers) await server.stop();
    }
  },
  { skip },
);
