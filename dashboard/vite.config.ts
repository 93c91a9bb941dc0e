import { defineConfig } from 'vite';

// Served by query-api under /app/ (QUERY_DASHBOARD_DIR=dashboard/dist).
export default defineConfig({
  base: '/app/',
  build: { outDir: 'dist', sourcemap: true, chunkSizeWarningLimit: 300 },
});
