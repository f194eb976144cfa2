// Drives Debian's chromium (headless, through playwright-core) against the live page:
// signs in with a supervisor token, waits until the page shows the expected number of
// calls in progress (pushed over Server-Sent Events, no reload), checks what a row
// shows, reads the campaign, satisfaction and trunk panels (waiting for the trunk's
// health to read `--trunk-health` when given), takes a screenshot, switches to
// English, and optionally waits for the calls to end and be counted — still without
// reloading.
//
//   node live_page.mjs --url http://127.0.0.1:8080 --token T --calls 3 \
//        --screenshot target/browser/live-page.png [--trunk-health "Hoạt động"] \
//        [--then-calls 0 --then-today 3]
//
// Prints one JSON line with what it saw; exits non-zero (with the reason) otherwise.
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
const url = args.url;
const calls = Number(args.calls);
const timeout = 30000;

const profile = mkdtempSync(join(tmpdir(), "tongdai-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1280, height: 1000 },
  timezoneId: "Europe/Paris", // the page must show Hanoi time whatever the browser's zone
});
const result = {};
try {
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url + "/live");
  // A wrong token is refused on the page.
  await page.fill("[data-testid=token-input]", "td_wrong");
  await page.click("[data-testid=login-button]");
  await page.waitForFunction(
    () => document.querySelector("[data-testid=login-error]").textContent.length > 0,
    null, { timeout },
  );
  result.wrong_token_message = await page.textContent("[data-testid=login-error]");
  await page.fill("[data-testid=token-input]", args.token);
  await page.click("[data-testid=login-button]");
  await page.waitForFunction(
    (n) => document.querySelector("[data-testid=active-count]").textContent === String(n)
      && document.querySelectorAll("[data-testid=active-call]").length === n,
    calls, { timeout },
  );
  result.connection = await page.textContent("[data-testid=connection]");
  result.active_count = Number(await page.textContent("[data-testid=active-count]"));
  result.rows = await page.$$eval("[data-testid=active-call]", (rows) =>
    rows.map((r) => Array.from(r.children).map((td) => td.textContent)));
  result.cap_left = await page.textContent("[data-testid=cap-left]");
  result.lines = await page.$$eval("[data-testid=line]", (rows) =>
    rows.map((r) => ({ line: r.dataset.line, active: r.children[1].textContent,
      outbound_queue: r.children[4].textContent })));
  if (args["trunk-health"] !== undefined) {
    await page.waitForFunction(
      (h) => document.querySelector("[data-testid=trunk-health]").textContent === h,
      args["trunk-health"], { timeout },
    );
  }
  const panels = async () => ({
    campaigns: await page.$$eval("[data-testid=campaign]", (rows) => rows.map((r) => ({
      id: r.dataset.campaignId,
      cells: Array.from(r.children).map((td) => td.textContent),
      parts: Object.fromEntries(Array.from(r.querySelectorAll("[data-part]"))
        .map((s) => [s.dataset.part, parseFloat(s.style.width)])),
    }))),
    outbound_queue: await page.evaluate(() => Object.fromEntries(
      ["waiting", "dialing", "in-call", "retry", "done"].map(
        (k) => [k, document.querySelector("[data-testid=oq-" + k + "]").textContent]))),
    sat_share: await page.textContent("[data-testid=sat-share]"),
    sat_mean: await page.textContent("[data-testid=sat-mean]"),
    sat_respondents: await page.textContent("[data-testid=sat-respondents]"),
    sat_hist: await page.$$eval("[data-testid=chart-satisfaction] rect",
      (r) => r.map((x) => [Number(x.dataset.score), Number(x.dataset.count), Number(x.getAttribute("height"))])),
    sat_campaigns: await page.$$eval("[data-testid=satisfaction-campaign]",
      (rows) => rows.map((r) => Array.from(r.children).map((td) => td.textContent))),
    trunk_health: await page.textContent("[data-testid=trunk-health]"),
    trunk_rows: await page.$$eval("[data-testid=trunk-rows] tr",
      (rows) => rows.map((r) => Array.from(r.children).map((td) => td.textContent))),
    campaign_headers: await page.$$eval("[data-testid=campaigns] th", (t) => t.map((x) => x.textContent)),
  });
  result.vi = await panels();
  result.clock = await page.textContent("[data-testid=clock]");
  result.title_vi = await page.textContent("h1");
  // Let a duration tick, then keep the picture.
  await page.waitForTimeout(1200);
  mkdirSync(dirname(args.screenshot), { recursive: true });
  await page.screenshot({ path: args.screenshot, fullPage: true });
  result.screenshot = args.screenshot;
  await page.click("[data-testid=lang-toggle]");
  result.title_en = await page.textContent("h1");
  result.header_en = await page.$$eval("[data-testid=active-calls] th", (t) => t.map((x) => x.textContent));
  result.en = await panels();
  if (args["then-calls"] !== undefined) {
    await page.waitForFunction(
      ([n, today]) => document.querySelector("[data-testid=active-count]").textContent === String(n)
        && Number(document.querySelector("[data-testid=calls-today]").textContent) >= today,
      [Number(args["then-calls"]), Number(args["then-today"] || 0)], { timeout: 60000 },
    );
    result.then_active = Number(await page.textContent("[data-testid=active-count]"));
    result.then_today = Number(await page.textContent("[data-testid=calls-today]"));
    result.dispositions_drawn = await page.$$eval("[data-testid=chart-dispositions] rect",
      (r) => r.map((x) => [x.dataset.disposition, Number(x.getAttribute("width"))]));
    result.cpm_bars = await page.$$eval("[data-testid=chart-cpm] rect", (r) => r.length);
  }
  result.page_errors = errors;
  console.log(JSON.stringify(result));
} catch (e) {
  console.log(JSON.stringify({ ...result, error: String(e) }));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
