// The layers of docs/architecture.md, checked: no source file imports from a layer above its
// own. Tests may (they start whole nodes); the web app (src/web/app) is built on its own.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

/** Bottom to top, as drawn in docs/architecture.md. A file belongs to the row of its longest match. */
const LAYERS: [name: string, members: string[]][] = [
  ['below everything', ['protocol/', 'net/', 'dns/', 'config/', 'util/', 'version.ts']],
  ['message format', ['mime/']],
  ['store', ['store/']],
  ['shared services', ['auth/', 'mailauth/', 'mailio/', 'metrics/']],
  ['protocols', ['smtp/', 'imap/', 'pop3/', 'web/', 'queue/', 'cluster/', 'service.ts']],
  ['front', ['gateway/']],
  ['composition roots', ['server.ts', 'cli/', 'gateway/gateway.ts']],
];

const SRC = import.meta.dirname;

function layerOf(file: string): number {
  const rel = path.relative(SRC, file).split(path.sep).join('/');
  let best = -1;
  let length = 0;
  LAYERS.forEach(([, members], index) => {
    for (const m of members) {
      if ((m.endsWith('/') ? rel.startsWith(m) : rel === m) && m.length > length) [best, length] = [index, m.length];
    }
  });
  if (best < 0) throw new Error(`src/${rel} is in no layer: add it to LAYERS here and to docs/architecture.md`);
  return best;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return full === path.join(SRC, 'web', 'app') ? [] : sources(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

describe('layers', () => {
  it('has no import from a lower layer to a higher one', () => {
    const upward: string[] = [];
    for (const file of sources(SRC)) {
      const own = layerOf(file);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
        const target = path.resolve(path.dirname(file), spec!.replace(/\.js$/, '.ts'));
        if (!target.startsWith(SRC + path.sep)) continue;
        const theirs = layerOf(target);
        if (theirs > own) upward.push(`${path.relative(SRC, file)} (${LAYERS[own]![0]}) imports ${path.relative(SRC, target)} (${LAYERS[theirs]![0]})`);
      }
    }
    assert.deepEqual(upward, []);
  });
});
