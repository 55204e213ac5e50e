// The PROXY protocol header decoder against golden vectors (the examples of
// HAProxy's proxy-protocol.txt and headers captured from HAProxy 2.6) and
// hostile inputs, whole and a byte at a time.

import assert from "node:assert/strict";
import { test } from "../_harness.ts";
import { fromHex } from "../_hex.ts";
import vectors from "../fixtures/proxy_protocol.json" with { type: "json" };
import {
  decodeProxyHeader,
  PROXY_V1_MAX_LENGTH,
  ProxyHeaderDecoder,
  type ProxyHeaderResult,
} from "../../proxy_protocol.ts";
import { ProtocolError, ProxyProtocolError } from "../../errors.ts";
import {
  formatIPv6,
  inNetworks,
  type Network,
  parseIPv6,
  parseNetwork,
} from "../../_ip.ts";

interface Vector {
  name: string;
  text?: string;
  hex?: string;
  rest?: string;
}

function bytesOf(vector: Vector): Uint8Array {
  return vector.hex !== undefined
    ? fromHex(vector.hex)
    : new TextEncoder().encode(vector.text!);
}

function withRest(vector: Vector): Uint8Array {
  const header = bytesOf(vector);
  const rest = new TextEncoder().encode(vector.rest ?? "");
  const all = new Uint8Array(header.length + rest.length);
  all.set(header);
  all.set(rest, header.length);
  return all;
}

/** Pushes `bytes` a byte at a time; the result and the index that gave it. */
function byteByByte(bytes: Uint8Array): {
  result?: ProxyHeaderResult;
  error?: unknown;
  at: number;
  decoder: ProxyHeaderDecoder;
} {
  const decoder = new ProxyHeaderDecoder();
  for (let i = 0; i < bytes.length; i++) {
    try {
      const result = decoder.push(bytes.subarray(i, i + 1));
      if (result) return { result, at: i, decoder };
    } catch (error) {
      return { error, at: i, decoder };
    }
  }
  return { at: bytes.length, decoder };
}

test(`PROXY golden vectors: ${vectors.valid.length} valid headers decode whole and byte by byte`, () => {
  for (const vector of vectors.valid) {
    const header = bytesOf(vector);
    const all = withRest(vector);
    const { header: got, rest } = decodeProxyHeader(all);
    assert.deepEqual(got, vector.header, vector.name);
    assert.equal(got.length, header.length, vector.name);
    assert.equal(
      new TextDecoder().decode(rest),
      vector.rest ?? "",
      vector.name,
    );

    const one = byteByByte(header);
    assert.deepEqual(one.result?.header, vector.header, vector.name);
    assert.equal(
      one.at,
      header.length - 1,
      `${vector.name}: done at its last byte`,
    );
    assert.equal(one.decoder.pendingBytes, 0);
    assert.ok(one.decoder.done);
    one.decoder.end(); // a decoded header is not truncated
    assert.throws(() => one.decoder.push(new Uint8Array(1)), /already decoded/);
  }
});

// Errors the decoder can tell from the offending byte itself, at that byte.
const EARLY = new Set(["signature", "version", "command", "family", "syntax"]);

test(`PROXY hostile inputs: ${vectors.invalid.length} refused with the right reason, as early as the bytes allow`, () => {
  for (const vector of vectors.invalid) {
    const bytes = bytesOf(vector);
    let whole: unknown;
    try {
      decodeProxyHeader(bytes);
    } catch (error) {
      whole = error;
    }
    assert.ok(whole instanceof ProxyProtocolError, vector.name);
    assert.ok(whole instanceof ProtocolError);
    assert.equal(
      whole.reason,
      vector.reason,
      `${vector.name}: ${whole.message}`,
    );
    assert.equal(
      whole.offset,
      vector.offset,
      `${vector.name}: ${whole.message}`,
    );

    const one = byteByByte(bytes);
    assert.ok(one.error instanceof ProxyProtocolError, vector.name);
    assert.equal(one.error.reason, vector.reason, vector.name);
    assert.equal(one.error.offset, vector.offset, vector.name);
    if (EARLY.has(vector.reason) && vector.offset > 0) {
      assert.equal(
        one.at,
        vector.offset,
        `${vector.name}: refused at its byte`,
      );
    }
    if (vector.reason === "tooLong") {
      assert.ok(
        one.at <= PROXY_V1_MAX_LENGTH,
        `${vector.name}: read ${one.at}`,
      );
    }
    // A refused decoder stays refused, with the same error.
    assert.throws(
      () => one.decoder.push(new Uint8Array([0x50])),
      (again) => again === one.error,
    );
    assert.throws(() => one.decoder.end(), (again) => again === one.error);
  }
});

test(`PROXY truncated headers: ${vectors.truncated.length} wait for more, then end() refuses them`, () => {
  for (const vector of vectors.truncated) {
    const bytes = bytesOf(vector);
    const one = byteByByte(bytes);
    assert.equal(one.error, undefined, vector.name);
    assert.equal(one.result, undefined, vector.name);
    assert.equal(one.decoder.pendingBytes, bytes.length);
    assert.throws(
      () => one.decoder.end(),
      (error) =>
        error instanceof ProxyProtocolError && error.reason === "truncated",
      vector.name,
    );
    assert.throws(
      () => decodeProxyHeader(bytes),
      (error) =>
        error instanceof ProxyProtocolError && error.reason === "truncated",
    );
  }
  // Nothing at all is not a truncated header: a connection may close unused.
  new ProxyHeaderDecoder().end();
});

test("PROXY: a header split across chunks anywhere leaves the same rest", () => {
  const vector = vectors.valid.find((v) => v.rest === "hi" && v.hex)!;
  const all = withRest(vector);
  for (let cut = 1; cut < all.length; cut++) {
    const decoder = new ProxyHeaderDecoder();
    const first = decoder.push(all.subarray(0, cut));
    const result = first ?? decoder.push(all.subarray(cut))!;
    const rest = first
      ? new Uint8Array([...first.rest, ...all.subarray(cut)])
      : result.rest;
    assert.deepEqual(result.header, vector.header);
    assert.equal(new TextDecoder().decode(rest), "hi", `cut at ${cut}`);
  }
});

test("IPv6 text: RFC 5952 output, strict input", () => {
  const cases: Array<[string, string]> = [
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero stays
    ["::", "::"],
    ["1::", "1::"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["0:0:0:0:0:ffff:c000:0201", "::ffff:192.0.2.1"],
  ];
  for (const [input, output] of cases) {
    assert.equal(formatIPv6(parseIPv6(input)!), output, input);
  }
  for (
    const bad of [
      "",
      ":",
      ":::",
      "1:2:3:4:5:6:7:8::",
      "::1.2.3",
      "1.2.3.4::",
      "g::1",
      "1:2:3:4:5:6:7",
    ]
  ) {
    assert.equal(parseIPv6(bad), undefined, bad);
  }
});

test("trusted networks: addresses, prefixes and IPv4-mapped spellings", () => {
  const networks = [
    "127.0.0.1",
    "10.0.0.0/8",
    "fd00::/8",
    "::ffff:192.168.1.0/120",
  ]
    .map((text) => parseNetwork(text)!) as Network[];
  for (
    const yes of [
      "127.0.0.1",
      "::ffff:127.0.0.1",
      "10.200.3.4",
      "fd12::1",
      "192.168.1.77",
    ]
  ) {
    assert.ok(inNetworks(yes, networks), yes);
  }
  for (
    const no of [
      "127.0.0.2",
      "11.0.0.1",
      "fe80::1",
      "192.168.2.1",
      "::1",
      "localhost",
      "",
    ]
  ) {
    assert.ok(!inNetworks(no, networks), no);
  }
  for (
    const bad of [
      "10.0.0.0/33",
      "::/129",
      "10.0.0.0/",
      "10.0.0.0/08",
      "host",
      "1.2.3.4/x",
    ]
  ) {
    assert.equal(parseNetwork(bad), undefined, bad);
  }
  assert.ok(inNetworks("8.8.8.8", [parseNetwork("0.0.0.0/0")!]));
});
