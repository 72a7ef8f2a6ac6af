/// <reference types="vitest/config" />
// The console is built into ui/dist and embedded in the kinsight binary
// (crates/server/src/ui.rs). Everything is bundled: no CDN, no external fonts.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    // `npm run dev` against a running `kinsight up` (KINSIGHT_URL, default :8080): the native
    // API and the Prometheus API (the metrics explorer).
    proxy: {
      '/v1': process.env.KINSIGHT_URL ?? 'http://127.0.0.1:8080',
      '/api/v1': process.env.KINSIGHT_URL ?? 'http://127.0.0.1:8080',
    },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test-setup.ts'],
  },
});
