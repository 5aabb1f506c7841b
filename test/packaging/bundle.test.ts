// A program using lifeguard and lifeguard/postgres, bundled with esbuild the way services ship
// (lifeguard itself inside the bundle), then run as a child process against a real PostgreSQL.
// Each bundle must print the query's result and lifeguard's own timeout error, and exit 0 by
// itself. Bundled: the ESM source (import) to ESM and to CommonJS, and the CommonJS source
// (require) to CommonJS; each with pg inside the bundle, and with pg left external (then it
// is loaded from node_modules at run time).
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { build, type Format } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usePostgres } from '../integration/harness.js';
import { FIXTURES, type Packed, RUNTIME_DEPENDENCIES, install, pack } from './packed.js';

const db = usePostgres();

let packed: Packed;
let project: string;
beforeAll(() => {
  packed = pack();
  project = join(packed.dir, 'app');
  install(packed, project, [...RUNTIME_DEPENDENCIES, 'pg']);
  for (const source of ['app.mjs', 'app.cjs']) copyFileSync(join(FIXTURES, 'bundle', source), join(project, source));
});
afterAll(() => packed?.cleanup());

// pg is CommonJS and requires Node's built-ins; an ESM bundle has no `require` of its own, so
// esbuild's documented recipe gives it one. Needed only when pg is inside an ESM bundle.
const ESM_REQUIRE_BANNER = "import { createRequire as __lifeguardCreateRequire } from 'node:module'; const require = __lifeguardCreateRequire(import.meta.url);";

interface Case {
  readonly source: 'app.mjs' | 'app.cjs';
  readonly format: Format;
  readonly pg: 'bundled' | 'external';
}

const CASES: readonly Case[] = [
  { source: 'app.mjs', format: 'esm', pg: 'bundled' },
  { source: 'app.mjs', format: 'esm', pg: 'external' },
  { source: 'app.mjs', format: 'cjs', pg: 'bundled' },
  { source: 'app.mjs', format: 'cjs', pg: 'external' },
  { source: 'app.cjs', format: 'cjs', pg: 'bundled' },
  { source: 'app.cjs', format: 'cjs', pg: 'external' },
];

/** Runs `node file` with DATABASE_URL; resolves with its exit code and output, killed after 30 s. */
function run(file: string, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { cwd, env: { ...process.env, DATABASE_URL: db.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('esbuild bundles of a program using lifeguard/postgres', () => {
  it.each(CASES)('$source to $format, pg $pg: runs a query against PostgreSQL and exits 0', async ({ source, format, pg }) => {
    const name = `${source.replace('.', '-')}-${format}-pg-${pg}`;
    // A bundle with pg inside runs from a directory without node_modules: it must need none.
    const outDir = pg === 'bundled' ? join(packed.dir, 'standalone', name) : join(project, 'out', name);
    mkdirSync(outDir, { recursive: true });
    const outfile = join(outDir, format === 'esm' ? 'bundle.mjs' : 'bundle.cjs');
    const result = await build({
      entryPoints: [join(project, source)],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format,
      external: pg === 'external' ? ['pg'] : [],
      banner: format === 'esm' && pg === 'bundled' ? { js: ESM_REQUIRE_BANNER } : {},
      metafile: true,
      logLevel: 'silent',
    });
    expect(result.errors).toEqual([]);
    expect(result.warnings.map((warning) => warning.text)).toEqual([]);

    const inputs = Object.keys(result.metafile.inputs).map((input) => relative(project, join(process.cwd(), input)));
    const lifeguardBuild = format === 'cjs' && source === 'app.cjs' ? 'node_modules/lifeguard/dist/cjs/' : 'node_modules/lifeguard/dist/';
    expect(inputs.filter((input) => input.startsWith('node_modules/lifeguard/dist/adapters/postgres/') || input.startsWith('node_modules/lifeguard/dist/cjs/adapters/postgres/')).length, 'lifeguard/postgres is inside the bundle').toBeGreaterThan(0);
    expect(inputs.filter((input) => input.startsWith('node_modules/lifeguard/') && !input.startsWith(lifeguardBuild)), `only ${lifeguardBuild} is bundled`).toEqual([]);
    expect(inputs.some((input) => /(^|\/)node_modules\/pg\/lib\//.test(input)), 'pg inside the bundle').toBe(pg === 'bundled');

    const { code, stdout, stderr } = await run(outfile, outDir);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(stdout.trim())).toEqual({ n: 42, timeout: 'POOL_ACQUIRE_TIMEOUT saturated' });
  });
});
