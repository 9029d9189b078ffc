// Conduit's playground: GraphiQL pointed at /graphql, with example operations, the headers editor
// for the token, and the docs explorer (deprecated fields listed as such, with their reasons; the
// editor strikes them through in its hints and underlines them where used). Subscriptions go over a WebSocket to the same /graphql
// (graphql-ws), signed in with the headers editor's Authorization, sent as connection params.
// Bundled by build.mjs into dist/.
import React from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { parse } from 'graphql';
import 'graphiql/graphiql.css';

// ws: or wss: to this host, so the page's `connect-src 'self'` allows it. For each subscription the
// toolkit opens a graphql-ws client with the headers editor's JSON as its connectionParams.
const subscriptionUrl = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/graphql`;
const toolkitFetcher = createGraphiQLFetcher({ url: '/graphql', subscriptionUrl });

/**
 * The toolkit's fetcher picks the WebSocket by the parsed document and operation name it is given,
 * and GraphiQL updates both 100 ms after each change to the editor: a subscription run right after
 * it was typed or pasted would go over HTTP, or under the previous text's operation name. This goes
 * by the text actually sent (a syntax error is left for the server to report); with several
 * operations in the editor, the one GraphiQL names is run, as before.
 */
const fetcher = (params, options) => {
  let documentAST;
  try {
    documentAST = parse(params.query);
  } catch {
    return toolkitFetcher(params, options);
  }
  const operations = documentAST.definitions.filter((definition) => definition.kind === 'OperationDefinition');
  const operationName =
    operations.length === 1 ? operations[0].name?.value : params.operationName ?? undefined;
  return toolkitFetcher({ ...params, operationName }, { ...options, documentAST });
};

const register = `# Create an account: the answer holds a token.
# Put it in the Headers tab below as {"Authorization": "Bearer <token>"}.
mutation Register {
  register(input: { username: "reader", email: "reader@example.com", password: "password123" }) {
    token
    user { id username }
  }
}`;

const login = `# Sign in: copy the token into the Headers tab.
mutation Login {
  login(input: { email: "reader@example.com", password: "password123" }) {
    token
    user { username }
  }
}`;

const articles = `# The newest articles, with their authors, tags and first comments.
query Articles {
  articles(first: 10) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      slug
      title
      description
      createdAt
      favoritesCount
      author { username image }
      tags { name }
      comments(first: 3) { nodes { body author { username } } }
    }
  }
}`;

const feed = `# Articles by the users you follow. Needs a token: in the Headers tab below, put
# {"Authorization": "Bearer <the token from register or login>"}
query Feed {
  feed(first: 10) {
    nodes { slug title author { username } }
  }
}`;

const newArticles = `# Articles as they are published, pushed over a WebSocket: run this, then publish one
# (createArticle, signed in) from another browser window and watch it arrive here.
# Narrow it down with articlePublished(tag: "rust") or articlePublished(author: "jake").
subscription NewArticles {
  articlePublished {
    slug
    title
    author { username }
    tags { name }
  }
}`;

function Playground() {
  return (
    <GraphiQL
      fetcher={fetcher}
      defaultQuery={articles}
      defaultTabs={[
        { query: articles },
        { query: register },
        { query: login },
        { query: feed },
        { query: newArticles },
      ]}
      isHeadersEditorEnabled
      shouldPersistHeaders
      defaultEditorToolsVisibility="headers"
      visiblePlugin="Documentation Explorer"
      // Deprecated arguments and input fields are read too, so the docs explorer and the
      // editor's hints mark every deprecated part of the schema as such, with its reason.
      inputValueDeprecation
    />
  );
}

createRoot(document.getElementById('graphiql')).render(<Playground />);
