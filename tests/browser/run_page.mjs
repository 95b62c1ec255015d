// Headless Chromium (Debian /usr/bin/chromium via playwright-core; no browser download) loads a page
// served on 127.0.0.1 and runs TF.js layers-models on crops there; prints the results as JSON.
//
//   node tests/browser/run_page.mjs URL_OF_index.html JOBS_JSON
//
// The page (written by the test) defines window.runCrop(job) -> {shape, values, backend, tfjs, seconds};
// JOBS_JSON is a list of jobs {model, input, shape} with URLs relative to the page.
import { chromium } from 'playwright-core';

const [url, jobsJson] = process.argv.slice(2);
const jobs = JSON.parse(jobsJson);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  const results = [];
  for (const job of jobs) results.push(await page.evaluate((j) => window.runCrop(j), job));
  const userAgent = await page.evaluate(() => navigator.userAgent);
  console.log(JSON.stringify({ results, userAgent, pageErrors: errors }));
} finally {
  await browser.close();
}
