import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies the API to a gateway on :8000 (`gunicorn -k gevent 'web.app:create_app()'`).
const gateway = process.env.CHATWORKER_GATEWAY_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
  server: { proxy: { "/api": { target: gateway, changeOrigin: false } } },
});
