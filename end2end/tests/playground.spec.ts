import { expect, Page, test } from "@playwright/test";
import * as http from "http";
import * as path from "path";

const fixtures = path.join(__dirname, "..", "fixtures");
const shots = path.join(__dirname, "..", "test-results", "screenshots");
const docShots = path.join(__dirname, "..", "..", "docs", "screenshots");

/** A screenshot for the README: the first screen of the page, as a newcomer sees it. */
async function docShot(page: Page, name: string) {
  await page.screenshot({ path: `${docShots}/${name}.png` });
}

async function hydrated(page: Page) {
  // The wasm bundle marks the page once it has taken over.
  await page.waitForFunction(() => document.documentElement.dataset.hydrated === "true", null, { timeout: 60_000 });
}

async function setSteps(page: Page, steps: number) {
  await page.getByLabel("Steps", { exact: true }).fill(String(steps));
}

/** Waits for the newest job card to finish and returns its video id. */
async function waitForDone(page: Page): Promise<string> {
  const card = page.locator("section.jobs article.job").first();
  await expect(card).toHaveAttribute("data-state", "done", { timeout: 150_000 });
  const href = await card.getByRole("link", { name: "Open the video page" }).getAttribute("href");
  expect(href).toMatch(/^\/v\/[0-9a-f]+$/);
  return href!.slice(3);
}

async function expectPlays(page: Page, selector: string) {
  await page.waitForFunction(
    (sel) => {
      const v = document.querySelector(sel) as HTMLVideoElement | null;
      return !!v && v.readyState >= 2 && v.duration > 0;
    },
    selector,
    { timeout: 60_000 },
  );
}

test("build a prompt from chips, watch it generate, play it, find it in the gallery", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  const groups = page.locator(".chip-group");
  await groups.filter({ hasText: "color" }).getByRole("button", { name: "red", exact: true }).click();
  await groups.filter({ hasText: "subject" }).getByRole("button", { name: "ball", exact: true }).click();
  await groups.filter({ hasText: "action" }).getByRole("button", { name: "moving right", exact: true }).click();
  await groups.filter({ hasText: "setting" }).getByRole("button", { name: "grass field", exact: true }).click();
  const prompt = page.getByLabel("Assembled prompt (editable)");
  await expect(prompt).toHaveValue("red ball moving right grass field");
  await expect(groups.getByRole("button", { name: "red", exact: true })).toHaveAttribute("aria-pressed", "true");
  // Free text is kept; unknown words are flagged.
  await prompt.fill("a red ball moving right on a grass field, sparkly");
  await expect(page.locator(".reading .ignored")).toContainText("sparkly");
  await docShot(page, "create");

  await setSteps(page, 40);
  await page.getByRole("button", { name: "Generate" }).click();
  const card = page.locator("section.jobs article.job").first();
  await expect(card).toBeVisible();
  await expect(card.locator(".progress-text")).toContainText(/step \d+ of 40/);
  await docShot(page, "progress");
  const id = await waitForDone(page);
  await expectPlays(page, "section.jobs video.result");
  await expect(card.locator(".meta")).toContainText(/seed \d+/);

  await page.goto("/gallery");
  await hydrated(page);
  await expect(page.locator(`li.card[data-id="${id}"]`)).toBeVisible();
  await docShot(page, "gallery");
  await page.getByLabel("Search prompts").fill("red ball");
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page).toHaveURL(/q=red\+ball/);
  await expect(page.locator(`li.card[data-id="${id}"]`)).toBeVisible();
  await page.getByLabel("Search prompts").fill("purple zebra");
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page.getByText("No videos match.")).toBeVisible();
  await expect(page.locator("li.card")).toHaveCount(0);

  // The video page plays it and shows its parameters.
  await page.goto(`/v/${id}`);
  await hydrated(page);
  await expectPlays(page, "video.player");
  await expect(page.locator("table.params")).toContainText("vidplay-toy-1");
  await docShot(page, "video");
});

test("upload an image and animate it; the first frame resembles the upload", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await page.getByLabel("Image to video").check();
  await page.getByLabel("Drop an image here, paste one, or choose a file").setInputFiles(path.join(fixtures, "photo.png"));
  await expect(page.locator(".preview img")).toBeVisible();
  await page.getByLabel("Assembled prompt (editable)").fill("camera pans left");
  await page.getByLabel("Frames", { exact: true }).fill("8");
  await page.getByRole("button", { name: "Generate" }).click();
  const id = await waitForDone(page);

  await page.goto(`/v/${id}`);
  await hydrated(page);
  await expect(page.locator("figure.source img")).toBeVisible();
  // Compare the first frame with the stored source image (both at the model's 32x32).
  const diffs = await page.evaluate(async (id) => {
    const load = (src: string) =>
      new Promise<HTMLImageElement>((ok, err) => {
        const img = new Image();
        img.onload = () => ok(img);
        img.onerror = err;
        img.src = src;
      });
    const pixels = (img: HTMLImageElement) => {
      const c = document.createElement("canvas");
      c.width = 32;
      c.height = 32;
      const ctx = c.getContext("2d")!;
      ctx.drawImage(img, 0, 0, 32, 32);
      return ctx.getImageData(0, 0, 32, 32).data;
    };
    const meanAbs = (a: Uint8ClampedArray, b: Uint8ClampedArray) => {
      let s = 0;
      for (let i = 0; i < a.length; i++) if (i % 4 !== 3) s += Math.abs(a[i] - b[i]);
      return s / ((a.length * 3) / 4);
    };
    const source = pixels(await load(`/media/${id}/input.png`));
    const first = pixels(await load(`/media/${id}/frames/0000.png`));
    const flipped = new Uint8ClampedArray(source.length);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32 * 4; x++) flipped[y * 128 + x] = source[(31 - y) * 128 + x];
    return { same: meanAbs(source, first), other: meanAbs(flipped, first) };
  }, id);
  expect(diffs.same).toBeLessThan(12);
  expect(diffs.same * 3).toBeLessThan(diffs.other);
});

test("animate several pictures at once: one clip each, as one group", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await page.getByLabel("Image to video").check();
  const photo = path.join(fixtures, "photo.png");
  await page.getByLabel("Drop an image here, paste one, or choose a file").setInputFiles([photo, photo]);
  await expect(page.getByText("2 pictures: each is animated")).toBeVisible();
  await page.getByLabel("Assembled prompt (editable)").fill("zoom in");
  await page.getByLabel("Frames", { exact: true }).fill("4");
  await page.getByRole("button", { name: "Generate" }).click();
  const cards = page.locator("section.jobs article.job");
  await expect(cards).toHaveCount(2);
  for (const i of [0, 1]) {
    await expect(cards.nth(i)).toHaveAttribute("data-state", "done", { timeout: 150_000 });
  }
  const href = await cards.first().getByRole("link", { name: "Open the video page" }).getAttribute("href");
  const video = await (await page.request.get(`/api/videos/${href!.slice(3)}`)).json();
  const group = await (await page.request.get(`/api/videos?group=${video.params.group}`)).json();
  expect(group.videos).toHaveLength(2);
});

/** Waits on the queue page (where a form without JavaScript lands) for the newest job. */
async function waitForQueued(page: Page): Promise<string> {
  await expect(page).toHaveURL(/\/queue/);
  await hydrated(page);
  const card = page.locator("article.job").first();
  await expect(card).toHaveAttribute("data-state", "done", { timeout: 150_000 });
  const href = await card.getByRole("link", { name: "Open the video page" }).getAttribute("href");
  return href!.slice(3);
}

test("extend a video from its page, then plan a shot list and re-roll one segment", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await page.getByLabel("Image to video").check();
  await page.getByLabel("Drop an image here, paste one, or choose a file").setInputFiles(path.join(fixtures, "photo.png"));
  await page.getByLabel("Assembled prompt (editable)").fill("camera pans left");
  await page.getByLabel("Frames", { exact: true }).fill("6");
  await page.getByRole("button", { name: "Generate" }).click();
  const id = await waitForDone(page);

  await page.goto(`/v/${id}`);
  await hydrated(page);
  await page.getByText("Extend…").click();
  await page.getByLabel("What happens next").fill("zoom in while it snows");
  await page.getByRole("button", { name: "Extend", exact: true }).click();
  const extended = await waitForQueued(page);
  await page.goto(`/v/${extended}`);
  await hydrated(page);
  await expect(page.getByRole("link", { name: "the video it extends" })).toHaveAttribute("href", `/v/${id}`);
  const parts = page.locator("ol.segments li.segment");
  await expect(parts).toHaveCount(2);
  await expect(parts.nth(1)).toContainText("zoom in while it snows");
  await expect(page.locator("table.params tr", { hasText: "Frames" }).first()).toBeVisible();
  await expectPlays(page, "video.player");

  // A shot list from the Create page: three segments in one job.
  await page.goto("/");
  await hydrated(page);
  await page.getByLabel("Image to video").check();
  await page.getByLabel("Drop an image here, paste one, or choose a file").setInputFiles(path.join(fixtures, "photo.png"));
  await page.getByLabel("Assembled prompt (editable)").fill("camera pans right");
  await page.getByText("Shot list: then…").click();
  await page.getByLabel(/More segments, one prompt per line/).fill("zoom in\nstatic camera, rain");
  await page.getByLabel("Frames", { exact: true }).fill("4");
  await page.getByRole("button", { name: "Generate" }).click();
  const list = await waitForDone(page);
  await page.goto(`/v/${list}`);
  await hydrated(page);
  const segments = page.locator("ol.segments li.segment");
  await expect(segments).toHaveCount(3);
  await expect(segments.nth(2)).toContainText("static camera, rain");
  await page.screenshot({ path: `${shots}/shot-list.png`, fullPage: true });
  await segments.nth(1).getByRole("button", { name: "Re-roll" }).click();
  const rerolled = await waitForQueued(page);
  expect(rerolled).not.toBe(list);
});

test("cancel a running job", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await page.getByLabel("Assembled prompt (editable)").fill("a green star spinning in the desert");
  await setSteps(page, 200);
  await page.getByRole("button", { name: "Generate" }).click();
  const card = page.locator("section.jobs article.job").first();
  await expect(card.locator(".progress-text")).toContainText(/step [1-9]\d* of 200/);
  await card.getByRole("button", { name: "Cancel" }).click();
  await expect(card).toHaveAttribute("data-state", "cancelled");
  await page.goto("/queue");
  await hydrated(page);
  await expect(page.locator("article.job[data-state=cancelled]").first()).toBeVisible();
  await page.screenshot({ path: `${shots}/queue.png`, fullPage: true });
});

test("a page whose live updates the server turns away says so", async ({ page, baseURL }) => {
  // Eight event streams from this machine (the most one client may hold), opened outside the
  // browser (which would hold six at most to one host over HTTP/1.1).
  const held: http.ClientRequest[] = [];
  for (let i = 0; i < 8; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${baseURL}/api/jobs/events`, (res) => {
        expect(res.statusCode).toBe(200);
        resolve();
      });
      req.on("error", reject);
      held.push(req);
    });
  }
  try {
    await page.goto("/queue");
    await hydrated(page);
    await expect(page.getByRole("alert")).toContainText("Live progress is off");
  } finally {
    held.forEach((req) => req.destroy());
  }
  // The server frees the streams (the next tests follow jobs live): wait until one opens.
  await expect
    .poll(
      () =>
        new Promise<number>((resolve) => {
          const req = http.get(`${baseURL}/api/jobs/events`, (res) => {
            resolve(res.statusCode ?? 0);
            req.destroy();
          });
          req.on("error", () => resolve(0));
        }),
      { timeout: 60_000 },
    )
    .toBe(200);
});

test("remix opens Create with everything filled in", async ({ page }) => {
  await page.goto("/gallery");
  await hydrated(page);
  const first = page.locator("li.card").first();
  const id = await first.getAttribute("data-id");
  await page.goto(`/v/${id}`);
  await hydrated(page);
  const seed = (await page.locator("table.params tr", { hasText: "Seed" }).locator("td").textContent())!.trim();
  const title = (await page.locator("h1").textContent())!.trim();
  await page.getByRole("link", { name: "Remix" }).click();
  await expect(page).toHaveURL(new RegExp(`/\\?remix=${id}`));
  await hydrated(page);
  await expect(page.getByLabel("Assembled prompt (editable)")).toHaveValue(title);
  await expect(page.getByLabel("Seed", { exact: true })).toHaveValue(seed);
});

test("a bad upload shows a clear error and nothing is queued", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  const before = await page.request.get("/api/jobs").then((r) => r.json());
  await page.getByLabel("Image to video").check();
  await page.getByLabel("Drop an image here, paste one, or choose a file").setInputFiles(path.join(fixtures, "not-an-image.png"));
  await page.getByRole("button", { name: "Generate" }).click();
  await expect(page.getByRole("alert")).toContainText("not an image");
  const after = await page.request.get("/api/jobs").then((r) => r.json());
  expect(after.length).toBe(before.length);
  await page.screenshot({ path: `${shots}/bad-upload.png`, fullPage: true });
});

test("make a keyframe with an installed SD model, re-roll it, keep it, animate it", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await page.getByLabel("Keyframe (text to image)").check();
  await expect(page.getByRole("combobox", { name: /Model/ })).toHaveValue("sd1");
  await expect(page.getByLabel("Frames per second")).toBeHidden();
  await page.getByRole("textbox", { name: "Prompt", exact: true }).fill("a red cat in space");
  await page.getByLabel("Negative prompt").fill("blurry");
  await page.getByLabel("Width").fill("64");
  await page.getByLabel("Height").fill("64");
  await setSteps(page, 2);
  // A kept seed: re-roll must still draw a new one.
  await page.getByLabel("Seed", { exact: true }).fill("5");
  await page.getByRole("button", { name: "Generate" }).click();
  const first = page.locator("section.jobs article.job").first();
  await expect(first).toHaveAttribute("data-state", "done", { timeout: 150_000 });
  const keyframe = first.locator("img.result");
  await expect(keyframe).toBeVisible();
  await page.waitForFunction(() => {
    const img = document.querySelector("section.jobs article.job img.result") as HTMLImageElement | null;
    return !!img && img.complete && img.naturalWidth === 64;
  });
  const firstMeta = await first.locator(".meta").textContent();
  await page.screenshot({ path: `${shots}/keyframe.png`, fullPage: true });

  // Re-roll: the same settings with a new seed, as a new card on top.
  await first.getByRole("button", { name: "Re-roll" }).click();
  await expect(page.locator("section.jobs article.job")).toHaveCount(2);
  const second = page.locator("section.jobs article.job").first();
  await expect(second).toHaveAttribute("data-state", "done", { timeout: 150_000 });
  expect(firstMeta).toContain("seed 5 ");
  expect(await second.locator(".meta").textContent()).not.toContain("seed 5 ");

  // Keep it (a favourite in the gallery), then animate it.
  await second.getByRole("button", { name: "Keep" }).click();
  await expect(second.getByRole("button", { name: "Kept ★" })).toBeVisible();
  const href = await second.getByRole("link", { name: "Open the image page" }).getAttribute("href");
  const id = href!.slice(3);
  await page.goto("/gallery?mode=text-to-image&favorites=1");
  await hydrated(page);
  await expect(page.locator(`li.card[data-id="${id}"] img.still`)).toBeVisible();

  await page.goto(`/v/${id}`);
  await hydrated(page);
  await page.getByRole("link", { name: "Animate this keyframe" }).click();
  await expect(page).toHaveURL(new RegExp(`/\\?animate=${id}`));
  await hydrated(page);
  await expect(page.getByLabel("Image to video")).toBeChecked();
  await expect(page.locator(".preview img")).toHaveAttribute("src", `/media/${id}/image.png`);
  await page.getByLabel("Assembled prompt (editable)").fill("camera pans left");
  // The built-in model animates by motion: frames, not sampling steps.
  await expect(page.getByLabel("Steps", { exact: true })).toBeHidden();
  await page.getByLabel("Frames", { exact: true }).fill("4");
  await page.getByRole("button", { name: "Generate" }).click();
  const video = await waitForDone(page);
  await page.goto(`/v/${video}`);
  await hydrated(page);
  await expect(page.locator("figure.source img")).toBeVisible();
});

test("a keyframe with a LoRA from the LoRA folder, recorded with the image", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  // The built-in model takes no LoRAs: no rows.
  await expect(page.getByLabel("LoRA 1")).toHaveCount(0);
  await page.getByLabel("Keyframe (text to image)").check();
  await expect(page.getByRole("combobox", { name: /Model/ })).toHaveValue("sd1");
  // A step distillation offers the settings it was trained for.
  await page.getByLabel("LoRA 2").selectOption("style-lightning-4steps.safetensors");
  await page.getByRole("button", { name: "Use its settings" }).click();
  await expect(page.getByLabel("Steps", { exact: true })).toHaveValue("4");
  await expect(page.getByLabel("Guidance", { exact: true })).toHaveValue("1");
  await page.getByLabel("LoRA 2").selectOption("");
  await expect(page.getByRole("button", { name: "Use its settings" })).toHaveCount(0);
  await page.getByLabel("LoRA 1").selectOption("style.safetensors");
  await page.getByLabel("Scale").first().fill("0.7");
  await page.getByRole("textbox", { name: "Prompt", exact: true }).fill("a red cat in space");
  await page.getByLabel("Width").fill("64");
  await page.getByLabel("Height").fill("64");
  await setSteps(page, 2);
  await page.getByRole("button", { name: "Generate" }).click();
  const card = page.locator("section.jobs article.job").first();
  await expect(card).toHaveAttribute("data-state", "done", { timeout: 150_000 });
  const href = await card.getByRole("link", { name: "Open the image page" }).getAttribute("href");
  const video = await (await page.request.get(`/api/videos/${href!.slice(3)}`)).json();
  expect(video.params.loras).toEqual([{ file: "style.safetensors", scale: 0.7 }]);
  expect(video.metadata.loras[0].file).toBe("style.safetensors");
});

test("text to video through a keyframe and an installed SVD model", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await page.getByRole("combobox", { name: /Model/ }).selectOption("svd1");
  await expect(page.getByLabel("Text to video")).toBeChecked();
  await expect(page.getByLabel("Width")).toBeVisible();
  // No chips for a free-text model: the field is just the prompt.
  await page.getByRole("textbox", { name: "Prompt", exact: true }).fill("a red cat in space");
  await page.getByLabel("Width").fill("64");
  await page.getByLabel("Height").fill("64");
  await page.getByLabel("Frames", { exact: true }).fill("4");
  await setSteps(page, 2);
  await page.getByRole("button", { name: "Generate" }).click();
  const video = await waitForDone(page);
  await page.goto(`/v/${video}`);
  await hydrated(page);
  await expect(page.getByText("Keyframe, made from the prompt by sd1, then animated")).toBeVisible();
  await expect(page.locator(`img[src="/media/${video}/keyframe.png"]`)).toBeVisible();
  await expectPlays(page, "video.player");
  await page.screenshot({ path: `${shots}/svd-text-to-video.png`, fullPage: true });
});

test("animate a picture to a last frame with an installed Wan image-to-video model", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await page.getByLabel("Image to video").check();
  await page.getByRole("combobox", { name: /Model/ }).selectOption("wan-i2v1");
  await page.getByLabel("Drop an image here, paste one, or choose a file").setInputFiles(path.join(fixtures, "photo.png"));
  await page.getByLabel("Last frame", { exact: true }).setInputFiles(path.join(fixtures, "photo.png"));
  await expect(page.getByLabel("Guidance, low noise")).toHaveValue("0");
  await page.getByLabel("Guidance, low noise").fill("2.5");
  await page.getByLabel("Assembled prompt (editable)").fill("the picture comes alive");
  await page.getByLabel("Width").fill("32");
  await page.getByLabel("Height").fill("32");
  await page.getByLabel("Frames", { exact: true }).fill("5");
  await setSteps(page, 2);
  await page.getByRole("button", { name: "Generate" }).click();
  const video = await waitForDone(page);
  const meta = (await (await page.request.get(`/api/videos/${video}`)).json()).metadata;
  expect([meta.family, meta.params.last_image, meta.params.guidance_2]).toEqual(["wan-image-to-video", true, 2.5]);
  await page.goto(`/v/${video}`);
  await hydrated(page);
  await expect(page.getByText("given (the clip ends on an uploaded picture)")).toBeVisible();
  await expectPlays(page, "video.player");
});

test("dropping a video made here restores all its settings", async ({ page }) => {
  const job = await page.request
    .post("/api/jobs", { data: { prompt: "a blue star moving left in the night sky", steps: 2, seed: 77, frames: 6, fps: 5, motion: 1.5 } })
    .then((r) => r.json());
  await expect
    .poll(async () => (await page.request.get(`/api/jobs/${job.id}`).then((r) => r.json())).state, { timeout: 150_000 })
    .toBe("done");
  await page.goto("/");
  await hydrated(page);
  await page.evaluate(async (url) => {
    const blob = await (await fetch(url)).blob();
    const transfer = new DataTransfer();
    transfer.items.add(new File([blob], "clip.mp4", { type: "video/mp4" }));
    document.querySelector("form.create")!.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, `/media/${job.id}/video.mp4`);
  await expect(page.getByRole("status")).toContainText("Settings restored from clip.mp4");
  await expect(page.getByLabel("Assembled prompt (editable)")).toHaveValue("a blue star moving left in the night sky");
  await expect(page.getByLabel("Seed", { exact: true })).toHaveValue("77");
  await expect(page.getByLabel("Frames", { exact: true })).toHaveValue("6");
  await expect(page.getByLabel("Frames per second")).toHaveValue("5");
  await expect(page.getByLabel("Motion strength")).toHaveValue("1.5");
  await expect(page.getByLabel("Steps", { exact: true })).toHaveValue("2");
});

test("the form is drawn from the model's description", async ({ page }) => {
  const models = await page.request.get("/api/models").then((r) => r.json());
  await page.goto("/");
  await hydrated(page);
  for (const m of models) {
    await page.getByRole("combobox", { name: /Model/ }).selectOption(m.id);
    const task = await page.locator('input[name="mode"]:checked').getAttribute("value");
    for (const p of m.params.filter((p: any) => p.tasks.length === 0 || p.tasks.includes(task))) {
      const control = page.locator(`[name="${p.name}"]`);
      await expect(control, `${m.id} ${p.name}`).toBeVisible();
      if (p.kind === "integer" || p.kind === "number") {
        await expect(control).toHaveAttribute("min", String(p.min));
        await expect(control).toHaveAttribute("max", String(p.max));
      }
    }
  }
});

/** Waits for the newest edit card in `scope` to finish and returns the new version's id. */
async function waitForVersion(page: Page, scope: string): Promise<string> {
  const card = page.locator(`${scope} article.job`).first();
  await expect(card).toHaveAttribute("data-state", "done", { timeout: 150_000 });
  const href = await card.getByRole("link", { name: "Open this version (edit it further)" }).getAttribute("href");
  expect(href).toMatch(/^\/v\/[0-9a-f]+$/);
  return href!.slice(3);
}

test("edit an image step by step: twice, back one step, branch, animate", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await page.getByLabel("Edit an image (instructions)").check();
  await expect(page.getByRole("combobox", { name: /Model/ })).toHaveValue("ip2p1");
  await expect(page.getByLabel("Image guidance")).toBeVisible();
  // Bad input: no image, then no instruction.
  await page.getByLabel("Instruction (what to change)").fill("make it a fireman");
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.getByRole("alert")).toContainText("choose an image to edit");
  await page.getByLabel("Drop an image here, paste one, or choose a file").setInputFiles(path.join(fixtures, "photo.png"));
  await expect(page.locator(".preview img")).toBeVisible();
  await page.getByLabel("Instruction (what to change)").fill("");
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.getByRole("alert")).toContainText("instruction is empty");
  await page.getByLabel("Instruction (what to change)").fill("make it a fireman");
  await setSteps(page, 2);
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  const v1 = await waitForVersion(page, "section.jobs");

  // The second edit applies to the first's result.
  await page.goto(`/v/${v1}`);
  await hydrated(page);
  await page.getByRole("textbox", { name: "Instruction" }).fill("add snow");
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  const v2 = await waitForVersion(page, "section.edit");
  await page.goto(`/v/${v2}`);
  await hydrated(page);
  const versions = page.locator("ol.versions li");
  await expect(versions).toHaveCount(3);
  await expect(versions.nth(0)).toContainText("Original");
  await expect(versions.nth(1)).toContainText("make it a fireman");
  await expect(versions.nth(2)).toContainText("add snow");
  await expect(versions.nth(2)).toHaveAttribute("aria-current", "true");
  // Before and after: the slider moves the line.
  await expect(page.locator(".compare img.before")).toHaveAttribute("src", `/media/${v1}/image.png`);
  await page.getByLabel("Before ◀ ▶ after").fill("20");
  await expect(page.locator(".compare img.after")).toHaveAttribute("style", /inset\(0 0 0 20\.0%\)/);
  await page.screenshot({ path: `${shots}/edit-chain.png`, fullPage: true });

  // Back one step, and branch from there.
  await versions.nth(1).getByRole("link").click();
  await expect(page).toHaveURL(new RegExp(`/v/${v1}$`));
  await hydrated(page);
  await page.getByRole("textbox", { name: "Instruction" }).fill("make it blue");
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  const v3 = await waitForVersion(page, "section.edit");
  await page.goto(`/v/${v3}`);
  await hydrated(page);
  await expect(page.locator("ol.versions li")).toHaveCount(3);
  await expect(page.locator("ol.versions li").nth(2)).toContainText("make it blue");
  const api = await page.request.get(`/api/videos/${v3}/chain`).then((r) => r.json());
  expect(api.chain.map((v: any) => v.id)).toEqual([v1, v3]);
  // Every version is in the gallery.
  await page.goto("/gallery?mode=edit");
  await hydrated(page);
  for (const id of [v1, v2, v3]) await expect(page.locator(`li.card[data-id="${id}"] img.still`)).toBeVisible();

  // Animate the branch.
  await page.goto(`/v/${v3}`);
  await hydrated(page);
  await page.getByRole("link", { name: "Animate this", exact: true }).click();
  await hydrated(page);
  await expect(page.getByLabel("Image to video")).toBeChecked();
  await expect(page.locator(".preview img")).toHaveAttribute("src", `/media/${v3}/image.png`);
  await page.getByLabel("Assembled prompt (editable)").fill("camera pans left");
  await page.getByLabel("Frames", { exact: true }).fill("4");
  await page.getByRole("button", { name: "Generate" }).click();
  const video = await waitForDone(page);
  await page.goto(`/v/${video}`);
  await hydrated(page);
  await expect(page.locator("figure.source img")).toBeVisible();
});

test("make two variants, compare them blind, vote, and see the leaderboard change", async ({ page }) => {
  await page.goto("/leaderboard?by=seed");
  await expect(page.getByText("No votes yet.")).toBeVisible();

  await page.goto("/");
  await hydrated(page);
  await page.getByLabel("Assembled prompt (editable)").fill("a red ball moving right on a grass field");
  await setSteps(page, 2);
  await page.getByText("Variants: make several at once").click();
  await page.getByLabel("Vary").selectOption("seed");
  await page.getByLabel("Values").fill("2");
  await page.getByRole("button", { name: "Generate" }).click();
  const cards = page.locator("section.jobs article.job");
  await expect(cards).toHaveCount(2);
  for (const i of [0, 1]) {
    await expect(cards.nth(i)).toHaveAttribute("data-state", "done", { timeout: 150_000 });
  }
  await cards.first().getByRole("link", { name: "Open the video page" }).click();
  await expect(page.locator(".scores")).toContainText("Smoothness");
  await page.getByRole("link", { name: "Compare the variants" }).click();
  await hydrated(page);
  await expect(page.locator(".compare-item")).toHaveCount(2);
  await expect(page.locator(".compare-item .meta").first()).toContainText("Hidden until you vote");
  await expectPlays(page, ".compare-item video");
  const quality = page.getByRole("form", { name: "Vote: Quality" });
  await quality.getByLabel("A", { exact: true }).check();
  await quality.getByLabel("sharper").check();
  await quality.getByRole("button", { name: "Vote for quality" }).click();
  await expect(quality.getByRole("status")).toContainText("Vote recorded");
  // Voted: which was which is shown.
  await expect(page.locator(".compare-item .meta").first()).toContainText("vidplay-toy-1");
  await page.screenshot({ path: `${shots}/compare.png`, fullPage: true });

  await page.goto("/leaderboard?by=seed");
  const table = page.locator('section.standings[data-axis="quality"] table');
  await expect(table).toContainText("100%");
  await expect(table.locator("tbody tr")).toHaveCount(2);
  await page.screenshot({ path: `${shots}/leaderboard.png`, fullPage: true });
});
