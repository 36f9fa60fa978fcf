import { expect, test } from "@playwright/test";
import * as fs from "fs";
import * as path from "path";

// The first load of the Create page, as Chromium transfers it: the page, the compressed bundle
// (brotli), the stylesheet. The first budget was 500 KB (403 KB measured); scores, variants,
// compare and the leaderboard made the one bundle about 190 KB larger, so it is 640 KB until the
// bundle is split per page. The page must hydrate
// under the server's Content-Security-Policy; the bundle is cached for good.
test("the first page load is small, hydrates under the CSP, and the bundle is cached for good", async ({ page }) => {
  const violations: string[] = [];
  page.on("console", (msg) => {
    if (/Content.Security.Policy|Refused to/i.test(msg.text())) violations.push(msg.text());
  });
  const sizes: Promise<{ url: string; bytes: number }>[] = [];
  page.on("requestfinished", (request) => {
    if (request.url().includes("/api/jobs/events")) return; // a stream that never finishes
    sizes.push(
      request.sizes().then((s) => ({ url: request.url(), bytes: s.responseBodySize + s.responseHeadersSize })),
    );
  });
  const first = await page.goto("/");
  expect(first!.headers()["content-security-policy"]).toContain("frame-ancestors 'none'");
  await page.waitForFunction(() => document.documentElement.dataset.hydrated === "true", null, { timeout: 60_000 });
  await page.waitForLoadState("networkidle");
  const loaded = await Promise.all(sizes);
  const total = loaded.reduce((sum, r) => sum + r.bytes, 0);
  const wasm = loaded.find((r) => r.url.endsWith(".wasm"));
  const report = { total_bytes: total, wasm_bytes: wasm?.bytes, requests: loaded };
  fs.mkdirSync(path.join(__dirname, "..", "test-results"), { recursive: true });
  fs.writeFileSync(path.join(__dirname, "..", "test-results", "page-weight.json"), JSON.stringify(report, null, 2));
  console.log(`first load of /: ${loaded.length} requests, ${total} bytes transferred (wasm ${wasm?.bytes})`);
  expect(violations).toEqual([]);
  expect(wasm, "the wasm bundle was loaded").toBeTruthy();
  expect(total).toBeLessThanOrEqual(640 * 1024);

  // The bundle is content-named and cached for good, and sent compressed.
  const wasmResponse = await page.request.get(wasm!.url, { headers: { "accept-encoding": "br" } });
  expect(wasmResponse.headers()["cache-control"]).toContain("immutable");
  expect(wasmResponse.headers()["content-encoding"]).toBe("br");
});
