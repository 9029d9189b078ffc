// A third party's view: the schema built from introspection (as code generators do) must equal
// the committed schema.graphql, and GET /schema.graphql must serve it.
// Usage: node introspection.mjs http://127.0.0.1:8080 ../../schema.graphql
import { readFile } from 'node:fs/promises';
import {
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  lexicographicSortSchema,
  printSchema,
} from 'graphql';

const [base, schemaPath] = process.argv.slice(2);
const response = await fetch(`${base}/graphql`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
  body: JSON.stringify({
    query: getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
    }),
  }),
});
const result = await response.json();
if (result.errors) {
  console.error('introspection failed:', JSON.stringify(result.errors));
  process.exit(1);
}
const print = (schema) => printSchema(lexicographicSortSchema(schema));
const introspected = print(buildClientSchema(result.data));
const committed = print(buildSchema(await readFile(schemaPath, 'utf8')));
if (introspected !== committed) {
  console.error('the introspected schema differs from schema.graphql');
  process.exit(1);
}
const served = print(buildSchema(await (await fetch(`${base}/schema.graphql`)).text()));
if (served !== committed) {
  console.error('GET /schema.graphql differs from schema.graphql');
  process.exit(1);
}
console.log('introspection: the client schema equals schema.graphql, and /schema.graphql serves it');
