// TLS certificates made at test time by openssl (ECDSA P-256, valid two days,
// or expired for good): a CA and everything it signs, and another CA. The
// files live in a temporary folder for the duration of one shell script,
// which prints them and removes the folder (the tests may not write files).

import { spawn } from "./_spawn.ts";

/** A certificate and its key, PEM, and the serial number openssl gave it. */
export interface Issued {
  cert: string;
  key: string;
  /** As upper-case hex digits, the form `peerCertificate.serialNumber` has. */
  serial: string;
}

/** What {@linkcode makeCertificates} makes. */
export interface TestCertificates {
  /** The CA servers and clients trust. */
  ca: string;
  /** A CA that nobody trusts. */
  otherCa: string;
  /** For localhost and 127.0.0.1, signed by `ca`. */
  server: Issued;
  /** The same names, a later certificate: a rotation's. */
  server2: Issued;
  /** For localhost and 127.0.0.1, expired since 2020-01-02. */
  serverExpired: Issued;
  /** The client `orders`: CN orders, URI:spiffe://test/orders. */
  client: Issued;
  /** The same client, renewed. */
  client2: Issued;
  /** Another client of `ca`: CN billing, URI:spiffe://test/billing. */
  billing: Issued;
  /** A client certificate signed by `otherCa`. */
  stranger: Issued;
  /** The client `orders`, expired since 2020-01-02. */
  clientExpired: Issued;
}

const SCRIPT = String.raw`
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
curve="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
ca() { # name CN
  openssl req -x509 $curve -keyout $1.key -out $1.crt -days 2 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
request() { # name CN SAN usage
  openssl req $curve -keyout $1.raw -out $1.csr -subj "/CN=$2/O=qtk tcp-framework tests" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in $1.raw -out $1.key
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$4" "$3" > $1.ext
}
leaf() { # name CA serial CN SAN usage
  request $1 "$4" "$5" $6
  openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -set_serial 0x$3 \
    -days 2 -extfile $1.ext -out $1.crt 2>/dev/null
  echo $3 > $1.serial
}
expired() { # name CA serial CN SAN usage: valid for one day in 2020
  request $1 "$4" "$5" $6
  printf '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nserial=serial\nnew_certs_dir=.\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\norganizationName=optional\n' > ca.cnf
  : > index.txt
  echo $3 > serial
  openssl ca -batch -config ca.cnf -cert $2.crt -keyfile $2.key -in $1.csr \
    -out $1.crt -startdate 20200101000000Z -enddate 20200102000000Z \
    -extfile $1.ext -notext 2>/dev/null
  echo $3 > $1.serial
}
ca ca "qtk tcp-framework test CA"
ca other "qtk tcp-framework untrusted CA"
leaf server ca 5E01 localhost "DNS:localhost,IP:127.0.0.1" serverAuth
leaf server2 ca 5E02 localhost "DNS:localhost,IP:127.0.0.1" serverAuth
expired serverExpired ca 5E03 localhost "DNS:localhost,IP:127.0.0.1" serverAuth
leaf client ca C101 orders "URI:spiffe://test/orders,DNS:orders.internal" clientAuth
leaf client2 ca C102 orders "URI:spiffe://test/orders,DNS:orders.internal" clientAuth
leaf billing ca C201 billing "URI:spiffe://test/billing" clientAuth
leaf stranger other DD01 stranger "URI:spiffe://elsewhere/stranger" clientAuth
expired clientExpired ca C103 orders "URI:spiffe://test/orders" clientAuth
for name in ca other; do echo "=== $name.crt"; cat $name.crt; done
for name in server server2 serverExpired client client2 billing stranger clientExpired; do
  for part in crt key serial; do echo "=== $name.$part"; cat $name.$part; done
done
`;

let made: Promise<TestCertificates | undefined> | undefined;

/**
 * The certificates, made once per test file; undefined, after saying so,
 * where openssl is missing (its tests are then registered as skipped).
 */
export function makeCertificates(): Promise<TestCertificates | undefined> {
  return made ??= make();
}

async function make(): Promise<TestCertificates | undefined> {
  const probe = await spawn("sh", ["-c", "command -v openssl"]);
  await probe.closeStdin();
  if (await probe.exited !== 0) return undefined;
  const child = await spawn("sh", ["-c", SCRIPT]);
  await child.closeStdin();
  const code = await child.exited;
  if (code !== 0) {
    throw new Error(`openssl failed (${code}): ${child.stderr()}`);
  }
  const files = new Map<string, string>();
  for (const part of child.stdout().split(/^=== /m).slice(1)) {
    const newline = part.indexOf("\n");
    files.set(part.slice(0, newline), part.slice(newline + 1));
  }
  const issued = (name: string): Issued => ({
    cert: files.get(`${name}.crt`)!,
    key: files.get(`${name}.key`)!,
    serial: files.get(`${name}.serial`)!.trim().toUpperCase(),
  });
  return {
    ca: files.get("ca.crt")!,
    otherCa: files.get("other.crt")!,
    server: issued("server"),
    server2: issued("server2"),
    serverExpired: issued("serverExpired"),
    client: issued("client"),
    client2: issued("client2"),
    billing: issued("billing"),
    stranger: issued("stranger"),
    clientExpired: issued("clientExpired"),
  };
}
