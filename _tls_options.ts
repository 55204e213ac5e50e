// The `tls` option of Server and Client, its tables and checks: each throws
// a TypeError that names the option (`tls`, `tls.cert`, …) and quotes the
// value. PEM is read here with node:crypto, the same on every runtime, so a
// certificate or key the runtime cannot use (or a key that is not the
// certificate's) is the caller's TypeError at once, not a failed handshake
// later: Deno's node:tls loads them only at the first handshake. The
// transports are handed the options checked.

import { createPrivateKey, X509Certificate } from "node:crypto";
import { quote } from "./_quote.ts";
import { checkBoolean, checkHost } from "./_checks.ts";
import { type OptionTable, parseOptions } from "./_option_table.ts";
import type {
  ClientTlsOptions,
  ServerTlsOptions,
} from "./transport/transport.ts";

const CERTIFICATE_BLOCK =
  /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function checkPem(name: string, value: unknown): string {
  if (typeof value !== "string" || !value.includes("-----BEGIN ")) {
    throw new TypeError(
      `Invalid ${name} ${quote(value)}: expected a PEM string`,
    );
  }
  return value;
}

/** Why the runtime cannot read `error`, in a few words. */
function why(error: unknown): string {
  return (error as Error)?.message ?? String(error);
}

/**
 * PEM holding one or more certificates, each of which the runtime reads.
 * @returns The first certificate.
 */
function checkCertificates(name: string, value: unknown): X509Certificate {
  const pem = checkPem(name, value);
  const blocks = pem.match(CERTIFICATE_BLOCK);
  if (blocks === null) {
    throw new TypeError(
      `Invalid ${name}: expected PEM certificates (-----BEGIN CERTIFICATE-----), found none`,
    );
  }
  const certificates = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new TypeError(
        `Invalid ${name}: certificate ${
          i + 1
        } of ${blocks.length} cannot be read (${why(error)})`,
        { cause: error },
      );
    }
  });
  return certificates[0];
}

/** PEM holding one or more certificates the runtime reads. */
function checkCertificatePem(name: string, value: unknown): string {
  checkCertificates(name, value);
  return value as string;
}

/** PEM holding an unencrypted private key the runtime reads. */
function checkPrivateKeyPem(name: string, value: unknown): string {
  readPrivateKey(name, checkPem(name, value));
  return value as string;
}

function readPrivateKey(name: string, pem: string) {
  try {
    return createPrivateKey(pem);
  } catch (error) {
    throw new TypeError(
      `Invalid ${name}: it cannot be read as an unencrypted private key (${
        why(error)
      })`,
      { cause: error },
    );
  }
}

/** A certificate chain and its private key (each checked), which must match. */
function checkPair(name: string, cert: string, key: string): void {
  const certificate = new X509Certificate(cert.match(CERTIFICATE_BLOCK)![0]);
  if (!certificate.checkPrivateKey(readPrivateKey(`${name}.key`, key))) {
    throw new TypeError(
      `Invalid ${name}.key: it is not the private key of ${name}.cert's first certificate (${
        certificate.subject.replaceAll("\n", ", ")
      })`,
    );
  }
}

/** The CA certificate(s): one PEM string or a non-empty array of them. */
function checkCa(name: string, ca: unknown): string | string[] {
  if (Array.isArray(ca)) {
    if (ca.length === 0) {
      throw new TypeError(
        `Invalid ${name} []: expected a PEM string or a non-empty array of them`,
      );
    }
    return ca.map((item, i) => checkCertificatePem(`${name}[${i}]`, item));
  }
  return checkCertificatePem(name, ca);
}

function checkTlsObject(name: string, value: unknown, what: string): object {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`Invalid ${name} ${quote(value)}: expected ${what}`);
  }
  return value;
}

/** The table of a server's `tls` option ({@linkcode ServerTlsOptions}). */
export const SERVER_TLS_TABLE = {
  cert: {
    check: checkCertificatePem,
    required: true,
    doc: "certificate chain (PEM), the server's first",
  },
  key: {
    check: checkPrivateKeyPem,
    required: true,
    doc: "private key of the first certificate (PEM, unencrypted)",
  },
  ca: {
    check: checkCa,
    doc: "with requestCert: CA certificate(s) client certificates chain to",
  },
  requestCert: {
    check: checkBoolean,
    default: false,
    doc: "ask each client for a certificate that chains to ca (mutual TLS)",
  },
} as const satisfies OptionTable<ServerTlsOptions>;

/** The table of a client's `tls` option ({@linkcode ClientTlsOptions}). */
export const CLIENT_TLS_TABLE = {
  ca: {
    check: checkCa,
    doc: "CA certificate(s) the server's must chain to (the default store)",
  },
  serverName: {
    check: checkHost,
    doc: "name the server's certificate must carry (the host connected to)",
  },
  cert: {
    check: checkCertificatePem,
    doc: "this client's certificate chain (PEM), for mutual TLS",
  },
  key: {
    check: checkPrivateKeyPem,
    doc: "private key of the client's first certificate (PEM)",
  },
} as const satisfies OptionTable<ClientTlsOptions>;

/**
 * A server's `tls` option: `{ cert, key }` in PEM, with `ca` and
 * `requestCert: true` for mutual TLS; or absent.
 */
export function checkServerTls(
  name: string,
  value: unknown,
): ServerTlsOptions | undefined {
  if (value === undefined) return undefined;
  const given = checkTlsObject(
    name,
    value,
    "an object with cert and key (PEM), and ca and requestCert for mutual TLS",
  );
  const tls = parseOptions(
    SERVER_TLS_TABLE,
    given,
    `${name} option`,
    `${name}.`,
  );
  checkPair(name, tls.cert, tls.key);
  const checked: ServerTlsOptions = { cert: tls.cert, key: tls.key };
  if (tls.requestCert) {
    if (tls.ca === undefined) {
      throw new TypeError(
        `Invalid ${name}: requestCert needs ${name}.ca, the CA certificate(s) client certificates must chain to`,
      );
    }
    checked.ca = tls.ca;
    checked.requestCert = true;
  } else if (tls.ca !== undefined) {
    // Without requestCert no client is asked for a certificate: a `ca`
    // alone would look like mutual TLS and be none.
    throw new TypeError(
      `Invalid ${name}.ca: a server uses it only with requestCert: true (mutual TLS); without it no client certificate is asked for`,
    );
  }
  return checked;
}

/**
 * A client's `tls` option: `true` or `{}` (the default trust store),
 * `{ ca?, serverName?, cert?, key? }`, or absent / `false` for plain TCP.
 */
export function checkClientTls(
  name: string,
  value: unknown,
): ClientTlsOptions | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return {};
  const given = checkTlsObject(
    name,
    value,
    "true, or an object with ca, serverName, and cert and key",
  );
  const tls = parseOptions(
    CLIENT_TLS_TABLE,
    given,
    `${name} option`,
    `${name}.`,
  );
  const checked: ClientTlsOptions = {};
  if (tls.ca !== undefined) checked.ca = tls.ca;
  if (tls.serverName !== undefined) checked.serverName = tls.serverName;
  if (tls.cert !== undefined || tls.key !== undefined) {
    if (tls.cert === undefined || tls.key === undefined) {
      throw new TypeError(
        `Invalid ${name}: ${tls.cert === undefined ? "key" : "cert"} without ${
          tls.cert === undefined ? "cert" : "key"
        }: a client certificate needs both`,
      );
    }
    checkPair(name, tls.cert, tls.key);
    checked.cert = tls.cert;
    checked.key = tls.key;
  }
  return checked;
}
