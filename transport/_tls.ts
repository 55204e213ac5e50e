// TLS option checks shared by Server and Client: each throws a TypeError that
// names the option (`tls`, `tls.cert`, …) and quotes the value. PEM is read
// here with node:crypto, the same on every runtime, so a certificate or key
// the runtime cannot use (or a key that is not the certificate's) is the
// caller's TypeError at once, not a failed handshake later: Deno's node:tls
// loads them only at the first handshake.

import { createPrivateKey, X509Certificate } from "node:crypto";
import { quote } from "../_quote.ts";
import { checkKnownKeys } from "../_known_keys.ts";
import type { ClientTlsOptions, ServerTlsOptions } from "./transport.ts";

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

/** A certificate chain and its private key, which must belong together. */
function checkPair(name: string, cert: unknown, key: unknown): void {
  const certificate = checkCertificates(`${name}.cert`, cert);
  let privateKey;
  try {
    privateKey = createPrivateKey(checkPem(`${name}.key`, key));
  } catch (error) {
    if (error instanceof TypeError && error.message.startsWith("Invalid ")) {
      throw error;
    }
    throw new TypeError(
      `Invalid ${name}.key: it cannot be read as an unencrypted private key (${
        why(error)
      })`,
      { cause: error },
    );
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TypeError(
      `Invalid ${name}.key: it is not the private key of ${name}.cert's first certificate (${
        certificate.subject.replaceAll("\n", ", ")
      })`,
    );
  }
}

function checkCa(name: string, ca: unknown): string | string[] | undefined {
  if (Array.isArray(ca)) {
    if (ca.length === 0) {
      throw new TypeError(
        `Invalid ${name}.ca []: expected a PEM string or a non-empty array of them`,
      );
    }
    return ca.map((item, i) => {
      checkCertificates(`${name}.ca[${i}]`, item);
      return item as string;
    });
  }
  if (ca === undefined) return undefined;
  checkCertificates(`${name}.ca`, ca);
  return ca as string;
}

function checkTlsObject(name: string, value: unknown, what: string): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`Invalid ${name} ${quote(value)}: expected ${what}`);
  }
}

/**
 * A server's `tls` option: `{ cert, key }` in PEM, with `ca` and
 * `requestCert: true` for mutual TLS; or absent.
 */
export function checkServerTls(
  name: string,
  value: unknown,
): ServerTlsOptions | undefined {
  if (value === undefined) return undefined;
  checkTlsObject(
    name,
    value,
    "an object with cert and key (PEM), and ca and requestCert for mutual TLS",
  );
  checkKnownKeys(`${name} option`, value as object, {
    cert: true,
    key: true,
    ca: true,
    requestCert: true,
  });
  const { cert, key, ca, requestCert } = value as Record<string, unknown>;
  checkPair(name, cert, key);
  const checked: ServerTlsOptions = {
    cert: cert as string,
    key: key as string,
  };
  if (requestCert !== undefined && typeof requestCert !== "boolean") {
    throw new TypeError(
      `Invalid ${name}.requestCert ${quote(requestCert)}: expected a boolean`,
    );
  }
  const trusted = checkCa(name, ca);
  if (requestCert === true) {
    if (trusted === undefined) {
      throw new TypeError(
        `Invalid ${name}: requestCert needs ${name}.ca, the CA certificate(s) client certificates must chain to`,
      );
    }
    checked.ca = trusted;
    checked.requestCert = true;
  } else if (trusted !== undefined) {
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
  checkTlsObject(
    name,
    value,
    "true, or an object with ca, serverName, and cert and key",
  );
  checkKnownKeys(`${name} option`, value as object, {
    ca: true,
    serverName: true,
    cert: true,
    key: true,
  });
  const { ca, serverName, cert, key } = value as Record<string, unknown>;
  const checked: ClientTlsOptions = {};
  const trusted = checkCa(name, ca);
  if (trusted !== undefined) checked.ca = trusted;
  if (serverName !== undefined) {
    if (typeof serverName !== "string" || serverName.length === 0) {
      throw new TypeError(
        `Invalid ${name}.serverName ${
          quote(serverName)
        }: expected a non-empty string`,
      );
    }
    checked.serverName = serverName;
  }
  if (cert !== undefined || key !== undefined) {
    if (cert === undefined || key === undefined) {
      throw new TypeError(
        `Invalid ${name}: ${cert === undefined ? "key" : "cert"} without ${
          cert === undefined ? "cert" : "key"
        }: a client certificate needs both`,
      );
    }
    checkPair(name, cert, key);
    checked.cert = cert as string;
    checked.key = key as string;
  }
  return checked;
}
