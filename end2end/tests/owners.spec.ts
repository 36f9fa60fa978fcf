import { expect, test } from "@playwright/test";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

// A second playground, with named tokens: people see each other's work but may change only
// their own, and the hydrated pages hide what they may not do.
const root = path.resolve(__dirname, "..", "..");
const target = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : `${root}/target`;
const vidplay = process.env.VIDPLAY_BIN ?? `${target}/release/vidplay`;
const siteRoot = process.env.VIDPLAY_SITE_ROOT ?? `${target}/site`;
const port = Number(process.env.VIDPLAY_E2E_PORT ?? 3917) + 1;
const base = `http://127.0.0.1:${port}`;
const ann = "ann-secret-123456";
const bob = "bob-secret-123456";

let server: ChildProcess | undefined;

test.beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vidplay-e2e-owners-"));
  fs.writeFileSync(path.join(dir, "tokens"), `ann ${ann}\nbob ${bob}\n`);
  fs.mkdirSync(path.join(dir, "models"));
  server = spawn(
    vidplay,
    ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", path.join(dir, "data"), "--site-root", siteRoot,
      "--no-examples", "--tokens-file", path.join(dir, "tokens")],
    {
      env: {
        ...process.env,
        VIDPLAY_DEVICE: "cpu",
        VIDPLAY_MODELS_DIR: path.join(dir, "models"),
        HF_HOME: path.join(dir, "hf"),
        // The first decode of a prompt with this word runs out of memory (a test-only fault).
        VIDPLAY_TEST_FAULTS: "fail-decode-on=DECODEFAULT",
      },
      stdio: "ignore",
    },
  );
  await expect
    .poll(async () => (await fetch(`${base}/signin`).catch(() => undefined))?.status ?? 0, { timeout: 60_000 })
    .toBe(200);
});

test.afterAll(() => {
  server?.kill("SIGTERM");
});

/** Queues a job as Ann; returns its id. */
async function annQueues(steps: number, prompt = "a red ball bouncing"): Promise<string> {
  const res = await fetch(`${base}/api/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${ann}`, "content-type": "application/json" },
    body: JSON.stringify({ prompt, steps, frames: 8 }),
  });
  expect(res.status).toBe(201);
  return (await res.json()).id;
}

async function stateOf(id: string): Promise<string> {
  const res = await fetch(`${base}/api/jobs/${id}`, { headers: { authorization: `Bearer ${ann}` } });
  return (await res.json()).state;
}

test("a person sees another's work, and is offered no cancel or delete for it", async ({ page }) => {
  const done = await annQueues(1);
  await expect.poll(() => stateOf(done), { timeout: 120_000 }).toBe("done");
  // Bob signs in and opens Ann's clip.
  await page.goto(`${base}/signin?next=/v/${done}`);
  await page.getByLabel("Token").fill(bob);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(`${base}/v/${done}`);
  await page.waitForFunction(() => document.documentElement.dataset.hydrated === "true", null, { timeout: 60_000 });
  await expect(page.getByRole("row", { name: /Made by ann/ })).toBeVisible();
  await expect(page.getByText("Delete…")).toHaveCount(0);
  // A job of Ann's running, on Bob's queue page: live, and without a Cancel.
  const running = await annQueues(200);
  await page.goto(`${base}/queue`);
  await page.waitForFunction(() => document.documentElement.dataset.hydrated === "true", null, { timeout: 60_000 });
  const card = page.locator(`#job-${running}`);
  await expect(card.locator(".progress-text")).toContainText(/step [1-9]\d* of 200/, { timeout: 60_000 });
  await expect(card).toContainText("ann's");
  await expect(card.getByRole("button", { name: "Cancel" })).toHaveCount(0);
  // Bob's own job has one.
  const res = await page.request.post(`${base}/api/jobs`, { data: { prompt: "a blue star", steps: 200, frames: 8 } });
  expect(res.status()).toBe(201);
  const mine = (await res.json()).id;
  await expect(page.locator(`#job-${mine}`).getByRole("button", { name: "Cancel" })).toBeVisible();
  await page.locator(`#job-${mine}`).getByRole("button", { name: "Cancel" }).click();
  await expect(page.locator(`#job-${mine}`)).toHaveAttribute("data-state", "cancelled");
  // Ann's is cancelled by Ann.
  const cancel = await fetch(`${base}/api/jobs/${running}`, { method: "DELETE", headers: { authorization: `Bearer ${ann}` } });
  expect(cancel.status).toBe(200);
});

test("a decode that failed is retried from the queue page by its owner, without sampling again", async ({ page }) => {
  const id = await annQueues(2, "a green star spinning DECODEFAULT");
  await expect.poll(() => stateOf(id), { timeout: 120_000 }).toBe("decode-failed");
  await page.goto(`${base}/signin?next=/queue`);
  await page.getByLabel("Token").fill(ann);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(`${base}/queue`);
  await page.waitForFunction(() => document.documentElement.dataset.hydrated === "true", null, { timeout: 60_000 });
  const card = page.locator(`#job-${id}`);
  await expect(card.locator(".badge")).toHaveText("decode failed");
  await expect(card.getByRole("alert")).toContainText("The sampled latents are kept");
  await card.getByRole("button", { name: "Retry decode" }).click();
  await expect(card).toHaveAttribute("data-state", "done", { timeout: 60_000 });
  await expect(card.getByRole("link", { name: "Open the video page" })).toBeVisible();
});
