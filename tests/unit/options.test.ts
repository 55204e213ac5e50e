// The option tables without a socket: a row needs a check, every options
// object refuses an unknown key with its suggestion, and the defaults are the
// tables'.

import assert from "node:assert/strict";
import { test } from "../_harness.ts";
import {
  optionDefaults,
  type OptionRow,
  type OptionTable,
  parseOptions,
  refuseUnknownKeys,
} from "../../_option_table.ts";
import { checkBoolean, checkSeconds } from "../../_checks.ts";
import {
  CONNECTION_TABLE,
  DEFAULT_GRACE_PERIOD,
  DEFAULT_MAX_BUFFERED_BYTES,
  DEFAULT_TIMEOUT,
} from "../../_options.ts";
import { DEFAULT_DRAIN_SPREAD, SERVER_TABLE } from "../../_server_options.ts";
import {
  CLIENT_TABLE,
  DEFAULT_MAX_QUEUED_MESSAGES,
  DEFAULT_REQUEST_TIMEOUT,
  REQUEST_TABLE,
} from "../../client/_options.ts";
import { SEND_TABLE, wantsTransfer } from "../../message.ts";
import {
  checkClientTls,
  checkServerTls,
  CLIENT_TLS_TABLE,
  SERVER_TLS_TABLE,
} from "../../_tls_options.ts";
import {
  DEFAULT_PROXY_HEADER_TIMEOUT,
  parseProxyOption,
  PROXY_PROTOCOL_TABLE,
} from "../../_proxy_gate.ts";
import { OUTLIER_TABLE, parseOutlierOptions } from "../../client/_outliers.ts";
import { DEFAULT_MAX_FRAME_SIZE } from "../../codec.ts";
import { Client, Server } from "../../mod.ts";

test("options: a row without a check, or a table out of step with its interface, does not type-check", () => {
  // @ts-expect-error: a row needs its check.
  const noCheck: OptionRow = { doc: "a flag" };
  interface Two {
    one?: boolean;
    two?: number;
  }
  const missing = {
    one: { check: checkBoolean, doc: "one" },
    // @ts-expect-error: `two` has no row.
  } satisfies OptionTable<Two>;
  const extra = {
    one: { check: checkBoolean, doc: "one" },
    two: { check: checkSeconds, doc: "two" },
    // @ts-expect-error: `three` is no key of Two.
    three: { check: checkSeconds, doc: "three" },
  } satisfies OptionTable<Two>;
  assert.ok(noCheck && missing && extra);
});

/** Calls `fn` and returns what it threw. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  assert.fail("expected a throw");
}

test("options: every options object refuses an unknown key, with its suggestion", () => {
  const cases: Array<[string, () => unknown]> = [
    [
      'Unknown option "hearbeat" (did you mean "heartbeat"?)',
      () => new Server({ port: 0, hearbeat: 1 } as never),
    ],
    [
      'Unknown option "reconect" (did you mean "reconnect"?)',
      () => new Client({ port: 9, reconect: false } as never),
    ],
    [
      'Unknown tls option "kye" (did you mean "key"?)',
      () => checkServerTls("tls", { cert: "", kye: "" }),
    ],
    [
      'Unknown tls option "serverNmae" (did you mean "serverName"?)',
      () => checkClientTls("tls", { serverNmae: "x" }),
    ],
    [
      'Unknown proxyProtocol option "timeut" (did you mean "timeout"?)',
      () => parseProxyOption({ timeut: 3 }),
    ],
    [
      'Unknown outlierDetection option "slowfactor" (did you mean "slowFactor"?)',
      () => parseOutlierOptions({ slowfactor: 2 }),
    ],
    [
      'Unknown send option "transfr" (did you mean "transfer"?)',
      () => wantsTransfer({ transfr: true } as never),
    ],
    [
      'Unknown request option "timout" (did you mean "timeout"?)',
      () => refuseUnknownKeys(REQUEST_TABLE, { timout: 5 }, "request option"),
    ],
  ];
  for (const [message, make] of cases) {
    const error = thrown(make);
    assert.ok(error instanceof TypeError, message);
    assert.ok(
      error.message.startsWith(message + ": expected "),
      `${error.message} should start with ${message}`,
    );
  }
});

test("options: the unknown-key message lists the table's keys in its order", () => {
  const error = thrown(() => new Server({ port: 0, colour: 1 } as never));
  assert.equal(
    error.message,
    `Unknown option "colour": expected ${Object.keys(SERVER_TABLE).join(", ")}`,
  );
  assert.deepEqual(Object.keys(SERVER_TABLE).slice(0, 8), [
    "heartbeat",
    "timeout",
    "maxFrameSize",
    "maxBufferedBytes",
    "gracePeriod",
    "protocol",
    "borrowPayloads",
    "transport",
  ]);
});

test("options: the defaults are the tables'", () => {
  assert.deepEqual(optionDefaults(CONNECTION_TABLE), {
    timeout: DEFAULT_TIMEOUT,
    maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
    maxBufferedBytes: DEFAULT_MAX_BUFFERED_BYTES,
    gracePeriod: DEFAULT_GRACE_PERIOD,
    protocol: 3,
    borrowPayloads: false,
  });
  const server = parseOptions(SERVER_TABLE, { port: 0 });
  for (const [key, value] of Object.entries(optionDefaults(SERVER_TABLE))) {
    assert.equal(server[key as keyof typeof server], value, key);
  }
  assert.equal(server.drainSpread, DEFAULT_DRAIN_SPREAD);
  assert.equal(server.heartbeat, undefined, "derived from the timeout");
  const client = parseOptions(CLIENT_TABLE, { port: 9 });
  assert.equal(client.requestTimeout, DEFAULT_REQUEST_TIMEOUT);
  assert.equal(client.maxQueuedMessages, DEFAULT_MAX_QUEUED_MESSAGES);
  assert.deepEqual(client.outlierDetection, parseOutlierOptions(undefined));
  assert.deepEqual(parseOutlierOptions(true), {
    consecutiveFailures: OUTLIER_TABLE.consecutiveFailures.default,
    baseEjectionMs: OUTLIER_TABLE.baseEjectionTime.default * 1000,
    maxEjectionMs: OUTLIER_TABLE.maxEjectionTime.default * 1000,
    maxEjectedPercent: OUTLIER_TABLE.maxEjectedPercent.default,
    slowFactor: OUTLIER_TABLE.slowFactor.default,
  });
  assert.deepEqual(parseProxyOption({}), {
    trusted: undefined,
    timeoutMs: PROXY_PROTOCOL_TABLE.timeout.default * 1000,
  });
  assert.equal(
    PROXY_PROTOCOL_TABLE.timeout.default,
    DEFAULT_PROXY_HEADER_TIMEOUT,
  );
  assert.equal(SEND_TABLE.transfer.default, false);
  assert.equal(wantsTransfer({}), SEND_TABLE.transfer.default);
  assert.equal(REQUEST_TABLE.idempotent.default, false);
  assert.ok(
    !("default" in REQUEST_TABLE.timeout),
    "the client's requestTimeout",
  );
  assert.deepEqual(optionDefaults(SERVER_TLS_TABLE), { requestCert: false });
  assert.deepEqual(optionDefaults(CLIENT_TLS_TABLE), {});
});

test("options: a check's error names the option with its prefix", () => {
  assert.throws(
    () =>
      parseOptions(
        OUTLIER_TABLE,
        { maxEjectionTime: 0 },
        "x",
        "outlierDetection.",
      ),
    {
      name: "RangeError",
      message:
        "Invalid outlierDetection.maxEjectionTime 0: expected more than 0 seconds",
    },
  );
  assert.throws(() => new Server({} as never), {
    name: "TypeError",
    message: "Invalid port undefined: expected an integer",
  });
  assert.throws(() => REQUEST_TABLE.timeout.check("timeout", -1), {
    name: "RangeError",
    message: "Invalid timeout -1: expected milliseconds >= 0",
  });
});
