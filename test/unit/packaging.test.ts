// Packaging checks against the BUILT package (dist/), as a consumer sees it.
// `npm test` builds first; when running vitest directly, run `npm run build` before.
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = realpathSync(resolve(dirname(fileURLToPath(import.meta.url)), '../..'));
const DIST = join(ROOT, 'dist');
const SRC = join(ROOT, 'src');
const FIXTURES = join(ROOT, 'test', 'fixtures');
// A variable, so that neither tsc nor Vite needs dist/ to exist before the test runs.
const PACKAGE_NAME: string = 'lifeguard';

const ERROR_CLASSES = [
  'AcquireTimeoutError',
  'PoolClosedError',
  'PoolQueueFullError',
  'CircuitOpenError',
  'CreateResourceError',
  'LeaseReleasedError',
  'InvalidPoolOptionError',
  'LeakDetectedError',
] as const;
const RUNTIME_EXPORTS = ['createPool', 'PoolError', ...ERROR_CLASSES] as const;
const DECLARED_NAMES = [
  'createPool',
  'Adapter',
  'Lease',
  'Pool',
  'PoolOptions',
  'AcquireOptions',
  'PoolStats',
] as const;

interface PackageJson {
  name?: string;
  type?: string;
  engines?: { node?: string };
  exports?: Record<string, unknown>;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;

/** Fails the calling test with a clear message when dist/ has not been built. */
function assertBuilt(): void {
  const missing = ['index.js', 'index.d.ts'].filter((f) => !existsSync(join(DIST, f)));
  if (missing.length > 0) {
    throw new Error(
      `dist/ is not built (missing ${missing.map((f) => `dist/${f}`).join(', ')}). ` +
        'Run `npm run build` first (`npm test` builds before running vitest).',
    );
  }
}

/** The `exports["."]` entry of package.json, checked to be a conditions object. */
function rootExport(): Record<string, unknown> {
  const entry = pkg.exports?.['.'];
  expect(entry, 'package.json exports["."]').toBeTypeOf('object');
  return entry as Record<string, unknown>;
}

function isInside(dir: string, file: string): boolean {
  const rel = relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/** Node flags needed for require(esm): none from 20.19 / 22.12 on (see engines). */
function requireEsmFlags(): string[] {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const onByDefault =
    major >= 23 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19);
  return onByDefault ? [] : ['--experimental-require-module'];
}

/** Runs a fixture script with plain Node and parses the JSON it prints. */
function runFixture(file: string, flags: string[] = []): unknown {
  const stdout = execFileSync(process.execPath, [...flags, join(FIXTURES, file)], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 30_000,
  });
  return JSON.parse(stdout.trim());
}

async function importLifeguard(): Promise<Record<string, unknown>> {
  assertBuilt();
  return (await import(PACKAGE_NAME)) as Record<string, unknown>;
}

describe('package.json', () => {
  it('is an ESM package named lifeguard', () => {
    expect(pkg.name).toBe('lifeguard');
    expect(pkg.type).toBe('module');
  });

  it('requires Node >= 20.19', () => {
    expect(pkg.engines?.node).toBe('>=20.19');
  });

  it('exports["."] has "types" first and "default", both pointing into the build', () => {
    const entry = rootExport();
    expect(Object.keys(entry)[0], '"types" must be the first condition').toBe('types');
    expect(entry.types).toMatch(/^\.\/dist\/.+\.d\.ts$/);
    expect(entry.default).toMatch(/^\.\/dist\/.+\.js$/);

    assertBuilt();
    for (const condition of ['types', 'default']) {
      const target = join(ROOT, String(entry[condition]));
      expect(existsSync(target), `exports["."].${condition} -> ${String(entry[condition])}`).toBe(
        true,
      );
    }
  });
});

describe('ESM consumers: import("lifeguard")', () => {
  it('exposes the public runtime API', async () => {
    const lg = await importLifeguard();
    for (const name of RUNTIME_EXPORTS) {
      expect(lg[name], `export ${name}`).toBeTypeOf('function');
    }
  });

  it('PoolError extends Error', async () => {
    const lg = await importLifeguard();
    const PoolError = lg.PoolError as abstract new (...args: never[]) => unknown;
    expect(PoolError.prototype instanceof Error).toBe(true);
  });

  it.each(ERROR_CLASSES)('%s extends PoolError', async (name) => {
    const lg = await importLifeguard();
    const PoolError = lg.PoolError as abstract new (...args: never[]) => unknown;
    const ErrorClass = lg[name] as abstract new (...args: never[]) => unknown;
    expect(ErrorClass).toBeTypeOf('function');
    expect(ErrorClass.prototype instanceof PoolError).toBe(true);
  });

  it('resolves to dist/ (not src/) under plain Node ESM', () => {
    assertBuilt();
    const out = runFixture('import-lifeguard.mjs') as { resolved: string; keys: string[] };
    const resolved = realpathSync(fileURLToPath(out.resolved));
    expect(isInside(DIST, resolved), `${resolved} should be inside dist/`).toBe(true);
    expect(isInside(SRC, resolved)).toBe(false);
    expect(out.keys).toEqual(expect.arrayContaining([...RUNTIME_EXPORTS]));
  });
});

describe('CommonJS consumers: require("lifeguard")', () => {
  it('resolves to dist/ (not src/)', () => {
    assertBuilt();
    const resolved = createRequire(import.meta.url).resolve(PACKAGE_NAME);
    expect(isInside(DIST, resolved), `${resolved} should be inside dist/`).toBe(true);
    expect(isInside(SRC, resolved)).toBe(false);
  });

  it('can require() the ESM build and sees the same exports as import()', () => {
    assertBuilt();
    const esm = runFixture('import-lifeguard.mjs') as { keys: string[] };
    const cjsKeys = runFixture('require-lifeguard.cjs', requireEsmFlags()) as string[];
    expect(cjsKeys).toEqual(expect.arrayContaining([...RUNTIME_EXPORTS]));
    // require(esm) may add `__esModule` (when there is a default export), never remove names.
    expect(cjsKeys).toEqual(expect.arrayContaining(esm.keys));
  });
});

describe('type declarations', () => {
  it('dist/index.d.ts declares the public API', () => {
    assertBuilt();
    const dts = readFileSync(join(DIST, 'index.d.ts'), 'utf8');
    for (const name of DECLARED_NAMES) {
      expect(dts, `dist/index.d.ts should mention ${name}`).toMatch(new RegExp(`\\b${name}\\b`));
    }
  });
});

describe('the lifeguard/postgres entry', () => {
  it('exports["./postgres"] points at built files that exist', () => {
    assertBuilt();
    const entry = pkg.exports?.['./postgres'] as Record<string, string> | undefined;
    expect(entry, 'package.json exports["./postgres"]').toBeTypeOf('object');
    expect(Object.keys(entry!)[0]).toBe('types');
    for (const target of [entry!.types!, entry!.default!]) {
      expect(existsSync(join(ROOT, target)), `${target} should exist after the build`).toBe(true);
    }
  });

  it('can be required from CommonJS and exposes createPostgresPool from dist/', () => {
    assertBuilt();
    const { keys, resolved } = runFixture('require-lifeguard-postgres.cjs', requireEsmFlags()) as { keys: string[]; resolved: string };
    expect(keys).toEqual(expect.arrayContaining(['createPostgresPool', 'isConnectionFatal', 'isRetryableConnectError', 'isTransactionRetryable']));
    expect(isInside(DIST, resolved), `${resolved} should be inside dist/`).toBe(true);
  });
});
