// TLS option checks shared by Server and Client: each throws a TypeError that
// names the option (`tls`, `tls.cert`, …) and quotes the value.

import { quote } from "../_quote.ts";
import { checkKnownKeys } from "../_known_keys.ts";
import type { ClientTlsOptions, ServerTlsOptions } from "./transport.ts";

function checkPem(name: string, value: unknown): string {
  if (typeof value !== "string" || !value.includes("-----BEGIN ")) {
    throw new TypeError(
      `Invalid ${name} ${quote(value)}: expected a PEM string`,
    );
  }
  return value;
}

function checkTlsObject(name: string, value: unknown, what: string): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`Invalid ${name} ${quote(value)}: expected ${what}`);
  }
}

/** A server's `tls` option: `{ cert, key }` in PEM, or absent. */
export function checkServerTls(
  name: string,
  value: unknown,
): ServerTlsOptions | undefined {
  if (value === undefined) return undefined;
  checkTlsObject(name, value, "an object with cert and key (PEM)");
  checkKnownKeys(`${name} option`, value as object, { cert: true, key: true });
  const { cert, key } = value as Record<string, unknown>;
  return {
    cert: checkPem(`${name}.cert`, cert),
    key: checkPem(`${name}.key`, key),
  };
}

/**
 * A client's `tls` option: `true` or `{}` (the default trust store),
 * `{ ca?, serverName? }`, or absent / `false` for plain TCP.
 */
export function checkClientTls(
  name: string,
  value: unknown,
): ClientTlsOptions | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return {};
  checkTlsObject(name, value, "true, or an object with ca and serverName");
  checkKnownKeys(`${name} option`, value as object, {
    ca: true,
    serverName: true,
  });
  const { ca, serverName } = value as Record<string, unknown>;
  const checked: ClientTlsOptions = {};
  if (Array.isArray(ca)) {
    if (ca.length === 0) {
      throw new TypeError(
        `Invalid ${name}.ca []: expected a PEM string or a non-empty array of them`,
      );
    }
    checked.ca = ca.map((item, i) => checkPem(`${name}.ca[${i}]`, item));
  } else if (ca !== undefined) {
    checked.ca = checkPem(`${name}.ca`, ca);
  }
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
  return checked;
}
