// Connection config precedence, seen from the server: explicit fields > connectionString >
// PG* environment > defaults; a bad connection string or option fails at construction.
import { afterEach, describe, expect, it } from 'vitest';
import { createPostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { InvalidPoolOptionError } from '../../src/index.js';
import { usePostgres } from './harness.js';

const db = usePostgres();

const PG_ENV = ['PGHOST', 'PGPORT', 'PGUSER', 'PGPASSWORD', 'PGDATABASE', 'PGAPPNAME'] as const;
const savedEnv = Object.fromEntries(PG_ENV.map((k) => [k, process.env[k]]));
afterEach(() => {
  for (const key of PG_ENV) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
});

function setPgEnv(values: Partial<Record<(typeof PG_ENV)[number], string>>): void {
  for (const key of PG_ENV) delete process.env[key];
  Object.assign(process.env, values);
}

function urlWith(overrides: { database?: string; query?: string } = {}): string {
  const base = new URL(db.url);
  if (overrides.database !== undefined) base.pathname = `/${overrides.database}`;
  if (overrides.query !== undefined) base.search = overrides.query;
  return base.toString();
}

/** What the server sees for one session of a pool made with `config`. */
async function session(config: PostgresPoolConfig): Promise<{ app: string; db: string; user: string }> {
  const pool = db.track(createPostgresPool({ max: 1, acquireTimeoutMs: 5000, onError: () => {}, ...config }));
  try {
    const { rows } = await pool.query<{ app: string; db: string; user: string }>(
      "SELECT current_setting('application_name') AS app, current_database() AS db, current_user AS user",
    );
    return rows[0]!;
  } finally {
    await pool.close();
  }
}

describe('precedence: explicit > URL > PG* environment > defaults', () => {
  it('application_name from the URL (?application_name=) when no explicit one is given', async () => {
    const app = db.appName('url');
    expect((await session({ connectionString: urlWith({ query: `?application_name=${app}` }) })).app).toBe(app);
  });

  it('an explicit application_name beats the URL one', async () => {
    const fromUrl = db.appName('url');
    const explicit = db.appName('explicit');
    const seen = await session({ connectionString: urlWith({ query: `?application_name=${fromUrl}` }), application_name: explicit });
    expect(seen.app).toBe(explicit);
  });

  it('explicit connection fields beat the URL (a wrong database in the URL, the right one explicitly)', async () => {
    const seen = await session({ connectionString: urlWith({ database: 'lifeguard_wrong_db' }), database: db.database });
    expect(seen.db).toBe(db.database);
  });

  it('the URL beats the PG* environment', async () => {
    setPgEnv({ PGDATABASE: 'lifeguard_env_wrong_db', PGUSER: 'lifeguard_env_wrong_user', PGPORT: '1' });
    const seen = await session({ connectionString: db.url });
    expect(seen).toMatchObject({ db: db.database, user: db.user });
  });

  it('the PG* environment is used when neither explicit fields nor a URL say otherwise', async () => {
    setPgEnv({ PGHOST: db.host, PGPORT: String(db.port), PGUSER: db.user, PGPASSWORD: db.password, PGDATABASE: db.database });
    const seen = await session({});
    expect(seen).toMatchObject({ db: db.database, user: db.user });
  });

  it("application_name defaults to 'lifeguard'", async () => {
    setPgEnv({});
    expect((await session({ ...db.connection() })).app).toBe('lifeguard');
  });

  it('PGAPPNAME beats the default application_name (env > defaults)', async () => {
    const app = db.appName('env');
    setPgEnv({ PGAPPNAME: app });
    expect((await session({ ...db.connection() })).app).toBe(app);
  });
});

describe('bad configuration is a clear error at construction', () => {
  const secret = 'sup3r-secret-pw';
  for (const [label, connectionString] of [
    ['not a URL', `host=localhost password=${secret}`],
    ['another scheme', `mysql://root:${secret}@localhost/db`],
    ['an invalid port', `postgres://user:${secret}@localhost:99999/db`],
  ] as const) {
    it(`connectionString that is ${label}: InvalidPoolOptionError, thrown synchronously, secret not echoed`, () => {
      let thrown: unknown;
      try {
        createPostgresPool({ connectionString });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(InvalidPoolOptionError);
      expect((thrown as InvalidPoolOptionError).option).toBe('connectionString');
      expect(String((thrown as Error).message)).not.toContain(secret);
    });
  }

  it('an unknown option names itself', () => {
    expect(() => createPostgresPool({ ...db.connection(), maxConnections: 5 } as PostgresPoolConfig)).toThrow(/maxConnections/);
  });
});
