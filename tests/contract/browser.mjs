// The playground in a real browser (Debian's Chromium, driven by playwright-core): the page loads
// nothing from another host and breaks no Content-Security-Policy rule, offers the example
// operations, the headers editor and the docs explorer (with a deprecated field shown as such),
// runs a query, and runs the subscription
// example over a WebSocket to the same host, signed in with the headers editor's Authorization
// (sent as connection params), pasted and run at once: an article published meanwhile shows up in
// the result window.
// Usage: node browser.mjs http://127.0.0.1:8080
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const base = process.argv[2];
const origin = new URL(base).origin;

/** A query or mutation from here (not the page) over HTTP. */
async function graphql(query, variables, token) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

/** The server's count of open subscriptions (its `/metrics`). */
async function subscriptionsActive() {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith('conduit_subscriptions_active '));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** Resolves once the server follows at least `count` subscriptions: later changes reach them. */
async function subscriptionsOpen(count) {
  while ((await subscriptionsActive()) < count) await new Promise((resolve) => setTimeout(resolve, 50));
}

function deferred() {
  let resolve;
  const promise = new Promise((res) => (resolve = res));
  return { promise, resolve };
}

/** `promise`, or a failure naming `what` after 30 s. */
async function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after 30 s waiting for ${what}`)), 30_000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
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

  // The docs explorer lists a deprecated field as such, with its reason: Query -> Article.
  const explorer = page.locator('.graphiql-doc-explorer');
  await explorer.locator('a.graphiql-doc-explorer-type-name', { hasText: /^Query$/ }).first().click();
  await explorer.locator('a.graphiql-doc-explorer-type-name', { hasText: /^Article$/ }).first().click();
  await explorer.getByRole('button', { name: 'Show Deprecated Fields' }).click();
  await page.waitForFunction(
    () => document.querySelector('.graphiql-doc-explorer')?.textContent?.includes('Deprecated Fields'),
    null,
    { timeout: 30_000 },
  );
  const deprecatedSection = await explorer.textContent();
  assert.match(deprecatedSection, /tagList/, 'Article.tagList is listed');
  const reasons = await explorer.locator('.graphiql-doc-explorer-deprecation').allTextContents();
  assert.ok(
    reasons.some((reason) => /Deprecated/.test(reason) && /tags \{ name \}/.test(reason)),
    `tagList is marked deprecated with its reason: ${JSON.stringify(reasons)}`,
  );

  await page.locator('.graphiql-tab').first().click();
  await page.click('.graphiql-execute-button');
  await page.waitForFunction(
    () => document.querySelector('.result-window')?.textContent?.includes('totalCount'),
    null,
    { timeout: 30_000 },
  );
  const result = await page.locator('.result-window').textContent();
  assert.match(result, /"articles"/);

  // The subscription example, signed in through the headers editor.
  const suffix = Date.now().toString(36);
  const registered = await graphql(
    `mutation Register($input: RegisterInput!) { register(input: $input) { token } }`,
    { input: { username: `browser-${suffix}`, email: `browser-${suffix}@example.com`, password: 'password123' } },
  );
  const token = registered.register.token;
  const init = deferred();
  const subscribed = deferred();
  page.on('websocket', (socket) => {
    socket.on('framesent', ({ payload }) => {
      let message;
      try {
        message = JSON.parse(payload);
      } catch {
        return;
      }
      if (message.type === 'connection_init') init.resolve({ url: socket.url(), payload: message.payload });
      if (message.type === 'subscribe') subscribed.resolve(message.payload);
    });
  });
  // The previous run has finished: a click while it runs would stop it instead.
  await page.waitForSelector('.graphiql-execute-button[aria-label^="Execute"]', { timeout: 30_000 });
  await page.locator('.graphiql-tab', { hasText: 'NewArticles' }).click();
  const queryEditor = '.graphiql-query-editor .CodeMirror';
  await page.waitForFunction(
    (selector) => /articlePublished/.test(document.querySelector(selector)?.CodeMirror?.getValue()),
    queryEditor,
    { timeout: 30_000 },
  );
  const example = await page.evaluate(
    (selector) => document.querySelector(selector).CodeMirror.getValue(),
    queryEditor,
  );
  assert.match(example, /^subscription /m);
  // Headers belong to a tab: these go with the subscription's.
  await page.getByText('Headers', { exact: true }).click();
  await page.evaluate((headers) => {
    // The variables and headers editors share a place; the one not hidden is the headers one.
    const editors = document.querySelectorAll('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror');
    if (editors.length !== 1) throw new Error(`one headers editor shown, not ${editors.length}`);
    editors[0].CodeMirror.setValue(headers);
  }, JSON.stringify({ Authorization: `Bearer ${token}` }));
  // Someone who had a query in the editor pastes the subscription and runs it at once: GraphiQL
  // parses the editor 100 ms after a change, so the run must go by the text sent, not that parse.
  await page.evaluate((selector) => document.querySelector(selector).CodeMirror.setValue('{ __typename }'), queryEditor);
  await page.waitForTimeout(400);
  await page.evaluate(
    ({ selector, example }) => document.querySelector(selector).CodeMirror.setValue(example),
    { selector: queryEditor, example },
  );
  await page.click('.graphiql-execute-button');
  const connection = await within(init.promise, 'the playground to open a WebSocket');
  assert.equal(new URL(connection.url).host, new URL(base).host);
  assert.equal(new URL(connection.url).pathname, '/graphql');
  assert.equal(connection.payload?.Authorization, `Bearer ${token}`, 'the headers editor as connection params');
  const operation = await within(subscribed.promise, 'the playground to subscribe');
  assert.match(operation.query, /articlePublished/);
  await within(subscriptionsOpen(1), 'the server to open the subscription');
  const created = await graphql(
    `mutation Publish($input: CreateArticleInput!) { createArticle(input: $input) { article { slug } } }`,
    { input: { title: `Live ${suffix}`, description: 'From the browser check', body: 'Body', tags: [] } },
    token,
  );
  const { slug } = created.createArticle.article;
  await page.waitForFunction(
    (slug) => document.querySelector('.result-window')?.textContent?.includes(slug),
    slug,
    { timeout: 30_000 },
  );
  assert.match(await page.locator('.result-window').textContent(), /"articlePublished"/);
  if (process.env.CONDUIT_SCREENSHOT) await page.screenshot({ path: process.env.CONDUIT_SCREENSHOT });
  assert.deepEqual(foreign, [], 'nothing is loaded from another host');
  assert.deepEqual(problems, [], 'no console errors (CSP violations included)');
  console.log(
    `playground: ${tabs} example tabs, docs explorer (Article.tagList shown deprecated), headers editor; a query and a subscription (WebSocket) ran in Chromium`,
  );
} finally {
  await browser.close();
}
