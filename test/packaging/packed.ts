// The package as a user installs it: `npm pack` of the built tree, unpacked into a throwaway
// project's node_modules/lifeguard. Nothing here touches the registry (CI has no network
// guarantee for it): the packages beside lifeguard are symlinks into this repository's
// node_modules, so the throwaway project sees exactly the tarball plus the packages it names.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = realpathSync(resolve(dirname(fileURLToPath(import.meta.url)), '../..'));
export const FIXTURES = join(ROOT, 'test', 'fixtures');

/** lifeguard's runtime dependencies, which an install would bring along. */
export const RUNTIME_DEPENDENCIES: readonly string[] = Object.keys(
  (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {},
);

export interface Packed {
  /** The tarball `npm pack` wrote. */
  readonly tarball: string;
  /** The paths inside the package, as npm lists them (`dist/index.js`, `package.json`, …). */
  readonly files: readonly string[];
  /** A fresh directory for this test file, removed by `cleanup()`. */
  readonly dir: string;
  cleanup(): void;
}

/** Fails with a clear message when dist/ has not been built (`npm test` builds first). */
export function assertBuilt(): void {
  const missing = ['dist/index.js', 'dist/cjs/index.js'].filter((f) => !existsSync(join(ROOT, f)));
  if (missing.length > 0) {
    throw new Error(`dist/ is not built (missing ${missing.join(', ')}): run \`npm run build\` first (\`npm test\` builds before running vitest)`);
  }
}

/** `npm pack` of the repository into a fresh temporary directory. */
export function pack(): Packed {
  assertBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'lifeguard-packed-'));
  const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  const [info] = JSON.parse(out) as [{ filename: string; files: { path: string }[] }];
  return {
    tarball: join(dir, info.filename),
    files: info.files.map((file) => file.path),
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * Makes `project` a package whose node_modules holds the unpacked tarball as `lifeguard`, and
 * `links` (package names, scoped ones too) as symlinks into this repository's node_modules.
 */
export function install(packed: Packed, project: string, links: readonly string[]): void {
  const target = join(project, 'node_modules', 'lifeguard');
  mkdirSync(target, { recursive: true });
  // npm tarballs hold everything under package/.
  execFileSync('tar', ['-xzf', packed.tarball, '-C', target, '--strip-components=1'], { stdio: 'pipe', timeout: 30_000 });
  for (const name of links) {
    const source = join(ROOT, 'node_modules', name);
    if (!existsSync(source)) throw new Error(`${name} is not installed in ${join(ROOT, 'node_modules')}: run npm install`);
    const link = join(project, 'node_modules', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(source, link, 'dir');
  }
}
