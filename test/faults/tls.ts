// TLS on a fault file's own server (network-connect F19b, network-tls F25): certificates made
// once per file with openssl (a test CA, two leaves it issued, a self-signed one), and
// `ALTER SYSTEM SET ssl = on` + reload to switch what new connections see.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll } from 'vitest';
import { type TestDatabase, waitFor } from '../integration/harness.js';
import { streamOf } from './network.js';

const execFileAsync = promisify(execFile);

export interface CertPair {
  readonly cert: string;
  readonly key: string;
  readonly pem: string;
}

export interface Certs {
  readonly dir: string;
  /** The test CA (PEM), trusted by clients that validate. */
  readonly caPem: string;
  /** A self-signed leaf for 127.0.0.1 (no CA). */
  readonly selfSigned: CertPair;
  /** Two leaves for 127.0.0.1 issued by the test CA: before and after a rotation. */
  readonly a: CertPair;
  readonly b: CertPair;
}

export interface ServerTls {
  /** Certificates made once per file with `openssl` (EC P-256: fast to generate). */
  testCerts(): Promise<Certs>;
  /**
   * Server-side TLS: `ALTER SYSTEM SET ssl = on` with `pair` + reload, waiting until new
   * connections see that certificate; or 'off' (`ALTER SYSTEM RESET ALL` + reload), waiting
   * until new connections are refused TLS. Reset to 'off' after the test.
   */
  serverTls(pair: CertPair | 'off'): Promise<void>;
  /** TLS on for this test, off again after it. */
  tlsForThisTest(pair: CertPair): Promise<void>;
}

/** Once per file: TLS on `db`, its certificates removed after the file; `cleanups` runs after each test (useProxiedPools). */
export function useServerTls(db: TestDatabase, cleanups: (() => Promise<unknown>)[]): ServerTls {
  let certs: Promise<Certs> | undefined;
  afterAll(async () => {
    if (certs !== undefined) await rm((await certs).dir, { recursive: true, force: true });
  });

  function testCerts(): Promise<Certs> {
    certs ??= makeCerts();
    return certs;
  }

  /** The certificate a new TLS connection to the server sees now (its fingerprint), or the error. */
  async function presentedCert(): Promise<string> {
    const client = new pg.Client({ ...db.connection(), application_name: 'lifeguard-tls-probe', ssl: { rejectUnauthorized: false }, connectionTimeoutMillis: 2000 });
    client.on('error', () => {});
    try {
      await client.connect();
      return (streamOf(client) as TLSSocket).getPeerCertificate().fingerprint256;
    } finally {
      await client.end().catch(() => {});
    }
  }

  async function serverTls(pair: CertPair | 'off'): Promise<void> {
    if (pair === 'off') {
      await db.admin('ALTER SYSTEM RESET ALL');
      await db.admin('SELECT pg_reload_conf()');
      await waitFor('the server to refuse TLS', () => presentedCert().then(() => false, (error: unknown) => /does not support SSL/.test(String(error))), { timeoutMs: 5000 });
      return;
    }
    await db.admin(`ALTER SYSTEM SET ssl_cert_file = '${pair.cert}'`);
    await db.admin(`ALTER SYSTEM SET ssl_key_file = '${pair.key}'`);
    await db.admin('ALTER SYSTEM SET ssl = on');
    await db.admin('SELECT pg_reload_conf()');
    const wanted = fingerprint(pair.pem);
    await waitFor(`the server to present ${pair.cert}`, () => presentedCert().then((seen) => seen === wanted, () => false), { timeoutMs: 5000 });
  }

  async function tlsForThisTest(pair: CertPair): Promise<void> {
    cleanups.push(() => serverTls('off'));
    await serverTls(pair);
  }

  return { testCerts, serverTls, tlsForThisTest };
}

async function makeCerts(): Promise<Certs> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeguard-tls-'));
  await chmod(dir, 0o755); // the server may run as another user (postgres, when we are root)
  const openssl = (...args: string[]): Promise<unknown> => execFileAsync('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const san = 'subjectAltName=IP:127.0.0.1,DNS:localhost';
  await openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=lifeguard test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  await openssl('req', '-x509', ...ec, '-keyout', 'self.key', '-out', 'self.crt', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', san);
  await writeFile(join(dir, 'leaf.ext'), `${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`);
  for (const name of ['a', 'b']) {
    await openssl('req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=127.0.0.1');
    await openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', 'leaf.ext');
  }
  // PostgreSQL reads the key as the server's user and refuses one that others can read.
  let owner: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    const id = async (flag: string): Promise<number> => Number((await execFileAsync('id', [flag, 'postgres'])).stdout.trim());
    owner = { uid: await id('-u'), gid: await id('-g') };
  }
  const pair = async (name: string): Promise<CertPair> => {
    const cert = join(dir, `${name}.crt`);
    const key = join(dir, `${name}.key`);
    await chmod(key, 0o600);
    await chmod(cert, 0o644);
    if (owner !== undefined) for (const file of [cert, key]) await chown(file, owner.uid, owner.gid);
    return { cert, key, pem: await readFile(cert, 'utf8') };
  };
  return { dir, caPem: await readFile(join(dir, 'ca.crt'), 'utf8'), selfSigned: await pair('self'), a: await pair('a'), b: await pair('b') };
}

export function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}
