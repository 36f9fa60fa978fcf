import { defineConfig } from "@playwright/test";
import * as os from "os";
import * as path from "path";

// One server for the whole run, on a fresh data dir, with the built-in model on the CPU and the
// tiny SD fixtures as installed text-to-image models.
const port = Number(process.env.VIDPLAY_E2E_PORT ?? 3917);
const dataDir = path.join(os.tmpdir(), `vidplay-e2e-${process.pid}`);
const root = path.resolve(__dirname, "..");
const target = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : `${root}/target`;

export default defineConfig({
  testDir: "./tests",
  timeout: 180_000,
  expect: { timeout: 60_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  outputDir: "test-results",
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
    },
  },
  projects: [{ name: "chromium" }],
  webServer: {
    command: `${target}/release/vidplay serve --addr 127.0.0.1:${port} --data-dir ${dataDir} --site-root ${target}/site --no-examples`,
    url: `http://127.0.0.1:${port}/`,
    timeout: 120_000,
    reuseExistingServer: false,
    // The tiny Stable Diffusion fixtures stand in for installed text-to-image models.
    env: {
      VIDPLAY_DEVICE: process.env.VIDPLAY_DEVICE ?? "cpu",
      VIDPLAY_MODELS_DIR: `${root}/model/tests/fixtures/sd`,
      HF_HOME: path.join(dataDir, "hf"),
      RUST_LOG: "info",
    },
    stdout: "pipe",
    stderr: "pipe",
  },
});
