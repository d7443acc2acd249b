// The dashboard in headless Chromium against a running handler fed with demo data:
// the feed shows the stored anomalies with their explanations, the drill-down chart has points,
// and an anomaly posted during the test appears without a reload. Saves a screenshot.
// Usage: node dashboard.test.mjs BASE_URL SCREENSHOT.png
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const fail = (message) => { console.error("FAIL: " + message); process.exit(1); };
const json = async (path, init) => {
  const r = await fetch(base + path, init);
  if (!r.ok) fail(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
};

const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(base + "/api/dashboard");

  // 1. The feed shows the stored anomalies, with their explanations.
  const stored = (await json("/api/history?limit=5")).anomalies;
  if (stored.length === 0) fail("the demo stored no anomalies");
  await page.waitForSelector("#feed tr", { timeout: 10000 });
  const feedText = await page.locator("#feed").innerText();
  for (const a of stored) {
    if (!feedText.includes(a.explanation)) fail(`the feed lacks "${a.explanation}"`);
    if (!feedText.includes(a.device_id)) fail(`the feed lacks ${a.device_id}`);
  }
  const rows = await page.locator("#feed tr").count();

  // 2. The drill-down: click a device; its chart has points and each channel's contribution.
  const device = stored[0].device_id;
  await page.locator(`#devices tr[data-device="${device}"]`).click();
  await page.waitForFunction((d) => document.getElementById("drill-device").textContent === d, device);
  await page.waitForFunction(() => document.querySelectorAll("#chart circle.point").length > 0);
  const points = await page.locator("#chart circle.point").count();
  const anomalous = await page.locator("#chart circle.point:not(.normal)").count();
  const contributions = await page.locator("#contributions tr.contribution").count();
  const channels = (await json("/api/model")).channels.length;
  if (anomalous === 0) fail("no anomalous point on the chart of a device with anomalies");
  if (contributions !== channels) fail(`${contributions} contribution bars for ${channels} channels`);

  // 3. A new anomaly appears without a reload.
  await page.evaluate(() => { window.__sameDocument = true; });
  const template = stored[0];
  const newest = new Date(Math.max(...stored.map((a) => Date.parse(a.window_end))));
  const windowEnd = new Date(newest.getTime() + 60_000).toISOString().replace(".000Z", "Z");
  const window = { ...template.features, device_id: "pump-live-test", window_end: windowEnd };
  const reply = await json("/ScoreWindows", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ Data: { events: JSON.stringify(window) }, Metadata: {} }),
  });
  const alerts = reply.Outputs.alerts.map((a) => JSON.parse(a));
  if (!alerts.some((a) => a.device_id === "pump-live-test")) fail("the posted window was not an anomaly");
  await page.waitForFunction(() => document.getElementById("feed").innerText.includes("pump-live-test"), null, { timeout: 10000 });
  if (!(await page.evaluate(() => window.__sameDocument === true))) fail("the page reloaded");
  const fresh = await page.locator("#feed tr.new").count();

  if (errors.length) fail("page errors: " + errors.join("; "));
  await page.waitForTimeout(300);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`dashboard OK: feed ${rows} rows with explanations, chart of ${device} ${points} points (${anomalous} anomalous), ` +
              `${contributions} channel bars, new anomaly shown live (${fresh} highlighted), screenshot ${screenshot}`);
} finally {
  await browser.close();
}
