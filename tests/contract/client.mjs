// A real client, unmodified: Apollo Client signs up, publishes an article and reads it back in a
// nested query. Usage: node client.mjs http://127.0.0.1:8080/graphql
import assert from 'node:assert/strict';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';

const uri = process.argv[2];
let token = null;
const auth = new ApolloLink((operation, forward) => {
  if (token) operation.setContext({ headers: { authorization: `Bearer ${token}` } });
  return forward(operation);
});
const client = new ApolloClient({
  link: auth.concat(new HttpLink({ uri })),
  cache: new InMemoryCache(),
});

const suffix = Date.now().toString(36);
const registered = await client.mutate({
  mutation: gql`
    mutation Register($input: RegisterInput!) {
      register(input: $input) { token user { id username email } }
    }
  `,
  variables: {
    input: { username: `client-${suffix}`, email: `client-${suffix}@example.com`, password: 'password123' },
  },
});
token = registered.data.register.token;
assert.equal(registered.data.register.user.username, `client-${suffix}`);

const created = await client.mutate({
  mutation: gql`
    mutation Publish($input: CreateArticleInput!) {
      createArticle(input: $input) { article { id slug title tags { name } } }
    }
  `,
  variables: { input: { title: `Hello ${suffix}`, description: 'From Apollo', body: 'Body', tags: ['js', 'apollo'] } },
});
const { slug } = created.data.createArticle.article;

const read = await client.query({
  query: gql`
    query Article($slug: String!) {
      article(slug: $slug) {
        id title favorited favoritesCount
        tags { name }
        author { id username following articles(first: 5) { totalCount nodes { id slug } } }
        comments(first: 5) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id body } } }
      }
    }
  `,
  variables: { slug },
  fetchPolicy: 'network-only',
});
const article = read.data.article;
assert.equal(article.title, `Hello ${suffix}`);
assert.deepEqual(article.tags.map((tag) => tag.name), ['apollo', 'js']);
assert.equal(article.author.username, `client-${suffix}`);
assert.equal(article.author.articles.totalCount, 1);
assert.equal(article.comments.totalCount, 0);
assert.equal(article.__typename, 'Article');
console.log('Apollo Client: sign-up, article creation and a nested query work unmodified');
