// In-process A/B of the whole request path between two checkouts of this
// repository: each side's Server and Client echo over loopback in one
// process, in short alternating batches, so load from other processes hits
// both alike (ab_inprocess.ts does the same for FramedConnection alone):
//
//   deno run -A bench/ab_echo.ts /tmp/before .     (or: bun bench/ab_echo.ts …)
//
// Prints the median time per request of each side and their ratio: with 64
// `request()`s in flight (the client's and the server's per-message paths,
// diagnostics checks included), and one at a time. Run it with the sides
// swapped as well.

import { runtimeName, scriptArgs } from "./_runtime.ts";

type Mod = typeof import("../mod.ts");

const [dirA, dirB] = scriptArgs();
if (dirA === undefined || dirB === undefined) {
  throw new TypeError("Usage: ab_echo.ts <checkout A> <checkout B>");
}
const cwd = (globalThis as { process?: { cwd(): string } }).process?.cwd() ??
  Deno.cwd();
const absolute = (dir: string) =>
  new URL(dir.replace(/\/?$/, "/"), `file://${cwd}/`).href;

interface Side {
  server: InstanceType<Mod["Server"]>;
  client: InstanceType<Mod["Client"]>;
}

const sides: Side[] = [];
for (const dir of [dirA, dirB]) {
  const mod: Mod = await import(new URL("mod.ts", absolute(dir)).href);
  const server = new mod.Server({ host: "127.0.0.1", port: 0 });
  server.on("data", (socket, message) => socket.send(message));
  await server.start();
  const client = new mod.Client({ host: "127.0.0.1", port: server.port });
  await client.request(new Uint8Array(1));
  sides.push({ server, client });
}

const payload = new Uint8Array(64);

async function pipelined(client: Side["client"], count: number) {
  let next = 0;
  const lane = async () => {
    while (next < count) {
      next++;
      await client.request(payload);
    }
  };
  await Promise.all(Array.from({ length: 64 }, lane));
}

async function serial(client: Side["client"], count: number) {
  for (let i = 0; i < count; i++) await client.request(payload);
}

const works = [
  { name: "request 64 in flight, 64 B", count: 4000, run: pipelined },
  { name: "request 1 at a time, 64 B", count: 400, run: serial },
];
const ROUNDS = 21;
const WARMUP = 2;
const times = works.map(() => [[], []] as number[][]);
for (let round = 0; round < WARMUP + ROUNDS; round++) {
  for (let w = 0; w < works.length; w++) {
    // Alternate which side goes first.
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    for (const s of order) {
      const start = performance.now();
      await works[w].run(sides[s].client, works[w].count);
      const ns = (performance.now() - start) * 1e6 / works[w].count;
      if (round >= WARMUP) times[w][s].push(ns);
    }
  }
}
for (const { server, client } of sides) {
  await client.close();
  await server.stop();
}

const median = (values: number[]) => {
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
};
console.log(
  `${runtimeName}, median of ${ROUNDS} alternating rounds, ns per request`,
);
console.log("workload                          A         B  B/A");
works.forEach((work, w) => {
  const [a, b] = [median(times[w][0]), median(times[w][1])];
  console.log(
    `${work.name.padEnd(28)} ${a.toFixed(0).padStart(7)} ${
      b.toFixed(0).padStart(9)
    }  ${(b / a).toFixed(3)}`,
  );
});
