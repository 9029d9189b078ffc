// Subscriptions with real clients, unmodified: graphql-ws over a WebSocket (`graphql-transport-ws`,
// signed in through connectionParams) receives commentAdded, graphql-sse (distinct connections,
// signed in through the Authorization header) receives articleChanged, Apollo Client's
// GraphQLWsLink receives articlePublished, each once a mutation sent over plain HTTP has committed;
// a bad token closes the WebSocket with 4403. With a second base URL every subscription goes to
// the second instance and every mutation to the first: the events cross instances through Redis.
// Usage: node subscriptions.mjs http://127.0.0.1:8080 [http://127.0.0.1:8081]
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';

/** How long any one step may take. */
const TIMEOUT_MS = 10_000;
/** How long a subscription is given to be registered on the server before the mutation is sent. */
const SETTLE_MS = 300;

const mutateBase = process.argv[2]?.replace(/\/+$/, '');
const subscribeBase = (process.argv[3] ?? process.argv[2])?.replace(/\/+$/, '');
if (!mutateBase) {
  console.error('usage: node subscriptions.mjs <http base url> [<second http base url>]');
  process.exit(2);
}
const httpUrl = `${mutateBase}/graphql`;
const sseUrl = `${subscribeBase}/graphql`;
const wsUrl = `${subscribeBase.replace(/^http/, 'ws')}/graphql`;
const where = mutateBase === subscribeBase ? mutateBase : `${subscribeBase} (mutations via ${mutateBase})`;

/** A promise with its resolve and reject at hand. */
function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // awaited later; a rejection before that is not an unhandled one
  return { promise, resolve, reject };
}

/** `promise`, or a clear failure after TIMEOUT_MS; `what` (a string or a function giving one) says what. */
async function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const waited = typeof what === 'function' ? what() : what;
      reject(new Error(`timed out after ${TIMEOUT_MS / 1000} s waiting for ${waited}`));
    }, TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** An error from a client's error callback (a CloseEvent, a Response, GraphQL errors) as an Error. */
function failure(what, err) {
  if (err instanceof Error) return new Error(`${what}: ${err.message}`);
  if (Array.isArray(err)) return new Error(`${what}: ${JSON.stringify(err)}`);
  if (err && typeof err === 'object' && 'code' in err) {
    return new Error(`${what}: socket closed with ${err.code} ${err.reason ?? ''}`.trim());
  }
  if (err && typeof err === 'object' && 'status' in err) return new Error(`${what}: HTTP ${err.status}`);
  if (err && typeof err === 'object' && err.message) return new Error(`${what}: ${err.message}`);
  return new Error(`${what}: ${String(err)}`);
}

/** A query or mutation over plain HTTP (POST JSON) through the first base URL. */
async function post(query, variables, token) {
  const response = await within(
    fetch(httpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
    }),
    `POST ${httpUrl}`,
  );
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`POST ${httpUrl}: HTTP ${response.status}, not JSON: ${text.slice(0, 200)}`);
  }
  const operation = query.trim().split(/[({]/)[0].trim();
  assert.equal(body.errors, undefined, `${operation}: ${JSON.stringify(body.errors)}`);
  assert.equal(response.status, 200, `${operation}: HTTP ${response.status}`);
  return body.data;
}

async function register(name) {
  const data = await post(
    `mutation Register($input: RegisterInput!) { register(input: $input) { token user { username } } }`,
    { input: { username: name, email: `${name}@example.com`, password: 'password123' } },
  );
  assert.equal(data.register.user.username, name);
  return data.register.token;
}

async function createArticle(token, title, tags) {
  const data = await post(
    `mutation Publish($input: CreateArticleInput!) { createArticle(input: $input) { article { slug title } } }`,
    { input: { title, description: 'Subscriptions', body: 'Body', tags } },
    token,
  );
  assert.equal(data.createArticle.article.title, title);
  return data.createArticle.article.slug;
}

/** A graphql-ws client on the second base URL, its connections reported to `connected`. */
function wsClient(token, listeners = {}) {
  return createWsClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    on: listeners,
  });
}

/** Everything to close at the end, last opened first. */
const closers = [];
async function closeAll() {
  for (const close of closers.reverse()) {
    try {
      await close();
    } catch (err) {
      console.error(`closing a client: ${err?.message ?? err}`);
    }
  }
}

const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const nameA = `subs-a-${suffix}`;
const nameB = `subs-b-${suffix}`;

try {
  const tokenA = await register(nameA);
  const tokenB = await register(nameB);
  const slug = await createArticle(tokenA, `Subscriptions ${suffix}`, ['subscriptions']);

  // graphql-ws, signed in as B: commentAdded on A's article, then A comments over HTTP.
  {
    const connected = deferred();
    const event = deferred();
    const client = wsClient(tokenB, { connected: () => connected.resolve() });
    closers.push(() => client.dispose());
    const unsubscribe = client.subscribe(
      {
        query: `subscription Comments($slug: String!) {
          commentAdded(slug: $slug) { id body createdAt author { username following } article { slug } }
        }`,
        variables: { slug },
      },
      {
        next: (result) => (result.errors ? event.reject(failure('commentAdded', result.errors)) : event.resolve(result.data)),
        error: (err) => event.reject(failure('commentAdded over graphql-ws', err)),
        complete: () => event.reject(new Error('commentAdded over graphql-ws: completed before any event')),
      },
    );
    closers.push(unsubscribe);
    await within(connected.promise, `the graphql-ws connection to ${wsUrl}`);
    await sleep(SETTLE_MS);
    const body = `A comment ${suffix}`;
    const added = await post(
      `mutation Comment($slug: String!, $input: AddCommentInput!) { addComment(slug: $slug, input: $input) { comment { id body } } }`,
      { slug, input: { body } },
      tokenA,
    );
    const data = await within(event.promise, 'the commentAdded event over graphql-ws');
    assert.equal(data.commentAdded.body, body);
    assert.equal(data.commentAdded.id, added.addComment.comment.id);
    assert.equal(data.commentAdded.author.username, nameA);
    assert.equal(data.commentAdded.author.following, false);
    assert.equal(data.commentAdded.article.slug, slug);
    console.log(`subscriptions: graphql-ws (WebSocket, signed in as B) got commentAdded from ${where}`);
  }

  // graphql-sse in distinct-connections mode, signed in as B: articleChanged, then B favorites.
  {
    const client = createSseClient({
      url: sseUrl,
      singleConnection: false,
      headers: { Authorization: `Bearer ${tokenB}` },
      retryAttempts: 0,
    });
    closers.push(() => client.dispose());
    const connected = deferred();
    const event = deferred();
    // The first change with B's favorite in it (a change sent before it, say by another
    // mutation, would not be one).
    const seen = [];
    const unsubscribe = client.subscribe(
      {
        query: `subscription Changes($slug: String!) {
          articleChanged(slug: $slug) { slug deleted article { slug title favorited favoritesCount tags { name } author { username } } }
        }`,
        variables: { slug },
      },
      {
        next: (result) => {
          if (result.errors) return event.reject(failure('articleChanged', result.errors));
          seen.push(result.data);
          if (result.data?.articleChanged?.article?.favorited) event.resolve(result.data);
        },
        error: (err) => event.reject(failure('articleChanged over SSE', err)),
        complete: () => event.reject(new Error('articleChanged over SSE: completed before any event')),
      },
      { connected: () => connected.resolve() },
    );
    closers.push(unsubscribe);
    await within(Promise.race([connected.promise, event.promise]), `the SSE stream from ${sseUrl}`);
    await sleep(SETTLE_MS);
    const favorited = await post(
      `mutation Favorite($slug: String!) { favoriteArticle(slug: $slug) { article { slug favoritesCount } } }`,
      { slug },
      tokenB,
    );
    assert.ok(favorited.favoriteArticle.article.favoritesCount >= 1);
    const data = await within(
      event.promise,
      () => `an articleChanged event with the article favorited over SSE (got ${seen.length}: ${JSON.stringify(seen)})`,
    );
    const change = data.articleChanged;
    assert.equal(change.slug, slug);
    assert.equal(change.deleted, false);
    assert.ok(change.article, 'articleChanged carries the article');
    assert.equal(change.article.slug, slug);
    assert.ok(change.article.favoritesCount >= 1, `favoritesCount ${change.article.favoritesCount}`);
    assert.equal(change.article.favorited, true, 'favorited as seen by B, the subscriber');
    assert.equal(change.article.author.username, nameA);
    console.log(`subscriptions: graphql-sse (distinct connections, signed in as B) got articleChanged from ${where}`);
  }

  // Apollo Client over GraphQLWsLink, anonymous: articlePublished with a tag nobody else uses.
  {
    const connected = deferred();
    const client = wsClient(null, { connected: () => connected.resolve() });
    closers.push(() => client.dispose());
    const apollo = new ApolloClient({ link: new GraphQLWsLink(client), cache: new InMemoryCache() });
    closers.push(() => apollo.stop());
    const tag = `subs-${suffix}`;
    const event = deferred();
    const subscription = apollo
      .subscribe({
        query: gql`
          subscription Published($tag: String) {
            articlePublished(tag: $tag) { id slug title favorited favoritesCount tags { name } author { username } }
          }
        `,
        variables: { tag },
      })
      .subscribe({
        next: (result) => (result.error ? event.reject(failure('articlePublished', result.error)) : event.resolve(result.data)),
        error: (err) => event.reject(failure('articlePublished over Apollo Client', err)),
        complete: () => event.reject(new Error('articlePublished over Apollo Client: completed before any event')),
      });
    closers.push(() => subscription.unsubscribe());
    await within(connected.promise, `Apollo Client's WebSocket to ${wsUrl}`);
    await sleep(SETTLE_MS);
    const title = `Tagged ${suffix}`;
    const published = await createArticle(tokenA, title, [tag, 'subscriptions']);
    const data = await within(event.promise, 'the articlePublished event over Apollo Client');
    const article = data.articlePublished;
    assert.equal(article.slug, published);
    assert.equal(article.title, title);
    assert.equal(article.favorited, false);
    assert.equal(article.favoritesCount, 0);
    assert.ok(article.tags.some((t) => t.name === tag), `tags ${JSON.stringify(article.tags)}`);
    assert.equal(article.author.username, nameA);
    assert.equal(article.__typename, 'Article');
    console.log(`subscriptions: Apollo Client (GraphQLWsLink) got articlePublished(tag) from ${where}`);
  }

  // A bad token over graphql-ws: the server closes the socket with 4403 and never acknowledges.
  {
    const closed = deferred();
    let acknowledged = false;
    const client = createWsClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { Authorization: 'Bearer nonsense' },
      retryAttempts: 0,
      on: {
        connected: () => (acknowledged = true),
        closed: (event) => closed.resolve(event),
      },
    });
    closers.push(() => client.dispose());
    const unsubscribe = client.subscribe(
      { query: 'subscription Comments($slug: String!) { commentAdded(slug: $slug) { id } }', variables: { slug } },
      { next: () => {}, error: () => {}, complete: () => {} },
    );
    closers.push(unsubscribe);
    const event = await within(closed.promise, 'the WebSocket with a bad token to close');
    assert.equal(event.code, 4403, `close code ${event.code} ${event.reason ?? ''}`);
    assert.equal(acknowledged, false, 'a bad token is never acknowledged');
    console.log(`subscriptions: a bad token over graphql-ws is closed with 4403 (${subscribeBase})`);
  }
} catch (err) {
  console.error(`subscriptions: FAILED against ${where}`);
  console.error(err);
  process.exitCode = 1;
} finally {
  await closeAll();
}

// Every client is closed, so the process ends now; should a socket linger, say so and fail.
setTimeout(() => {
  console.error('subscriptions: a connection stayed open after every client was closed');
  process.exit(1);
}, 5_000).unref();
