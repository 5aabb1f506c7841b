// withTransaction's options are validated like pool options (issue 9, item 12): names every
// object inherits never reach the SQL, readOnly must be a boolean, unknown keys are refused.
// Every bad call rejects before acquiring, so no server is needed: the pool points at a
// closed port, and stats() proves nothing was created or acquired.
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createPostgresPool, type TransactionOptions } from '../../src/adapters/postgres/index.js';
import { InvalidPoolOptionError } from '../../src/pool/errors.js';

// Not from harness.ts: this file needs no server, so it does not start (or look for) one.
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected the promise to reject, but it resolved');
}

async function refused(options: unknown): Promise<InvalidPoolOptionError> {
  const pool = createPostgresPool({ host: '127.0.0.1', port: await freePort(), acquireTimeoutMs: 200 });
  let ran = false;
  try {
    const error = await rejectionOf(pool.withTransaction(() => {
      ran = true;
    }, options as TransactionOptions));
    expect(error).toBeInstanceOf(InvalidPoolOptionError);
    expect(ran).toBe(false);
    expect(pool.stats()).toMatchObject({ acquired: 0, created: 0, createFailed: 0 });
    return error as InvalidPoolOptionError;
  } finally {
    await pool.close();
  }
}

describe('withTransaction options', () => {
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'READ COMMITTED', 'read  committed']) {
    it(`isolation: ${JSON.stringify(name)} is refused, naming the allowed levels`, async () => {
      const error = await refused({ isolation: name });
      expect(error.option).toBe('isolation');
      expect(error.message).toBe(`Expected \`isolation\` to be 'read committed', 'repeatable read' or 'serializable', got ${JSON.stringify(name)}`);
    });
  }

  it('isolation given as a non-string is refused', async () => {
    expect((await refused({ isolation: ['serializable'] })).option).toBe('isolation');
  });

  for (const value of ['no', 'false', 0, 1, null]) {
    it(`readOnly: ${JSON.stringify(value)} is refused (a boolean is expected)`, async () => {
      const error = await refused({ readOnly: value });
      expect(error.option).toBe('readOnly');
      expect(error.message).toMatch(/^Expected `readOnly` to be a boolean, got /);
    });
  }

  it('an unknown retry key is refused, naming it', async () => {
    const error = await refused({ retry: { retries: 2, maxRetries: 5 } });
    expect(error.option).toBe('retry.maxRetries');
    expect(error.message).toMatch(/Unknown option `retry\.maxRetries`/);
  });

  it('retry.retries must be an integer >= 0', async () => {
    expect((await refused({ retry: {} })).option).toBe('retry.retries');
    expect((await refused({ retry: { retries: -1 } })).option).toBe('retry.retries');
    expect((await refused({ retry: 'yes' })).option).toBe('retry');
  });

  it('an unknown top-level key is refused, naming it (a typo such as readonly)', async () => {
    const error = await refused({ readonly: true });
    expect(error.option).toBe('readonly');
    expect(error.message).toMatch(/Unknown option `readonly`.*readOnly/);
    expect((await refused({ isolationLevel: 'serializable' })).option).toBe('isolationLevel');
  });

  it('options that are not an object are refused', async () => {
    expect((await refused(null)).option).toBe('options');
    expect((await refused('serializable')).option).toBe('options');
  });
});
