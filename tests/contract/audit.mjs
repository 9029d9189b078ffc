// The GraphQL-over-HTTP audit of graphql-http against a running Conduit: every audit must pass,
// warnings included. Usage: node audit.mjs http://127.0.0.1:8080/graphql
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql url>');
  process.exit(2);
}

const results = [];
for (const audit of serverAudits({ url })) {
  results.push({ id: audit.id, name: audit.name, result: await audit.fn() });
}
let passed = 0;
for (const { id, name, result } of results) {
  if (result.status === 'ok') {
    passed += 1;
  } else {
    console.log(`${result.status.toUpperCase()} ${id} ${name}: ${result.reason}`);
  }
}
console.log(`GraphQL over HTTP audit: ${passed} of ${results.length} passed`);
process.exit(passed === results.length ? 0 : 1);
