// Opens the Covid-19 handbook page in Debian's chromium (headless, through
// playwright-core) at a small phone's viewport (360×740, touch, 3× pixels), and reports
// what a customer would see: the title, the greeting, whether anything is wider than
// the screen, the body text size, requests to other hosts, and a full-page screenshot.
//
//   node handbook_page.mjs --url http://127.0.0.1:8081/s/TOKEN \
//        --screenshot target/browser/handbook-page.png
//
// Prints one JSON line; exits non-zero (with the reason) when the page cannot be read.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);

const profile = mkdtempSync(join(tmpdir(), "tongdai-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 360, height: 740 },
  deviceScaleFactor: 3,
  isMobile: true,
  hasTouch: true,
  userAgent:
    "Mozilla/5.0 (Linux; Android 12; SM-A525F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0 Mobile Safari/537.36",
});
const result = {};
try {
  const page = context.pages()[0] || (await context.newPage());
  const origin = new URL(args.url).origin;
  const elsewhere = [];
  page.on("request", (r) => { if (!r.url().startsWith(origin)) elsewhere.push(r.url()); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const response = await page.goto(args.url);
  result.status = response.status();
  result.title = await page.title();
  result.h1 = await page.textContent("h1");
  result.greeting = await page.textContent(".hello");
  result.viewport_width = await page.evaluate(() => window.innerWidth);
  result.scroll_width = await page.evaluate(() => document.documentElement.scrollWidth);
  result.body_font_px = await page.evaluate(() => parseFloat(getComputedStyle(document.body).fontSize));
  result.sections = await page.$$eval("h2", (h) => h.map((x) => x.textContent));
  mkdirSync(dirname(args.screenshot), { recursive: true });
  await page.screenshot({ path: args.screenshot, fullPage: true });
  result.screenshot = args.screenshot;
  result.requests_elsewhere = elsewhere;
  result.page_errors = errors;
  console.log(JSON.stringify(result));
} catch (e) {
  console.log(JSON.stringify({ ...result, error: String(e) }));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
