// Vite build of the Ork web UI. Output: dist/ (or --outDir); hashed files under assets/ (served with a long cache).
import { defineConfig } from 'vite';

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    target: 'es2022',
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` proxies the API to a running `ork-host serve`.
    proxy: { '/api': process.env.ORK_API_URL || 'http://127.0.0.1:4000' },
  },
});
