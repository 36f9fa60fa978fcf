import { defineConfig } from "@playwright/test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

// One server for the whole run, on a fresh data dir, with the built-in model on the CPU and the
// tiny SD, SVD and InstructPix2Pix fixtures as installed models.
const port = Number(process.env.VIDPLAY_E2E_PORT ?? 3917);
const dataDir = path.join(os.tmpdir(), `vidplay-e2e-${process.pid}`);
const root = path.resolve(__dirname, "..");
// Installed models: the tiny SD fixture (keyframes), the tiny SVD and Wan 2.2 fixtures (image to
// video) and the tiny InstructPix2Pix fixture (an image editor); and a LoRA for the SD fixture in
// `loras/`.
// Both are named by this process's id, which an earlier run (of another checkout) may have had:
// links to anything but this checkout's fixtures are replaced.
const modelsDir = path.join(os.tmpdir(), `vidplay-e2e-models-${process.pid}`);
fs.mkdirSync(modelsDir, { recursive: true });
fs.mkdirSync(path.join(modelsDir, "loras"), { recursive: true });
for (const [name, rel] of [
  ["sd1", "sd/sd1"],
  ["svd1", "svd/svd1"],
  ["ip2p1", "ip2p/ip2p1"],
  ["wan-i2v1", "wan/wan-i2v1"],
  ["loras/style.safetensors", "sd/sd1-lora/peft.safetensors"],
  // Named as a step distillation: the form offers its settings.
  ["loras/style-lightning-4steps.safetensors", "sd/sd1-lora/kohya.safetensors"],
]) {
  const link = path.join(modelsDir, name);
  const fixture = path.resolve(__dirname, "..", "model/tests/fixtures", rel);
  let current: string | null = null;
  try {
    current = fs.readlinkSync(link);
  } catch {
    // No link yet.
  }
  if (current !== fixture) {
    fs.rmSync(link, { force: true });
    fs.symlinkSync(fixture, link);
  }
}
const target = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : `${root}/target`;
// The server binary: a `cargo build --release` by default; scripts/test names the one its own
// profile built.
const vidplay = process.env.VIDPLAY_BIN ?? `${target}/release/vidplay`;
// Where `cargo xtask site` wrote the bundle (scripts/test builds it in a target folder of its own).
const siteRoot = process.env.VIDPLAY_SITE_ROOT ?? `${target}/site`;

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
    command: `${vidplay} serve --addr 127.0.0.1:${port} --data-dir ${dataDir} --site-root ${siteRoot} --no-examples`,
    url: `http://127.0.0.1:${port}/`,
    timeout: 120_000,
    reuseExistingServer: false,
    // The tiny diffusers fixtures stand in for installed models.
    env: {
      VIDPLAY_DEVICE: process.env.VIDPLAY_DEVICE ?? "cpu",
      VIDPLAY_MODELS_DIR: modelsDir,
      HF_HOME: path.join(dataDir, "hf"),
      RUST_LOG: "info",
    },
    stdout: "pipe",
    stderr: "pipe",
  },
});
