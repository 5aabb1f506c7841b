// The MariaDB/MySQL server the benchmarks run against: a private mariadbd (Debian's
// mariadb-server; the same starter as the tests, test/support/mariadb.ts, compiled on the fly
// by esbuild: temp data dir, free loopback port, random root password, deleted at the end)
// unless MYSQL_URL is set. stop() is idempotent and always safe.
import { fileURLToPath } from 'node:url';

const noop = () => {};

export async function startMysqlServer() {
  const fromEnv = process.env.MYSQL_URL;
  if (fromEnv) {
    const u = new URL(fromEnv);
    // Never print credentials.
    return { url: fromEnv, where: `MYSQL_URL (${u.hostname}:${u.port || 3306}${u.pathname})`, stop: async () => {} };
  }
  // test/support/mariadb.ts is TypeScript; the benchmarks run on plain node. esbuild bundles it
  // with its local imports (node builtins and mysql2 stay external), written under
  // node_modules/.cache so that `mysql2/promise` resolves from the project.
  const { build } = await import('esbuild');
  const file = new URL('../node_modules/.cache/lifeguard-bench/mariadb.mjs', import.meta.url);
  await build({
    entryPoints: [fileURLToPath(new URL('../test/support/mariadb.ts', import.meta.url))],
    outfile: fileURLToPath(file),
    bundle: true,
    packages: 'external',
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'error',
  });
  const { startMariaDb } = await import(file.href);
  const server = await startMariaDb({ maxConnections: 300 });
  let stopping;
  const stop = () => {
    stopping ??= server.teardown().catch(noop);
    return stopping;
  };
  // Run as root, the server runs as `mysql` through setpriv with a parent-death signal: a crashed bench leaves no server behind.
  return { url: server.url, version: server.version, where: `private mariadbd on 127.0.0.1:${server.port}`, stop };
}
