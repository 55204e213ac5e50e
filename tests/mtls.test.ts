// Mutual TLS, peer identities, certificates replaced at runtime and one
// vocabulary of TLS failures, with certificates made at test time by openssl
// (tests/_certs.ts): a CA, a server, clients of that CA and of another, and
// expired ones. Each test says it is skipped where openssl is missing.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { runtime, test } from "./_harness.ts";
import { decoder, encoder, HOST, next, RawSocket, until } from "./_helpers.ts";
import { makeCertificates, type TestCertificates } from "./_certs.ts";
import {
  Client,
  type ClientTlsOptions,
  ClosedError,
  encodeFrame,
  type PeerCertificate,
  PeerRefusedError,
  Server,
  type ServerSocket,
  SIGN_DATA,
  TlsError,
  type TlsErrorCode,
} from "../mod.ts";
import { controlFrame } from "../_control.ts";
import {
  runtimeTransport,
  type TransportConnection,
} from "../transport/mod.ts";

/** The certificates, made once for this file; undefined without openssl. */
const made = await makeCertificates();
const skip = made === undefined
  ? "openssl is not installed (apt-get install openssl)"
  : undefined;

/** A mutual TLS echo server that records what it sees. */
async function mtlsServer(
  certs: TestCertificates,
  extra: { authorize?: (socket: ServerSocket) => boolean } = {},
) {
  const server = new Server({
    host: HOST,
    port: 0,
    tls: {
      cert: certs.server.cert,
      key: certs.server.key,
      ca: certs.ca,
      requestCert: true,
    },
    ...extra,
  });
  const seen = {
    exceptions: [] as unknown[],
    connected: [] as ServerSocket[],
    closed: 0,
    data: 0,
  };
  server.on("exception", (_socket, error) => seen.exceptions.push(error));
  server.on("connected", (socket) => seen.connected.push(socket));
  server.on("closed", () => seen.closed++);
  server.on("data", (socket, message) => {
    seen.data++;
    if (!socket.closed) socket.send(message);
  });
  await server.start();
  return { server, seen };
}

/** A client of `certs.ca` with the given certificate, that does not reconnect. */
function clientOf(
  port: number,
  tls: ClientTlsOptions,
  reconnect = false,
): Client {
  return new Client({ host: HOST, port, tls, reconnect });
}

/** Proves `server` still serves a client of the CA. */
async function assertServes(
  certs: TestCertificates,
  server: Server,
): Promise<void> {
  await using client = clientOf(server.port, {
    ca: certs.ca,
    cert: certs.client.cert,
    key: certs.client.key,
  });
  const reply = await client.request(encoder.encode("served"), {
    timeout: 5000,
  });
  assert.equal(decoder.decode(reply), "served");
}

/**
 * What Deno's node:tls reports for a certificate outside its validity: the
 * verifying side gets UNABLE_TO_VERIFY_LEAF_SIGNATURE, the code of an
 * untrusted one (rustls knows better: it sends the peer a CertificateExpired
 * alert). Node.js and Bun report CERT_HAS_EXPIRED.
 */
const EXPIRED_AS: TlsErrorCode = runtime === "deno" ? "UNTRUSTED" : "EXPIRED";

function assertTlsError(
  error: unknown,
  code: TlsErrorCode,
  fromPeer?: boolean,
): void {
  assert.ok(error instanceof TlsError, `expected a TlsError, got ${error}`);
  assert.equal(error.code, code, error.message);
  if (fromPeer !== undefined) assert.equal(error.fromPeer, fromPeer);
  assert.match(error.message, new RegExp(`\\(${code}\\)`));
}

test(
  "mutual TLS: a client of the CA is served; the server sees its certificate, the client the server's",
  async () => {
    const certs = made!;
    const { server, seen } = await mtlsServer(certs);
    await using _ = server;
    const connected = next<[ServerSocket]>(server, "connected");
    await using client = clientOf(server.port, {
      ca: certs.ca,
      cert: certs.client.cert,
      key: certs.client.key,
    });
    const details: Array<{ peerCertificate: PeerCertificate | undefined }> = [];
    client.addEventListener("connected", (event) => details.push(event.detail));
    const [name, serverCertificate] = await next<
      [string, PeerCertificate | undefined]
    >(client, "connected");
    const [socket] = await connected;

    const peer = socket.peerCertificate;
    assert.ok(peer !== undefined, "the client's certificate");
    const expected = new X509Certificate(certs.client.cert);
    assert.equal(peer.subject.CN, "orders");
    assert.equal(peer.subject.O, "qtk tcp-framework tests");
    assert.equal(peer.issuer.CN, "qtk tcp-framework test CA");
    assert.deepEqual(peer.subjectAltNames, [
      "URI:spiffe://test/orders",
      "DNS:orders.internal",
    ]);
    assert.equal(peer.serialNumber, certs.client.serial);
    assert.equal(peer.fingerprint256, expected.fingerprint256);
    assert.deepEqual(Array.from(peer.raw), Array.from(expected.raw));
    // Valid for two days from its making, to the second.
    assert.equal(
      peer.validTo.getTime() - peer.validFrom.getTime(),
      2 * 24 * 3600 * 1000,
    );
    assert.ok(Math.abs(peer.validFrom.getTime() - Date.now()) < 5 * 60 * 1000);

    assert.equal(name, `${HOST}:${server.port}`);
    assert.ok(serverCertificate !== undefined, "the server's certificate");
    assert.equal(serverCertificate.subject.CN, "localhost");
    assert.equal(serverCertificate.serialNumber, certs.server.serial);
    assert.deepEqual(serverCertificate.subjectAltNames, [
      "DNS:localhost",
      "IP:127.0.0.1",
    ]);
    assert.equal(details[0].peerCertificate, serverCertificate);

    const reply = await client.request(encoder.encode("who"), {
      timeout: 5000,
    });
    assert.equal(decoder.decode(reply), "who");
    assert.deepEqual(seen.exceptions, []);
  },
  { skip },
);

test(
  "mutual TLS: clients without a certificate, of another CA, or with an expired one are refused before any data",
  async () => {
    const certs = made!;
    const { server, seen } = await mtlsServer(certs);
    await using _ = server;
    const cases: Array<[string, ClientTlsOptions, TlsErrorCode]> = [
      ["no certificate", { ca: certs.ca }, "CERTIFICATE_REQUIRED"],
      ["another CA's", {
        ca: certs.ca,
        cert: certs.stranger.cert,
        key: certs.stranger.key,
      }, "UNTRUSTED"],
      ["expired", {
        ca: certs.ca,
        cert: certs.clientExpired.cert,
        key: certs.clientExpired.key,
      }, EXPIRED_AS],
    ];
    for (const [what, tls, code] of cases) {
      seen.exceptions.length = 0;
      await using client = clientOf(server.port, tls);
      let connected = false;
      client.on("connected", () => connected = true);
      const refused = client.request(encoder.encode(what), { timeout: 5000 })
        .then(() => "answered", (error) => error);
      const [clientError] = await next<[unknown]>(client, "exception");
      await until(() => seen.exceptions.length > 0, 5000, `${what}: refused`);
      assertTlsError(seen.exceptions[0], code, false);
      assert.equal(connected, false, what);
      // The client hears of it as an alert (no certificate), or as the server
      // closing the connection it believed open (TLS 1.3 ends its side of the
      // handshake before the server has read its certificate).
      if (code === "CERTIFICATE_REQUIRED") {
        assertTlsError(clientError, "CERTIFICATE_REQUIRED", true);
      } else {
        assert.ok(
          clientError instanceof ClosedError || clientError instanceof TlsError,
          `${what}: got ${clientError}`,
        );
      }
      assert.ok((await refused) instanceof Error, `${what}: ${await refused}`);
    }
    await until(() => server.connections.size === 0, 5000, "no connections");
    assert.equal(seen.data, 0);
    assert.deepEqual(seen.connected, []);
    assert.equal(seen.closed, 0);
    assert.equal(server.stats().tlsFailures, 3);
    await assertServes(certs, server);
  },
  { skip },
);

test("TLS failures read the same on every runtime", async () => {
  const certs = made!;
  const plainServerTls = { cert: certs.server.cert, key: certs.server.key };

  // A plaintext client against a TLS server: the server's NOT_TLS.
  {
    await using server = new Server({
      host: HOST,
      port: 0,
      tls: plainServerTls,
    });
    const exceptions: unknown[] = [];
    server.on("exception", (_socket, error) => exceptions.push(error));
    await server.start();
    const peer = await RawSocket.connect(server.port);
    await peer.write(encodeFrame(controlFrame("hello", 3), 3));
    await until(() => exceptions.length > 0, 5000, "the server's exception");
    assertTlsError(exceptions[0], "NOT_TLS", false);
    await peer.ended;
    await peer.close();
  }

  // A TLS client against a plaintext server, which closes on the first
  // bytes: HANDSHAKE_FAILED, not Node's ECONNRESET or Deno's UnexpectedEof.
  {
    await using server = new Server({ host: HOST, port: 0 });
    server.on("exception", () => {}); // the ClientHello is no frame
    await server.start();
    await using client = clientOf(server.port, { ca: certs.ca });
    const [error] = await next<[unknown]>(client, "exception");
    assertTlsError(error, "HANDSHAKE_FAILED", false);
  }

  // The client's verdicts on the server's certificate; the server hears of
  // them as a peer that hung up, or (Deno's client sends an alert) as one
  // that does not trust it.
  const verdicts: Array<
    [string, { cert: string; key: string }, ClientTlsOptions, TlsErrorCode]
  > = [
    ["another CA's", certs.server, { ca: certs.otherCa }, "UNTRUSTED"],
    ["for another name", certs.server, {
      ca: certs.ca,
      serverName: "db.internal",
    }, "NAME_MISMATCH"],
    ["expired", certs.serverExpired, { ca: certs.ca }, EXPIRED_AS],
  ];
  for (const [what, pair, tls, code] of verdicts) {
    await using server = new Server({
      host: HOST,
      port: 0,
      tls: { cert: pair.cert, key: pair.key },
    });
    const exceptions: unknown[] = [];
    server.on("exception", (_socket, error) => exceptions.push(error));
    await server.start();
    await using client = clientOf(server.port, tls);
    const [error] = await next<[unknown]>(client, "exception");
    assertTlsError(error, code, false);
    if (code === "NAME_MISMATCH") assert.match(String(error), /db\.internal/);
    await until(() => server.connections.size === 0, 5000, `${what}: closed`);
    for (const refused of exceptions) {
      assert.ok(refused instanceof TlsError, `${what}: got ${refused}`);
      assert.ok(
        refused.code === "HANDSHAKE_FAILED" ||
          (refused.fromPeer && refused.code !== "NOT_TLS"),
        `${what}: ${refused.message}`,
      );
    }
  }
}, { skip });

test(
  "authorize: a client refused by its certificate, or its address, reaches no data event",
  async () => {
    const certs = made!;
    const asked: Array<string | undefined> = [];
    const { server, seen } = await mtlsServer(certs, {
      authorize: (socket) => {
        asked.push(socket.peerCertificate?.subject.CN as string | undefined);
        return socket.peerCertificate?.subjectAltNames.includes(
          "URI:spiffe://test/orders",
        ) === true;
      },
    });
    await using _ = server;
    await assertServes(certs, server);
    assert.equal(seen.connected.length, 1);

    // billing's certificate is of the CA, but authorize wants orders. It
    // writes a request at once, as a peer that does not wait for hello-ack.
    const open = new Set<TransportConnection>();
    let ended!: () => void;
    const gone = new Promise<void>((resolve) => ended = resolve);
    const raw = await runtimeTransport().connect(
      { hostname: HOST, port: server.port },
      (connection) => {
        open.add(connection);
        return {
          received() {},
          ended: () => {
            open.delete(connection);
            ended();
          },
        };
      },
      {
        tls: {
          ca: certs.ca,
          cert: certs.billing.cert,
          key: certs.billing.key,
        },
      },
    );
    raw.write(
      encodeFrame({
        sign: SIGN_DATA,
        uuid: crypto.randomUUID(),
        payload: encoder.encode("let me in"),
      }, 3),
    )?.catch(() => {});
    await gone;
    assert.deepEqual(asked, ["orders", "billing"]);
    assert.equal(seen.connected.length, 1);
    assert.equal(seen.data, 1); // the first client's only
    assert.equal(seen.exceptions.length, 1);
    assert.ok(seen.exceptions[0] instanceof PeerRefusedError);
    assert.equal(server.stats().connectionsRefused, 1);
    assert.equal(open.size, 0);

    // Plain TCP, by address; and an authorize that throws, or answers with a
    // promise (it must decide at once): refused, with the reason as cause.
    const verdicts: Array<
      [(socket: ServerSocket) => boolean, (error: PeerRefusedError) => void]
    > = [
      [(socket) => socket.remoteAddr.hostname !== HOST, (error) => {
        assert.equal(error.hostname, HOST);
        assert.equal(error.cause, undefined);
      }],
      [() => {
        throw new Error("no entry in the ACL");
      }, (error) => assert.match(error.message, /no entry in the ACL/)],
      [(() => Promise.resolve(true)) as never, (error) => {
        assert.ok(error.cause instanceof TypeError);
        assert.match(String(error.cause), /synchronously/);
      }],
    ];
    for (const [authorize, check] of verdicts) {
      await using plain = new Server({ host: HOST, port: 0, authorize });
      const exceptions: unknown[] = [];
      let data = 0;
      plain.on("exception", (_socket, error) => exceptions.push(error));
      plain.on("data", () => data++);
      await plain.start();
      const peer = await RawSocket.connect(plain.port);
      await peer.write(
        encodeFrame({
          sign: SIGN_DATA,
          uuid: crypto.randomUUID(),
          payload: new Uint8Array(1),
        }, 3),
      ).catch(() => {});
      await peer.ended;
      await peer.close();
      assert.equal(data, 0);
      assert.equal(exceptions.length, 1);
      assert.ok(exceptions[0] instanceof PeerRefusedError, `${exceptions[0]}`);
      check(exceptions[0] as PeerRefusedError);
    }
    assert.throws(
      () => new Server({ port: 0, authorize: true as never }),
      /Invalid authorize/,
    );
  },
  { skip },
);

test(
  "setTls: certificates rotate under load; nothing is dropped, and new handshakes get the new ones",
  async () => {
    const certs = made!;
    const { server, seen } = await mtlsServer(certs);
    await using _ = server;
    const clientTls = {
      ca: certs.ca,
      cert: certs.client.cert,
      key: certs.client.key,
    };
    const clients = Array.from(
      { length: 4 },
      () => clientOf(server.port, clientTls, true),
    );
    const clientEvents = { closed: 0, exceptions: [] as unknown[] };
    const serials: string[] = [];
    for (const client of clients) {
      client.on("closed", () => clientEvents.closed++);
      client.on("exception", (error) => clientEvents.exceptions.push(error));
      client.on("connected", (_server, certificate) => {
        serials.push(certificate!.serialNumber);
      });
    }
    try {
      await until(
        () => clients.every((client) => client.connected),
        5000,
        "the clients",
      );
      // Each client: 40 rounds of 8 requests in flight; the server's
      // certificate is replaced during round 10 of the first.
      let rotated = false;
      const load = clients.map(async (client, c) => {
        let answered = 0;
        for (let round = 0; round < 40; round++) {
          if (c === 0 && round === 10) {
            server.setTls({
              cert: certs.server2.cert,
              key: certs.server2.key,
              ca: certs.ca,
              requestCert: true,
            });
            rotated = true;
          }
          const replies = await Promise.all(
            Array.from(
              { length: 8 },
              (_, i) =>
                client.request(new Uint8Array([c, round, i]), {
                  timeout: 5000,
                }),
            ),
          );
          answered += replies.length;
        }
        return answered;
      });
      // A client that connects after the rotation gets the new certificate.
      await until(() => rotated, 5000, "the rotation");
      {
        await using late = clientOf(server.port, clientTls);
        const [, lateCertificate] = await next<[string, PeerCertificate]>(
          late,
          "connected",
        );
        assert.equal(lateCertificate.serialNumber, certs.server2.serial);
        const reply = await late.request(encoder.encode("late"), {
          timeout: 5000,
        });
        assert.equal(decoder.decode(reply), "late");
      }
      assert.deepEqual(await Promise.all(load), [320, 320, 320, 320]);
      // The connections made before went on: none closed, none failed.
      assert.deepEqual(serials, Array(4).fill(certs.server.serial));
      assert.equal(clientEvents.closed, 0);
      assert.deepEqual(clientEvents.exceptions, []);
      assert.deepEqual(seen.exceptions, []);
      assert.equal(seen.data, 4 * 320 + 1);

      // A client's certificate, renewed: its next connection presents it.
      clients[0].setTls({
        ca: certs.ca,
        cert: certs.client2.cert,
        key: certs.client2.key,
      });
      await until(() => server.connections.size === 4, 5000, "late's close");
      const before = seen.connected.length;
      await Promise.all(
        Array.from(server.connections, (socket) => socket.close()),
      );
      await until(
        () => seen.connected.length === before + 4,
        5000,
        "the clients to reconnect",
      );
      assert.deepEqual(
        seen.connected.slice(before).map((socket) =>
          socket.peerCertificate?.serialNumber
        ).sort(),
        [
          certs.client.serial,
          certs.client.serial,
          certs.client.serial,
          certs.client2.serial,
        ].sort(),
      );
      // The server counts a connection at its handshake, a client at the
      // answer to its hello, a moment later: wait for the clients' side too.
      await until(
        () => serials.length === 8,
        5000,
        "the clients' connected events",
      );
      assert.deepEqual(serials.slice(4), Array(4).fill(certs.server2.serial));
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  },
  { skip },
);

test(
  "setTls: settings that cannot be used throw, and the certificate in use stays",
  async () => {
    const certs = made!;
    const { server } = await mtlsServer(certs);
    await using _ = server;
    assert.throws(
      () =>
        server.setTls({
          cert: certs.server2.cert,
          key: certs.client.key,
          ca: certs.ca,
          requestCert: true,
        }),
      (error: unknown) =>
        error instanceof TypeError &&
        /tls\.key: it is not the private key/.test(error.message),
    );
    assert.throws(
      () =>
        server.setTls({
          cert: certs.server2.cert,
          key: certs.server2.key,
          ca: certs.ca,
        }),
      /requestCert/,
    );
    await using client = clientOf(server.port, {
      ca: certs.ca,
      cert: certs.client.cert,
      key: certs.client.key,
    });
    const [, certificate] = await next<[string, PeerCertificate]>(
      client,
      "connected",
    );
    assert.equal(certificate.serialNumber, certs.server.serial);

    await using plain = new Server({ host: HOST, port: 0 });
    assert.throws(
      () => plain.setTls({ cert: certs.server.cert, key: certs.server.key }),
      /made without tls/,
    );
    await using plainClient = new Client({ port: 1, reconnect: false });
    plainClient.on("exception", () => {});
    assert.throws(() => plainClient.setTls(true), /made without tls/);
    assert.throws(
      () => client.setTls({ ca: certs.ca, cert: certs.client.cert }),
      /cert without key/,
    );
    // A server not started yet takes them for its start.
    await using later = new Server({
      host: HOST,
      port: 0,
      tls: { cert: certs.server.cert, key: certs.server.key },
    });
    later.setTls({ cert: certs.server2.cert, key: certs.server2.key });
    await later.start();
    await using laterClient = clientOf(later.port, { ca: certs.ca });
    const [, laterCertificate] = await next<[string, PeerCertificate]>(
      laterClient,
      "connected",
    );
    assert.equal(laterCertificate.serialNumber, certs.server2.serial);
  },
  { skip },
);
