// The MariaDB/MySQL server the benchmarks run against: a private mariadbd (Debian's
// mariadb-server; the same starter as the tests, test/support/mariadb.ts, compiled on the fly
// with esbuild: temp data dir, free loopback port, random root password, deleted at the end)
// unless MYSQL_URL is set. stop() is idempotent and always safe.
import fs from 'node:fs';

const noop = () => {};

export async function startMysqlServer() {
  const fromEnv = process.env.MYSQL_URL;
  if (fromEnv) {
    const u = new URL(fromEnv);
    // Never print credentials.
    return { url: fromEnv, where: `MYSQL_URL (${u.hostname}:${u.port || 3306}${u.pathname})`, stop: async () => {} };
  }
  // test/support/mariadb.ts is TypeScript; the benchmarks run on plain node. Its only imports are
  // node builtins and mysql2/promise, so stripping the types is enough. Written under
  // node_modules/.cache so that `mysql2/promise` resolves from the project.
  const { transform } = await import('esbuild');
  const source = fs.readFileSync(new URL('../test/support/mariadb.ts', import.meta.url), 'utf8');
  const { code } = await transform(source, { loader: 'ts', format: 'esm', platform: 'node', target: 'node20' });
  const dir = new URL('../node_modules/.cache/lifeguard-bench/', import.meta.url);
  fs.mkdirSync(dir, { recursive: true });
  const file = new URL('mariadb.mjs', dir);
  fs.writeFileSync(file, code);
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
