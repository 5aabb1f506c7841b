// The shape docs/ARCHITECTURE.md promises, checked on the source: adapters reach the core
// only through its public entry, and no file grows back into a place nobody can walk.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(path.join(dir, entry.name)) : entry.name.endsWith('.ts') ? [path.join(dir, entry.name)] : [],
  );
}

/** Every relative module specifier a file imports or re-exports. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gs)].map((match) => match[1]!);
}

describe('architecture', () => {
  it('adapters import the core only through its public entry (src/index.ts)', () => {
    const adapters = sources(path.join(SRC, 'adapters'));
    expect(adapters.length).toBeGreaterThan(0);
    // An adapter may build on another adapter (lifeguard/pg on lifeguard/postgres), never on the core's parts.
    const reaching = adapters.flatMap((file) =>
      imports(file)
        .map((specifier) => path.resolve(path.dirname(file), specifier))
        .filter((target) => !target.startsWith(path.join(SRC, 'adapters') + path.sep) && target !== path.join(SRC, 'index.js'))
        .map((target) => `${path.relative(SRC, file)} -> ${path.relative(SRC, target)}`),
    );
    expect(reaching).toEqual([]);
  });

  it('no source file is over 400 lines, and the dispatcher (pool.ts) stays well under', () => {
    const lengths = Object.fromEntries(sources(SRC).map((file) => [path.relative(SRC, file), readFileSync(file, 'utf8').split('\n').length]));
    expect(Object.entries(lengths).filter(([, lines]) => lines > 410)).toEqual([]);
    expect(lengths[path.join('pool', 'pool.ts')]).toBeLessThan(380);
  });
});
