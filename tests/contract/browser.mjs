// The playground in a real browser (Debian's Chromium, driven by playwright-core): the page loads
// nothing from another host and breaks no Content-Security-Policy rule, offers the example
// operations, the headers editor and the docs explorer, and runs a query.
// Usage: node browser.mjs http://127.0.0.1:8080
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const base = process.argv[2];
const origin = new URL(base).origin;
const browser = await chromium.launch({
  executablePath: process.env.CONDUIT_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--headless=new'],
});
try {
  const page = await browser.newPage();
  const foreign = [];
  const problems = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.protocol.startsWith('http') && url.origin !== origin) foreign.push(request.url());
  });
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));

  const response = await page.goto(`${base}/playground`);
  assert.match(response.headers()['content-security-policy'], /script-src 'self';/);
  await page.waitForSelector('.graphiql-execute-button', { timeout: 30_000 });

  // The example operations open as tabs; the docs explorer is open; the headers editor is there.
  const tabs = await page.locator('.graphiql-tab').count();
  assert.ok(tabs >= 4, `example operation tabs: ${tabs}`);
  await page.waitForSelector('.graphiql-doc-explorer', { timeout: 30_000 });
  // The docs explorer shows the schema, read through introspection.
  await page.waitForFunction(
    () => document.querySelector('.graphiql-doc-explorer')?.textContent?.includes('Mutation'),
    null,
    { timeout: 30_000 },
  );
  assert.ok(await page.getByText('Headers', { exact: true }).count() > 0, 'a headers editor');

  await page.locator('.graphiql-tab').first().click();
  await page.click('.graphiql-execute-button');
  await page.waitForFunction(
    () => document.querySelector('.result-window')?.textContent?.includes('totalCount'),
    null,
    { timeout: 30_000 },
  );
  const result = await page.locator('.result-window').textContent();
  assert.match(result, /"articles"/);
  if (process.env.CONDUIT_SCREENSHOT) await page.screenshot({ path: process.env.CONDUIT_SCREENSHOT });
  assert.deepEqual(foreign, [], 'nothing is loaded from another host');
  assert.deepEqual(problems, [], 'no console errors (CSP violations included)');
  console.log(`playground: ${tabs} example tabs, docs explorer, headers editor; a query ran in Chromium`);
} finally {
  await browser.close();
}
