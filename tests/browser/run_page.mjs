// Headless Chromium (Debian /usr/bin/chromium via playwright-core; no browser download) loads a page
// served on 127.0.0.1 that runs a TF.js layers-model on one crop, and prints the logits as JSON.
//
//   node tests/browser/run_page.mjs URL_OF_index.html
//
// The page (written by the test) defines window.runCrop() -> {shape, values, backend, tfjs, seconds}.
import { chromium } from 'playwright-core';

const url = process.argv[2];
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
  const result = await page.evaluate(() => window.runCrop());
  result.userAgent = await page.evaluate(() => navigator.userAgent);
  result.pageErrors = errors;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
