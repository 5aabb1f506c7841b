// Packaging checks against the BUILT package (dist/), as a consumer sees it.
// `npm test` builds first; when running vitest directly, run `npm run build` before.
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
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
  main?: string;
  types?: string;
  engines?: { node?: string };
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  exports?: Record<string, unknown>;
  typesVersions?: Record<string, Record<string, string[]>>;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;

/** Fails the calling test with a clear message when dist/ has not been built. */
function assertBuilt(): void {
  const missing = ['index.js', 'index.d.ts', 'cjs/index.js', 'cjs/index.d.ts'].filter((f) => !existsSync(join(DIST, f)));
  if (missing.length > 0) {
    throw new Error(
      `dist/ is not built (missing ${missing.map((f) => `dist/${f}`).join(', ')}). ` +
        'Run `npm run build` first (`npm test` builds before running vitest).',
    );
  }
}

/** Every code subpath of the exports map ("." and "./postgres"; "./package.json" is not code). */
const SUBPATHS = Object.keys(pkg.exports ?? {}).filter((key) => key !== './package.json');

type Conditions = { import: { types: string; default: string }; require: { types: string; default: string } };

/** The entry of one subpath, checked to have the one shape every entry shares. */
function exportEntry(subpath: string): Conditions {
  const entry = pkg.exports?.[subpath] as Conditions;
  expect(Object.keys(entry), `exports["${subpath}"]`).toEqual(['import', 'require']);
  for (const side of ['import', 'require'] as const) {
    expect(Object.keys(entry[side]), `exports["${subpath}"].${side}: "types" must come first`).toEqual(['types', 'default']);
  }
  return entry;
}
function isInside(dir: string, file: string): boolean {
  const rel = relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/** Runs a fixture script with plain Node and parses the JSON it prints. */
function runFixture(file: string): unknown {
  const stdout = execFileSync(process.execPath, [join(FIXTURES, file)], {
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

  it('pg, @types/pg (its declarations refer to pg\'s) and @opentelemetry/api are optional peer dependencies', () => {
    for (const name of ['pg', '@types/pg', '@opentelemetry/api']) {
      expect(pkg.peerDependencies?.[name], `peerDependencies["${name}"]`).toBeTypeOf('string');
      expect(pkg.peerDependenciesMeta?.[name]?.optional, `peerDependenciesMeta["${name}"].optional`).toBe(true);
    }
  });

  it('every subpath has the same dual entry: ESM under dist/, CommonJS under dist/cjs/, types beside each', () => {
    expect(SUBPATHS).toEqual(expect.arrayContaining(['.', './postgres']));
    assertBuilt();
    for (const subpath of SUBPATHS) {
      const entry = exportEntry(subpath);
      expect(entry.import.default).toMatch(/^\.\/dist\/(?!cjs\/).+\.js$/);
      expect(entry.import.types).toBe(entry.import.default.replace(/\.js$/, '.d.ts'));
      expect(entry.require.default).toBe(entry.import.default.replace(/^\.\/dist\//, './dist/cjs/'));
      expect(entry.require.types).toBe(entry.require.default.replace(/\.js$/, '.d.ts'));
      for (const target of [entry.import.types, entry.import.default, entry.require.types, entry.require.default]) {
        expect(existsSync(join(ROOT, target)), `exports["${subpath}"] -> ${target}`).toBe(true);
      }
    }
  });

  it('main, types and typesVersions lead resolvers without exports support (node10) to the CommonJS build', () => {
    const root = exportEntry('.');
    expect(pkg.main).toBe(root.require.default);
    expect(pkg.types).toBe(root.require.types);
    const mapped = pkg.typesVersions?.['*'] ?? {};
    for (const subpath of SUBPATHS.filter((key) => key !== '.')) {
      expect(mapped[subpath.slice(2)], `typesVersions["*"]["${subpath.slice(2)}"]`).toEqual([exportEntry(subpath).require.types]);
    }
  });

  it('dist/cjs is marked CommonJS, and no source map ships (they would point into src/, which is not published)', () => {
    assertBuilt();
    expect(JSON.parse(readFileSync(join(DIST, 'cjs', 'package.json'), 'utf8'))).toEqual({ type: 'commonjs' });
    const files = (readdirSync(DIST, { recursive: true }) as string[]).map((f) => f.split(sep).join('/'));
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    // import.meta breaks CommonJS bundles of the ESM build; a lookup through createRequire breaks bundles of either.
    const scripts = files.filter((f) => f.endsWith('.js'));
    expect(scripts.filter((f) => /import\.meta\.|createRequire\(/.test(readFileSync(join(DIST, f), 'utf8'))), 'files using import.meta or createRequire').toEqual([]);
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
    expect(isInside(join(DIST, 'cjs'), resolved), 'import() must get the ESM build').toBe(false);
    expect(out.keys).toEqual(expect.arrayContaining([...RUNTIME_EXPORTS]));
  });
});

describe('CommonJS consumers: require("lifeguard")', () => {
  it('resolves to the CommonJS build in dist/cjs/ (not src/)', () => {
    assertBuilt();
    const resolved = createRequire(import.meta.url).resolve(PACKAGE_NAME);
    expect(isInside(join(DIST, 'cjs'), resolved), `${resolved} should be inside dist/cjs/`).toBe(true);
    expect(isInside(SRC, resolved)).toBe(false);
  });

  it('sees the same exports as import()', () => {
    assertBuilt();
    const esm = runFixture('import-lifeguard.mjs') as { keys: string[] };
    const cjs = runFixture('require-lifeguard.cjs') as { keys: string[]; resolved: string };
    expect(cjs.keys).toEqual(esm.keys);
    expect(isInside(join(DIST, 'cjs'), cjs.resolved), `${cjs.resolved} should be inside dist/cjs/`).toBe(true);
  });

  it('the two builds are two copies (the dual-package hazard): errors are told apart by code, not instanceof', () => {
    assertBuilt();
    const out = runFixture('dual-package.mjs') as { sameClass: boolean; instanceOfOther: boolean; codes: string[] };
    expect(out.sameClass).toBe(false);
    expect(out.instanceOfOther).toBe(false);
    expect(out.codes).toEqual(['POOL_INVALID_OPTION', 'POOL_INVALID_OPTION']);
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
  it('can be required from CommonJS and exposes createPostgresPool from dist/cjs/', () => {
    assertBuilt();
    const { keys, resolved } = runFixture('require-lifeguard-postgres.cjs') as { keys: string[]; resolved: string };
    expect(keys).toEqual(expect.arrayContaining(['createPostgresPool', 'isConnectionFatal', 'isRetryableConnectError', 'isTransactionRetryable']));
    expect(isInside(join(DIST, 'cjs'), resolved), `${resolved} should be inside dist/cjs/`).toBe(true);
  });
});
