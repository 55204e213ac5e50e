// The PROXY protocol header fuzzer, beside the frame decoder's (tests/_fuzz.ts,
// whose PRNG and case seeding it shares): run in short by
// tests/unit/fuzz.test.ts and at length by tests/fuzz_long.ts. Every case
// comes from (seed, index).
//
// A case is a header (v1 TCP4/TCP6/UNKNOWN in varied spellings, v2 of every
// family with random TLVs, LOCAL), some bytes after it, maybe mutated (bit
// flips, bytes from the v1 alphabet, truncation, insertion, deletion, a new v2
// length), cut into chunks. An independent reference, which sees the whole
// stream and validates addresses with the URL parser rather than the module's
// own, says what the stream is: a header and where the rest begins, an error
// (its reason), or an incomplete header. The ProxyHeaderDecoder, fed the
// chunks, must agree, never throw anything but a ProxyProtocolError, and
// never hold more than PROXY_V2_MAX_LENGTH bytes.

import { caseSeed, Rng } from "./_fuzz.ts";
import {
  PROXY_V2_MAX_LENGTH,
  type ProxyHeader,
  ProxyHeaderDecoder,
} from "../proxy_protocol.ts";
import { ProxyProtocolError } from "../errors.ts";

const SIGNATURE = [
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
];

/** What the reference finds at the start of a whole stream. */
export type ProxyExpected =
  | { kind: "header"; header: ProxyHeader }
  | { kind: "error"; reason: string }
  | { kind: "incomplete" };

const IPV4 =
  /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const PORT = /^(0|[1-9]\d{0,4})$/;

/** IPv6 text in RFC 5952 form through the URL parser, or undefined. */
function refIPv6(text: string): string | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return undefined;
  let host: string;
  try {
    host = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  // The URL parser writes a mapped address in hex; RFC 5952 as a dotted quad.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped) {
    const hi = parseInt(mapped[1], 16);
    const lo = parseInt(mapped[2], 16);
    return `::ffff:${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return host;
}

function refV1(bytes: Uint8Array): ProxyExpected {
  const prefix = "PROXY ";
  for (let i = 0; i < Math.min(6, bytes.length); i++) {
    if (bytes[i] !== prefix.charCodeAt(i)) {
      return { kind: "error", reason: "signature" };
    }
  }
  let end = -1;
  for (let i = 6; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x0a) {
      if (bytes[i - 1] !== 0x0d) return { kind: "error", reason: "syntax" };
      end = i;
      break;
    }
    if (bytes[i - 1] === 0x0d) return { kind: "error", reason: "syntax" };
    if (b !== 0x0d && (b < 0x20 || b > 0x7e)) {
      return { kind: "error", reason: "syntax" };
    }
    if (i >= 106) return { kind: "error", reason: "tooLong" };
  }
  if (end < 0) return { kind: "incomplete" };
  const line = new TextDecoder().decode(bytes.subarray(0, end - 1));
  const length = end + 1;
  if (/^PROXY UNKNOWN( |$)/.test(line)) {
    return {
      kind: "header",
      header: { version: 1, command: "PROXY", family: "UNKNOWN", length },
    };
  }
  const family = line.split(" ")[1];
  if (family !== "TCP4" && family !== "TCP6") {
    return { kind: "error", reason: "family" };
  }
  const m = /^PROXY TCP[46] ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+)$/.exec(line);
  if (!m) return { kind: "error", reason: "syntax" };
  const hosts: string[] = [];
  for (const text of [m[1], m[2]]) {
    const host = family === "TCP4"
      ? (IPV4.test(text) ? text : undefined)
      : refIPv6(text);
    if (host === undefined) return { kind: "error", reason: "address" };
    hosts.push(host);
  }
  const ports: number[] = [];
  for (const text of [m[3], m[4]]) {
    if (!PORT.test(text) || Number(text) > 65535) {
      return { kind: "error", reason: "port" };
    }
    ports.push(Number(text));
  }
  return {
    kind: "header",
    header: {
      version: 1,
      command: "PROXY",
      family,
      source: { hostname: hosts[0], port: ports[0] },
      destination: { hostname: hosts[1], port: ports[1] },
      length,
    },
  };
}

function refV2(bytes: Uint8Array): ProxyExpected {
  for (let i = 0; i < Math.min(12, bytes.length); i++) {
    if (bytes[i] !== SIGNATURE[i]) {
      return { kind: "error", reason: "signature" };
    }
  }
  if (bytes.length > 12) {
    if (bytes[12] >> 4 !== 2) return { kind: "error", reason: "version" };
    if ((bytes[12] & 15) > 1) return { kind: "error", reason: "command" };
  }
  const proxy = (bytes[12] & 15) === 1;
  const sizes = new Map([
    [0x00, 0],
    [0x11, 12],
    [0x12, 12],
    [0x21, 36],
    [
      0x22,
      36,
    ],
    [0x31, 216],
    [0x32, 216],
  ]);
  if (bytes.length > 13 && proxy && !sizes.has(bytes[13])) {
    return { kind: "error", reason: "family" };
  }
  if (bytes.length < 16) return { kind: "incomplete" };
  const length = bytes[14] * 256 + bytes[15];
  const total = 16 + length;
  if (total > 4096) return { kind: "error", reason: "tooLong" };
  const addresses = proxy ? sizes.get(bytes[13])! : 0;
  if (length < addresses) return { kind: "error", reason: "length" };
  if (bytes.length < total) return { kind: "incomplete" };
  if (!proxy) {
    return {
      kind: "header",
      header: {
        version: 2,
        command: "LOCAL",
        family: "UNKNOWN",
        length: total,
      },
    };
  }
  for (let at = 16 + addresses; at < total;) {
    if (at + 3 > total) return { kind: "error", reason: "length" };
    at += 3 + bytes[at + 1] * 256 + bytes[at + 2];
    if (at > total) return { kind: "error", reason: "length" };
  }
  const port = (at: number) => bytes[at] * 256 + bytes[at + 1];
  const base = {
    version: 2 as const,
    command: "PROXY" as const,
    length: total,
  };
  if (bytes[13] === 0x11) {
    const ip = (at: number) => Array.from(bytes.subarray(at, at + 4)).join(".");
    return {
      kind: "header",
      header: {
        ...base,
        family: "TCP4",
        source: { hostname: ip(16), port: port(24) },
        destination: { hostname: ip(20), port: port(26) },
      },
    };
  }
  if (bytes[13] === 0x21) {
    const ip = (at: number) => {
      const groups = [];
      for (let i = 0; i < 8; i++) groups.push(port(at + 2 * i).toString(16));
      return refIPv6(groups.join(":"))!;
    };
    return {
      kind: "header",
      header: {
        ...base,
        family: "TCP6",
        source: { hostname: ip(16), port: port(48) },
        destination: { hostname: ip(32), port: port(50) },
      },
    };
  }
  if (bytes[13] === 0x31) {
    const path = (at: number) => {
      const field = bytes.subarray(at, at + 108);
      const nul = field.indexOf(0);
      return new TextDecoder().decode(nul < 0 ? field : field.subarray(0, nul));
    };
    return {
      kind: "header",
      header: {
        ...base,
        family: "UNIX",
        source: { hostname: path(16), port: 0 },
        destination: { hostname: path(124), port: 0 },
      },
    };
  }
  return { kind: "header", header: { ...base, family: "UNKNOWN" } };
}

/** The reference: what a whole stream starts with. */
export function proxyReference(bytes: Uint8Array): ProxyExpected {
  if (bytes.length === 0) return { kind: "incomplete" };
  if (bytes[0] === 0x50) return refV1(bytes);
  if (bytes[0] === 0x0d) return refV2(bytes);
  return { kind: "error", reason: "signature" };
}

/** One generated case. */
export interface ProxyFuzzCase {
  bytes: Uint8Array;
  chunks: Uint8Array[];
  mutation: string;
}

function ipv4Text(rng: Rng): string {
  return Array.from(rng.bytes(4)).join(".");
}

function ipv6Text(rng: Rng): string {
  const groups = Array.from(
    { length: 8 },
    () => rng.chance(0.4) ? 0 : rng.int(0x10000),
  );
  const style = rng.int(4);
  if (style === 0) {
    return groups.map((g) => g.toString(16).padStart(4, "0")).join(":");
  }
  if (style === 1) {
    return groups.map((g) => g.toString(16).toUpperCase()).join(":");
  }
  if (style === 2) return `::ffff:${ipv4Text(rng)}`;
  // One run of zeros, maybe not the longest, written as "::".
  const from = rng.int(8);
  const to = from + 1 + rng.int(8 - from);
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(":");
  return `${hex(groups.slice(0, from))}::${hex(groups.slice(to))}`;
}

const V1_ALPHABET = "PROXY TCP46UNKW0123456789abcdefABCDEF:. \r\n";

function baseHeader(rng: Rng): { bytes: number[]; kind: string } {
  const kind = rng.int(10);
  const text = (s: string) => Array.from(new TextEncoder().encode(s));
  if (kind === 0) {
    return {
      bytes: text(
        `PROXY TCP4 ${ipv4Text(rng)} ${ipv4Text(rng)} ${rng.int(65536)} ${
          rng.int(65536)
        }\r\n`,
      ),
      kind: "v1 TCP4",
    };
  }
  if (kind === 1) {
    return {
      bytes: text(
        `PROXY TCP6 ${ipv6Text(rng)} ${ipv6Text(rng)} ${rng.int(65536)} ${
          rng.int(65536)
        }\r\n`,
      ),
      kind: "v1 TCP6",
    };
  }
  if (kind === 2) {
    const junk = rng.chance(0.5)
      ? ""
      : " " + Array.from({ length: rng.int(90) }, () =>
        rng.pick([...V1_ALPHABET.slice(0, -2)])).join("");
    return { bytes: text(`PROXY UNKNOWN${junk}\r\n`), kind: "v1 UNKNOWN" };
  }
  if (kind === 3) {
    return { bytes: Array.from(rng.bytes(rng.int(40))), kind: "random" };
  }
  // v2
  const local = kind === 4;
  const family = rng.pick([
    0x00,
    0x11,
    0x11,
    0x12,
    0x21,
    0x21,
    0x22,
    0x31,
    0x32,
  ]);
  const addressLength = { 0: 0, 1: 12, 2: 36, 3: 216 }[family >> 4]!;
  const body = Array.from(rng.bytes(addressLength));
  if (family >> 4 === 3) {
    // Paths: printable, NUL-terminated (or filling the field).
    for (const start of [0, 108]) {
      const n = rng.int(109);
      for (let i = 0; i < 108; i++) {
        body[start + i] = i < n ? 0x21 + rng.int(94) : 0;
      }
    }
  }
  const tlvs = rng.int(4);
  for (let i = 0; i < tlvs; i++) {
    const n = rng.chance(0.1) ? 200 + rng.int(300) : rng.int(20);
    body.push(rng.pick([0x01, 0x02, 0x03, 0x04, 0x05, 0x20, 0x30, 0xe0, 0xff]));
    body.push(n >> 8, n & 255, ...rng.bytes(n));
  }
  return {
    bytes: [
      ...SIGNATURE,
      local ? 0x20 : 0x21,
      family,
      body.length >> 8,
      body.length & 255,
      ...body,
    ],
    kind: local ? "v2 LOCAL" : `v2 0x${family.toString(16)}`,
  };
}

/** Builds case `index` of the run seeded with `seed`. */
export function generateProxy(seed: number, index: number): ProxyFuzzCase {
  const rng = new Rng(caseSeed(seed ^ 0x5052_4f58, index));
  const base = baseHeader(rng);
  let bytes = [...base.bytes, ...rng.bytes(rng.int(30))];
  const mutations = [base.kind];
  const rounds = rng.chance(0.35) ? 0 : 1 + rng.int(2);
  for (let round = 0; round < rounds; round++) {
    const at = rng.int(Math.min(bytes.length, base.bytes.length + 2) + 1);
    const kind = rng.int(7);
    if (kind === 0 && at < bytes.length) {
      bytes[at] ^= 1 << rng.int(8);
      mutations.push(`bit@${at}`);
    } else if (kind === 1 && at < bytes.length) {
      bytes[at] = V1_ALPHABET.charCodeAt(rng.int(V1_ALPHABET.length));
      mutations.push(`char@${at}`);
    } else if (kind === 2) {
      bytes = bytes.slice(0, at);
      mutations.push(`truncate@${at}`);
    } else if (kind === 3) {
      const extra = rng.chance(0.5)
        ? [V1_ALPHABET.charCodeAt(rng.int(V1_ALPHABET.length))]
        : Array.from(rng.bytes(1 + rng.int(5)));
      bytes.splice(at, 0, ...extra);
      mutations.push(`insert@${at}`);
    } else if (kind === 4 && at < bytes.length) {
      bytes.splice(at, 1);
      mutations.push(`delete@${at}`);
    } else if (kind === 5 && bytes.length >= 16 && bytes[0] === 0x0d) {
      const length = rng.chance(0.5) ? rng.int(300) : rng.int(0x10000);
      bytes[14] = length >> 8;
      bytes[15] = length & 255;
      mutations.push(`length=${length}`);
    } else {
      mutations.push("none");
    }
  }
  const all = Uint8Array.from(bytes);
  const chunks: Uint8Array[] = [];
  const mode = rng.int(4);
  if (mode === 0) chunks.push(all);
  else {
    const largest = mode === 1 ? 1 : mode === 2 ? 8 : 64;
    for (let i = 0; i < all.length;) {
      const size = rng.chance(0.05) ? 0 : 1 + rng.int(largest);
      chunks.push(all.subarray(i, i + size));
      i += size;
    }
  }
  return {
    bytes: all,
    chunks: chunks.map((chunk) => chunk.slice()),
    mutation: mutations.join(","),
  };
}

/** Runs one case; undefined if the decoder agreed, else what went wrong. */
export function checkProxy(fuzzCase: ProxyFuzzCase): string | undefined {
  const expected = proxyReference(fuzzCase.bytes);
  const decoder = new ProxyHeaderDecoder();
  let header: ProxyHeader | undefined;
  let restBytes = 0;
  let thrown: unknown;
  for (const chunk of fuzzCase.chunks) {
    if (header) {
      restBytes += chunk.length;
      continue;
    }
    try {
      const result = decoder.push(chunk);
      if (result) {
        header = result.header;
        restBytes = result.rest.length;
      }
    } catch (error) {
      thrown = error;
      break;
    }
    if (decoder.pendingBytes > PROXY_V2_MAX_LENGTH) {
      return `holds ${decoder.pendingBytes} bytes`;
    }
  }
  if (thrown !== undefined && !(thrown instanceof ProxyProtocolError)) {
    return `threw a non-ProxyProtocolError: ${String(thrown)}`;
  }
  if (expected.kind === "header") {
    if (!header) {
      return `expected a ${expected.header.family} header, got ${
        thrown ? String(thrown) : "none"
      }`;
    }
    const a = canonical(header);
    const b = canonical(expected.header);
    if (a !== b) return `header ${a}, expected ${b}`;
    if (restBytes !== fuzzCase.bytes.length - header.length) {
      return `rest of ${restBytes} bytes, expected ${
        fuzzCase.bytes.length - header.length
      }`;
    }
    return undefined;
  }
  if (header) {
    return `decoded ${JSON.stringify(header)}, expected ${expected.kind}`;
  }
  if (expected.kind === "error") {
    if (!(thrown instanceof ProxyProtocolError)) {
      return `expected a ${expected.reason} error, got none`;
    }
    if (thrown.reason !== expected.reason) {
      return `reason ${thrown.reason} (${thrown.message}), expected ${expected.reason}`;
    }
    return undefined;
  }
  if (thrown) return `threw ${String(thrown)} on an incomplete header`;
  try {
    decoder.end();
    if (fuzzCase.bytes.length > 0) return "end() accepted a partial header";
  } catch (error) {
    if (
      !(error instanceof ProxyProtocolError) || error.reason !== "truncated"
    ) {
      return `end() threw ${String(error)}`;
    }
  }
  return undefined;
}

/** JSON of a header with its keys in a fixed order. */
function canonical(header: ProxyHeader): string {
  const { version, command, family, source, destination, length } = header;
  return JSON.stringify({
    version,
    command,
    family,
    source,
    destination,
    length,
  });
}

/** Result of a run. */
export interface ProxyFuzzReport {
  seed: number;
  cases: number;
  failed: number;
  failures: Array<{ index: number; mutation: string; problem: string }>;
  /** Outcomes: "header", "incomplete", or an error reason. */
  outcomes: Record<string, number>;
}

/** Runs cases [from, from + count) of `seed`, keeping the first 20 failures. */
export function runProxy(
  seed: number,
  count: number,
  from = 0,
): ProxyFuzzReport {
  const report: ProxyFuzzReport = {
    seed,
    cases: 0,
    failed: 0,
    failures: [],
    outcomes: {},
  };
  for (let index = from; index < from + count; index++) {
    const fuzzCase = generateProxy(seed, index);
    let problem: string | undefined;
    try {
      problem = checkProxy(fuzzCase);
    } catch (error) {
      problem = `the checker itself threw: ${String(error)}`;
    }
    const expected = proxyReference(fuzzCase.bytes);
    const outcome = expected.kind === "error" ? expected.reason : expected.kind;
    report.outcomes[outcome] = (report.outcomes[outcome] ?? 0) + 1;
    report.cases++;
    if (problem !== undefined) {
      report.failed++;
      if (report.failures.length < 20) {
        report.failures.push({ index, mutation: fuzzCase.mutation, problem });
      }
    }
  }
  return report;
}
