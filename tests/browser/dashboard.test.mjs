// The dashboard in headless Chromium against a running handler fed with demo data:
// the incidents table lists the stored incidents, open ones first, each with its channels and the
// explanation of its peak window; the feed shows the stored anomalies with their explanations; the
// drill-down chart has points; and an anomaly episode posted during the test appears (as an open
// incident, above the resolved ones, and in the feed) without a reload. Saves a screenshot.
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

  // 1b. Incidents: every stored one (as the API lists them: open first), each with its device,
  // its largest channels and their shares, and its peak window's explanation.
  const listed = await json("/api/incidents?limit=30");
  if (listed.count === 0) fail("the demo opened no incidents");
  await page.waitForFunction((n) => document.querySelectorAll("#incidents tr.incident").length === n, listed.count, { timeout: 10000 });
  const shown = await page.locator("#incidents tr.incident").evaluateAll((trs) =>
    trs.map((tr) => ({ id: tr.dataset.incident, status: tr.dataset.status, text: tr.innerText })));
  const statuses = shown.map((r) => r.status);
  if (statuses.join() !== [...statuses].sort((a, b) => (a === "open" ? 0 : 1) - (b === "open" ? 0 : 1)).join()) {
    fail("open incidents are not first: " + statuses.join());
  }
  for (const [k, incident] of listed.incidents.entries()) {
    const row = shown[k];
    if (row.id !== incident.incident_id) fail(`row ${k} is ${row.id}, the API lists ${incident.incident_id}`);
    for (const needed of [incident.device_id, incident.peak_explanation, incident.channels[0].channel,
                          Math.round(100 * incident.channels[0].share) + "%"]) {
      if (!row.text.includes(needed)) fail(`incident ${incident.incident_id} lacks "${needed}": ${row.text}`);
    }
  }
  const openShown = statuses.filter((s) => s === "open").length;
  if (Number(await page.locator("#incidents-open").innerText()) !== listed.open) fail("the open-incident count is not the API's");

  // 1c. The challenger: none here (the demo follows no model store); a challenger in shadow, as
  // /api/dashboard/data would give it, is named with its agreement and would-be alert rate.
  if ((await page.locator("#challenger").innerText()) !== "none") fail("a challenger is shown without one");
  const shadowText = await page.evaluate(async () => {
    const data = await (await fetch(api("/api/dashboard/data"))).json();
    data.challenger = { version: "ae-challenger", detector: "pca", threshold: 1.5,
      shadow: { hour: "2026-01-01T10:00:00Z", windows: 1000, both: 40, champion_only: 2, challenger_only: 8, neither: 950,
                champion_anomaly_rate: 0.042, challenger_anomaly_rate: 0.048 } };
    renderData(data);
    return document.getElementById("challenger").textContent + " | " + document.getElementById("shadow").textContent;
  });
  for (const needed of ["ae-challenger", "agrees on 99.0% of 1,000 windows", "would alert on 4.8% (champion 4.2%)"]) {
    if (!shadowText.includes(needed)) fail(`the challenger line lacks "${needed}": ${shadowText}`);
  }

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

  // 3. A new anomaly episode (two anomalous windows in a row: an incident under the default
  // 2-of-3 rule) appears without a reload, in the feed and as an open incident.
  await page.evaluate(() => { window.__sameDocument = true; });
  const template = stored[0];
  const newest = new Date(Math.max(...stored.map((a) => Date.parse(a.window_end))));
  const at = (minutes) => new Date(newest.getTime() + minutes * 60_000).toISOString().replace(".000Z", "Z");
  const events = [1, 2].map((m) => JSON.stringify({ ...template.features, device_id: "pump-live-test", window_end: at(m) }));
  const reply = await json("/ScoreWindows", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ Data: { events: JSON.stringify(events) }, Metadata: {} }),
  });
  const alerts = reply.Outputs.alerts.map((a) => JSON.parse(a));
  if (alerts.filter((a) => a.device_id === "pump-live-test").length !== 2) fail("the posted windows were not anomalies");
  const opened = reply.Outputs.incidents.map((m) => JSON.parse(m))
    .filter((m) => m.transition === "opened" && m.incident.device_id === "pump-live-test");
  if (opened.length !== 1) fail("the posted episode did not open one incident: " + JSON.stringify(reply.Outputs.incidents));
  await page.waitForFunction(() => document.getElementById("feed").innerText.includes("pump-live-test"), null, { timeout: 10000 });
  await page.waitForFunction((id) => document.querySelector(`#incidents tr.incident.open[data-incident="${id}"]`) !== null,
                             opened[0].incident.incident_id, { timeout: 10000 });
  const liveStatuses = await page.locator("#incidents tr.incident").evaluateAll((trs) => trs.map((tr) => tr.dataset.status));
  if (liveStatuses.indexOf("resolved") !== -1 && liveStatuses.lastIndexOf("open") > liveStatuses.indexOf("resolved")) {
    fail("the new open incident is below a resolved one: " + liveStatuses.join());
  }
  if (!(await page.evaluate(() => window.__sameDocument === true))) fail("the page reloaded");
  const fresh = await page.locator("#feed tr.new").count();
  const freshIncidents = await page.locator("#incidents tr.incident.new").count();

  if (errors.length) fail("page errors: " + errors.join("; "));
  await page.waitForTimeout(300);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`dashboard OK: ${listed.count} incidents (${openShown} open, listed first) with channels and explanations, ` +
              `feed ${rows} rows with explanations, chart of ${device} ${points} points (${anomalous} anomalous), ` +
              `${contributions} channel bars, new episode shown live as an open incident (${freshIncidents} incident rows and ` +
              `${fresh} feed rows highlighted), screenshot ${screenshot}`);
} finally {
  await browser.close();
}
