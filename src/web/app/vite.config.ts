// Builds the single-page app into dist/public, which the node's HTTP port serves.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: fileURLToPath(new URL('../../../dist/public', import.meta.url)),
    emptyOutDir: true,
    sourcemap: true,
    // The page sets a strict Content-Security-Policy: no inline scripts or module preload polyfill.
    modulePreload: { polyfill: false },
  },
});
