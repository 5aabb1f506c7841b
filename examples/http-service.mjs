// An HTTP service on lifeguard: queries through withConnection, a readiness probe from
// pool.health(), Prometheus metrics, and a graceful shutdown on SIGTERM / SIGINT.
//
//   npm run build                                  # examples import the built package
//   DATABASE_URL=postgres://user:pass@host:5432/db node examples/http-service.mjs
//   curl localhost:3000/now    curl -i localhost:3000/ready    curl localhost:3000/metrics
//
//   node examples/http-service.mjs --self-test     # start, call its own endpoints, exit 0
//
// Environment: DATABASE_URL (else the PG* variables pg reads), PORT (default 3000; 0 picks
// a free port), HOST (default 127.0.0.1).
import http from 'node:http';
import { PROMETHEUS_CONTENT_TYPE, toPrometheusText } from 'lifeguard';
import { createPostgresPool } from 'lifeguard/postgres';

const selfTest = process.argv.includes('--self-test');
const port = selfTest ? 0 : Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';

const pool = createPostgresPool({
  ...(process.env.DATABASE_URL ? { connectionString: process.env.DATABASE_URL } : {}),
  application_name: 'lifeguard-example-http',
  max: 10,
  // A request should fail fast with a clear 503 rather than hang behind a dead database.
  acquireTimeoutMs: 2_000,
  createTimeoutMs: 2_000,
  // Background errors (a failing keepalive ping, a create nobody waits for) go to the log.
  onError: (error) => console.error(`[pool] ${error instanceof Error ? error.message : String(error)}`),
});

/** The readiness verdict: 200 while the pool can serve (ok, degraded), 503 when it cannot (down, closed). */
function readiness() {
  const health = pool.health();
  const status = health.status === 'ok' || health.status === 'degraded' ? 200 : 503;
  // `lastError` is an Error: JSON.stringify would render it as {}.
  const { lastError, ...rest } = health;
  const body = lastError === undefined ? rest : { ...rest, lastError: describeError(lastError) };
  return { status, body };
}

function describeError(error) {
  return error instanceof Error ? { message: error.message, ...(error.code === undefined ? {} : { code: error.code }) } : { message: String(error) };
}

function sendJson(res, status, body) {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function handle(req, res) {
  const { pathname } = new URL(req.url ?? '/', 'http://localhost');
  if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });

  if (pathname === '/now') {
    // Give up waiting for a connection when the client goes away.
    const gone = new AbortController();
    res.once('close', () => gone.abort(new Error('client went away')));
    try {
      const row = await pool.withConnection(
        async (client) => (await client.query('select now() as now, pg_backend_pid() as backend_pid')).rows[0],
        { signal: gone.signal },
      );
      return sendJson(res, 200, row);
    } catch (error) {
      // Pool errors (timeout, open circuit, closed pool, …) mean "try again later": 503.
      const poolError = typeof error?.code === 'string' && error.code.startsWith('POOL_');
      return sendJson(res, poolError ? 503 : 500, { error: describeError(error) });
    }
  }

  if (pathname === '/ready') {
    const { status, body } = readiness();
    return sendJson(res, status, body);
  }

  if (pathname === '/live') return sendJson(res, 200, { status: 'alive' });

  if (pathname === '/metrics') {
    const text = toPrometheusText([{ pool, name: 'main' }]);
    res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE });
    return res.end(text);
  }

  return sendJson(res, 404, { error: 'not found' });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((error) => {
    console.error(error);
    if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
    else res.destroy();
  });
});

let shuttingDown;
/**
 * Stop taking connections, let requests in flight finish, then close the pool (waiting up to
 * 10 s for connections still leased). Idempotent. Once the pool is closing, /ready answers
 * 503 and /now answers 503 with POOL_CLOSED on connections that are still open.
 */
function shutdown(why) {
  shuttingDown ??= (async () => {
    console.log(`shutting down (${why})`);
    const serverClosed = new Promise((resolve) => server.close(resolve));
    server.closeIdleConnections();
    await pool.close({ timeoutMs: 10_000 });
    console.log('pool closed');
    server.closeAllConnections();
    await serverClosed;
    console.log('server closed');
  })();
  return shuttingDown;
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    shutdown(signal).then(
      () => process.exit(0),
      (error) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, host, resolve);
});
const { port: actualPort } = server.address();
const base = `http://${host}:${actualPort}`;
console.log(`listening on ${base}`);

if (selfTest) {
  let failures = 0;
  // GET `path`, expect `expectStatus` and `test(body)` to hold; print one line about it.
  const check = async (path, expectStatus, test, show = (text) => text.split('\n')[0]) => {
    const response = await fetch(`${base}${path}`);
    const text = await response.text();
    const ok = response.status === expectStatus && test(text);
    if (!ok) failures++;
    console.log(`${ok ? 'ok' : 'FAIL'} GET ${path} -> ${response.status} ${show(text).slice(0, 200)}`);
  };
  try {
    await check('/ready', 200, (t) => JSON.parse(t).status === 'ok');
    await check('/now', 200, (t) => typeof JSON.parse(t).now === 'string');
    // Ten at once.
    await Promise.all(Array.from({ length: 10 }, () => check('/now', 200, (t) => 'backend_pid' in JSON.parse(t))));
    const acquiredLine = /^lifeguard_pool_acquired_total\{pool_name="main"\} [1-9]\d*$/m;
    await check('/metrics', 200, (t) => acquiredLine.test(t), (t) => acquiredLine.exec(t)?.[0] ?? t.split('\n')[0]);
    await check('/nope', 404, () => true);
    console.log(`stats: ${JSON.stringify({ acquired: pool.stats().acquired, created: pool.stats().created, size: pool.stats().size })}`);
  } catch (error) {
    failures++;
    console.error(error);
  }
  await shutdown('self-test done');
  console.log(`pool health after close: ${pool.health().status}`);
  console.log(failures === 0 ? 'self-test passed' : `self-test FAILED (${failures})`);
  process.exit(failures === 0 ? 0 : 1);
}
